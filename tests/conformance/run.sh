#!/usr/bin/env bash
# Conformance: run the official centrifuge-python SDK against the emulator.
#
# Creates (or reuses) a venv under the cargo target dir, installs
# centrifuge-python 0.7.x, builds and starts the standalone emulator with a
# 1 s ping interval, runs the Python script, stops the emulator, and exits
# non-zero on any failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
VENV="$TARGET/conformance-venv"
SDK_SPEC="centrifuge-python>=0.7,<0.8"

echo "conformance: preparing venv at $VENV" >&2
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c 'import centrifuge' 2>/dev/null; then
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "$SDK_SPEC"
fi
"$VENV/bin/python" - <<'EOF' >&2
from importlib.metadata import version
print("conformance: centrifuge-python", version("centrifuge-python"))
EOF

echo "conformance: building the emulator" >&2
cargo build --quiet --features emulator --example emulator
BIN="$TARGET/debug/examples/emulator"

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    # Closing an emulator's stdin stops it; kill it (only it) if it lingers.
    for fd in 3 4; do eval "exec $fd>&-" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

# start_emulator NAME FD ARGS...: starts the emulator with its stdin on a FIFO
# held open on file descriptor FD, and sets INFO to the JSON line it printed.
start_emulator() {
    local name="$1" fd="$2"
    shift 2
    mkfifo "$WORK/$name.stdin"
    "$BIN" --port 0 --token demo-token --slug demo "$@" \
        <"$WORK/$name.stdin" >"$WORK/$name.stdout" 2>"$WORK/$name.stderr" &
    local pid=$!
    PIDS+=("$pid")
    eval "exec $fd>\"\$WORK/\$name.stdin\""
    for _ in $(seq 1 300); do
        [ -s "$WORK/$name.stdout" ] && break
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "conformance: the $name emulator exited early:" >&2
            cat "$WORK/$name.stderr" >&2
            return 1
        fi
        sleep 0.1
    done
    INFO="$(head -n 1 "$WORK/$name.stdout")"
    if [ -z "$INFO" ]; then
        echo "conformance: the $name emulator printed nothing within 30 s" >&2
        return 1
    fi
    echo "conformance: $name emulator at $INFO" >&2
}

# run_scenario NAME: runs the Python scenario against the emulator in INFO.
status=0
run_scenario() {
    local scenario="$1" rc=0
    timeout 300 "$VENV/bin/python" tests/conformance/centrifuge_python_conformance.py "$INFO" "$scenario" \
        | tee -a "$WORK/results" || rc=$?
    if [ "$rc" -ne 0 ]; then
        status=1
        echo "conformance: scenario $scenario FAILED (status $rc); emulator stderr:" >&2
        tail -n 50 "$WORK/$scenario.stderr" >&2 || true
    fi
}

# Main scenario: 1 s pings, tokens that never expire.
start_emulator main 3 --ping-interval 1 --pong-timeout 1
run_scenario main

# Refresh scenario: pubsub tokens live 3 s, enforced 2 s after expiry.
start_emulator refresh 4 --token-ttl 3 --expiry-grace 2
run_scenario refresh

read -r passed failed < <(awk '/^conformance\[/ { p += $2; f += $4 } END { print p + 0, f + 0 }' "$WORK/results")
echo "conformance: ${passed:-0} passed, ${failed:-0} failed"
if [ "${failed:-0}" -ne 0 ] || [ "${passed:-0}" -eq 0 ]; then
    status=1
fi
exit "$status"
