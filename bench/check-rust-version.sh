#!/usr/bin/env bash
# Fails when Cargo.toml's `rust-version` is lower than the highest
# `rust_version` any locked dependency declares: the declared minimum must
# be one the dependencies actually build with (no other toolchain can be
# installed here to try it). Reads `cargo metadata` (the lock file), with
# every feature on: the optional dependencies (async-nats, axum, clap, … of
# the cli, relay and emulator features) count too.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo metadata --format-version 1 --locked --all-features --quiet | python3 -c '
import json, sys

def key(version):
    return tuple(int(part) for part in version.split("."))

meta = json.load(sys.stdin)
root = meta["resolve"]["root"]
ours = next(p for p in meta["packages"] if p["id"] == root)
declared = ours.get("rust_version")
if not declared:
    sys.exit("Cargo.toml declares no rust-version")
deps = [p for p in meta["packages"] if p["id"] != root and p.get("rust_version")]
top = max(key(p["rust_version"]) for p in deps)
needing = ", ".join(sorted(p["name"] + " " + p["version"] for p in deps if key(p["rust_version"]) == top))
top_text = ".".join(str(part) for part in top)
if key(declared) < top:
    sys.exit("rust-version %s is lower than %s, which the locked %s need: raise it in Cargo.toml" % (declared, top_text, needing))
print("rust-version %s: not lower than the highest locked dependency needs (%s: %s)" % (declared, top_text, needing))
'
