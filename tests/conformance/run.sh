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
EMULATOR_PID=""
cleanup() {
    # Closing the emulator's stdin stops it; kill it (only it) if it lingers.
    exec 3>&- 2>/dev/null || true
    if [ -n "$EMULATOR_PID" ]; then
        for _ in $(seq 1 50); do
            kill -0 "$EMULATOR_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill "$EMULATOR_PID" 2>/dev/null || true
        wait "$EMULATOR_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# The emulator runs until its stdin closes: give it a FIFO we hold open.
mkfifo "$WORK/stdin"
"$BIN" --port 0 --ping-interval 1 --pong-timeout 1 --token demo-token --slug demo \
    <"$WORK/stdin" >"$WORK/stdout" 2>"$WORK/stderr" &
EMULATOR_PID=$!
exec 3>"$WORK/stdin"

for _ in $(seq 1 300); do
    [ -s "$WORK/stdout" ] && break
    if ! kill -0 "$EMULATOR_PID" 2>/dev/null; then
        echo "conformance: the emulator exited early:" >&2
        cat "$WORK/stderr" >&2
        exit 1
    fi
    sleep 0.1
done
INFO="$(head -n 1 "$WORK/stdout")"
if [ -z "$INFO" ]; then
    echo "conformance: the emulator printed nothing within 30 s" >&2
    exit 1
fi
echo "conformance: emulator at $INFO" >&2

status=0
timeout 300 "$VENV/bin/python" tests/conformance/centrifuge_python_conformance.py "$INFO" || status=$?
if [ "$status" -ne 0 ]; then
    echo "conformance: FAILED (status $status); emulator stderr:" >&2
    tail -n 50 "$WORK/stderr" >&2 || true
fi
exit "$status"
