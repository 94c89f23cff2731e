#!/usr/bin/env bash
# The crate's public API, checked against docs/public-api.txt.
#
#   bench/public-api.sh            # fails (status 1, with the diff) when the
#                                  # public API differs from docs/public-api.txt
#   bench/public-api.sh --update   # rewrites docs/public-api.txt
#
# rustdoc writes the crate's documentation as JSON (every feature, as docs.rs
# builds it); bench/public_api.py turns it into one sorted line per public
# path, signature and trait implementation. `#[doc(hidden)]` items are left
# out. The JSON output is unstable rustdoc: on the stable toolchain only
# rustdoc itself runs with RUSTC_BOOTSTRAP=1 (through a wrapper), so the
# crate's dependencies are the ones `cargo check` built, nothing is rebuilt.
# cargo-public-api would do the same and more, but it needs nightly and
# minutes of `cargo install` in CI.
set -euo pipefail
cd "$(dirname "$0")/.."

list=docs/public-api.txt
mode=check
case "${1:-}" in
  --update) mode=update ;;
  "") ;;
  *) echo "usage: $0 [--update]" >&2; exit 2 ;;
esac

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
cat >"$scratch/rustdoc" <<EOF
#!/bin/sh
RUSTC_BOOTSTRAP=1 exec "${RUSTDOC:-rustdoc}" "\$@"
EOF
chmod +x "$scratch/rustdoc"

RUSTDOC="$scratch/rustdoc" cargo rustdoc --quiet --all-features --lib -- \
  -Z unstable-options --output-format json
target_dir="$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
python3 bench/public_api.py "$target_dir/doc/vklive_pubsub.json" >"$scratch/public-api.txt"

if [[ "$mode" == update ]]; then
  cp "$scratch/public-api.txt" "$list"
  echo "$list: $(wc -l <"$list") lines"
  exit 0
fi
if ! diff -u "$list" "$scratch/public-api.txt"; then
  echo "The public API changed (- $list, + the code). If that is meant, run" >&2
  echo "bench/public-api.sh --update and commit $list with the change." >&2
  exit 1
fi
echo "public API: as in $list ($(wc -l <"$list") lines)"
