#!/usr/bin/env bash
# Side by side: vklive-pubsub and the official Centrifugo SDKs (centrifuge-js
# on Node with `ws`, centrifuge-python) on the same workload, against the same
# standalone emulator, in one run.
#
#   bench/run.sh                 # everything; SMALL/LARGE/REPS/PER_FRAME override the e2e sizes
#   SVG=docs/cpu-per-event.svg bench/run.sh   # also redraw the chart
#   BASE=e566c7e bench/run.sh    # also: that commit's bench and this one's, interleaved
#                                # (A B A B …, AB_ROUNDS pairs, default 5), and the ratio
#                                # against AB_TARGET (default 1.05: at most 5% slower)
#
# Installs the peer SDKs into $CARGO_TARGET_DIR/bench-peers (target/bench-peers
# by default; reused when present), builds the examples with the
# bench-release profile (release + fat LTO), starts
# target/bench-release/examples/emulator (no per-connection channel limit), runs
# examples/bench.rs (e2e, 1000 channels, latency) and the two peer clients in
# bench/peers/ (e2e), then prints the ratio table (bench/report.py). Each
# client measures its own process's CPU with the same two-point method.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
PEERS="$TARGET/bench-peers"
SMALL="${SMALL:-20000}"
LARGE="${LARGE:-200000}"
REPS="${REPS:-3}"
PER_FRAME="${PER_FRAME:-100}"
BASE="${BASE:-}"
AB_ROUNDS="${AB_ROUNDS:-5}"

echo "bench: peer SDKs in $PEERS" >&2
mkdir -p "$PEERS/node"
if [ ! -d "$PEERS/node/node_modules/centrifuge" ] || [ ! -d "$PEERS/node/node_modules/ws" ]; then
    [ -f "$PEERS/node/package.json" ] || echo '{"name":"bench-peers","private":true}' >"$PEERS/node/package.json"
    npm install --prefix "$PEERS/node" --no-audit --no-fund --silent 'centrifuge@^5' 'ws@^8' >&2
fi
if [ ! -x "$PEERS/venv/bin/python" ]; then
    python3 -m venv "$PEERS/venv"
fi
if ! "$PEERS/venv/bin/python" -c 'import centrifuge' 2>/dev/null; then
    "$PEERS/venv/bin/pip" install --quiet --disable-pip-version-check 'centrifuge-python>=0.7,<0.8' >&2
fi

# Whole-program LTO: the `bench-release` profile (Cargo.toml).
echo "bench: building (bench-release)" >&2
cargo build --quiet --profile bench-release --features emulator --examples
BIN="$TARGET/bench-release/examples"
BASE_BENCH="${BASE_BENCH:-}"   # a base bench binary built already (skips the build)
if [ -n "$BASE" ] && [ -z "$BASE_BENCH" ]; then
    # The base commit's bench, built from its own tree into its own target
    # directory (its examples take the same --worker/--info arguments).
    BASE_SRC="$TARGET/bench-base-src"
    git worktree remove --force "$BASE_SRC" 2>/dev/null || rm -rf "$BASE_SRC"
    git worktree add --quiet --detach "$BASE_SRC" "$BASE" >&2
    # A base from before the bench-release profile built whole in `release`.
    BASE_PROFILE=release
    grep -q '^\[profile.bench-release\]' "$BASE_SRC/Cargo.toml" && BASE_PROFILE=bench-release
    echo "bench: building the base $BASE ($BASE_PROFILE)" >&2
    (cd "$BASE_SRC" && CARGO_TARGET_DIR="$TARGET/bench-base-target" \
        cargo build --quiet --profile "$BASE_PROFILE" --features emulator --example bench)
    BASE_BENCH="$TARGET/bench-base-target/$BASE_PROFILE/examples/bench"
    git worktree remove --force "$BASE_SRC"
fi

WORK="$(mktemp -d)"
EMULATOR_PID=""
cleanup() {
    exec 3>&- 2>/dev/null || true   # closing its stdin stops the emulator
    if [ -n "$EMULATOR_PID" ]; then
        for _ in $(seq 1 50); do kill -0 "$EMULATOR_PID" 2>/dev/null || break; sleep 0.1; done
        kill "$EMULATOR_PID" 2>/dev/null || true
        wait "$EMULATOR_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

mkfifo "$WORK/emulator.stdin"
"$BIN/emulator" --port 0 --channel-limit 0 <"$WORK/emulator.stdin" >"$WORK/emulator.stdout" 2>"$WORK/emulator.stderr" &
EMULATOR_PID=$!
exec 3>"$WORK/emulator.stdin"
for _ in $(seq 1 100); do
    [ -s "$WORK/emulator.stdout" ] && break
    kill -0 "$EMULATOR_PID" 2>/dev/null || { cat "$WORK/emulator.stderr" >&2; exit 1; }
    sleep 0.1
done
INFO="$(head -n 1 "$WORK/emulator.stdout")"
echo "bench: emulator at $INFO" >&2

echo "bench: vklive-pubsub" >&2
"$BIN/bench" --info "$INFO" --small "$SMALL" --large "$LARGE" --reps "$REPS" --per-frame "$PER_FRAME" \
    | tail -n 1 >"$WORK/vklive-pubsub.json"

AB_ARG=()
if [ -n "$BASE_BENCH" ]; then
    echo "bench: $BASE against this commit, interleaved, $AB_ROUNDS rounds" >&2
    : >"$WORK/ab.lines"
    for round in $(seq 1 "$AB_ROUNDS"); do
        for workload in e2e e2e-current; do
            for build in base head; do
                binary="$BIN/bench"; [ "$build" = base ] && binary="$BASE_BENCH"
                figure="$("$binary" --worker "$workload" --info "$INFO" --small "$SMALL" --large "$LARGE" \
                    --reps "$REPS" --per-frame "$PER_FRAME" 2>/dev/null | tail -n 1 \
                    | python3 -c 'import json,sys; print(json.load(sys.stdin)["marginal_cpu_us"])')"
                echo "bench: round $round $workload $build $figure µs" >&2
                printf '{"build":"%s","workload":"%s","marginal_cpu_us":%s}\n' "$build" "$workload" "$figure" >>"$WORK/ab.lines"
            done
        done
    done
    python3 -c 'import json,sys; print(json.dumps({"base": sys.argv[1], "runs": [json.loads(l) for l in open(sys.argv[2])]}))' \
        "$BASE" "$WORK/ab.lines" >"$WORK/ab.json"
    AB_ARG=(--ab "$WORK/ab.json")
fi

echo "bench: centrifuge-js" >&2
PEERS_NODE_DIR="$PEERS/node" node bench/peers/centrifuge_js_client.mjs "$INFO" "$SMALL" "$LARGE" "$REPS" "$PER_FRAME" \
    | tail -n 1 >"$WORK/centrifuge-js.json"

echo "bench: centrifuge-python" >&2
"$PEERS/venv/bin/python" bench/peers/centrifuge_python_client.py "$INFO" "$SMALL" "$LARGE" "$REPS" "$PER_FRAME" \
    | tail -n 1 >"$WORK/centrifuge-python.json"

python3 bench/report.py ${SVG:+--svg "$SVG"} "${AB_ARG[@]}" \
    "$WORK/vklive-pubsub.json" "$WORK/centrifuge-js.json" "$WORK/centrifuge-python.json"
