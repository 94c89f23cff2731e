#!/usr/bin/env bash
# Does a hand-written reader pay for itself? An interleaved A/B of the code
# as it is (A) against the same code with that reader bypassed (B), end to end.
#
#   bench/ab-readers.sh key-order      # the chat reader's learned key order off:
#                                      # every key read and matched by its text
#   bench/ab-readers.sh chat-summary   # ChatSummary::decode by serde alone
#   bench/ab-readers.sh chat-reader    # VkEvent::decode of chat by serde alone
#                                      # (the direct chat reader off)
#   bench/ab-readers.sh bracket-walk   # json_scan::container_end by serde (a
#                                      # validating IgnoredAny pass) instead of
#                                      # the 64-byte bracket walk: the cut's
#                                      # outline check and the chat-key skim.
#                                      # Stricter: a payload that is not JSON or
#                                      # nests past 128 goes to the full decoder
#                                      # (B's own tests of the walk's leniency
#                                      # fail); on the bench's JSON both agree
#
#   ROUNDS=12 WORKLOADS=e2e,e2e-current REPS=3 bench/ab-readers.sh key-order
#   bench/ab-readers.sh key-order --check   # only make B and `cargo check` it
#
# B is built from a copy of this working tree (target/ and .git left out)
# with one edit to one function, in the bench build only: the repository's
# sources are never changed. Each edit checks that the code it replaces is
# there, so a refactor makes this script fail instead of measuring nothing.
# B has its own target directory ($CARGO_TARGET_DIR/ab-readers-target), so the
# repository's target/release/examples/bench stays A's.
#
# Both benches run as `bench --worker W` against one standalone emulator,
# A B then B A, ROUNDS times for each workload; each run prints its median
# marginal CPU per event over REPS (20k, 200k) pairs. At the end: the medians,
# B/A, and what the reader saves. The issue's rule: keep a reader only if it
# saves at least 5% end to end. Run it on a quiet machine (it builds two
# release benches, then takes about ROUNDS × workloads × 2 × 15 s).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VARIANT="${1:-}"
CHECK_ONLY="$([ "${2:-}" = --check ] && echo 1 || true)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
ROUNDS="${ROUNDS:-12}"
SMALL="${SMALL:-20000}"
LARGE="${LARGE:-200000}"
REPS="${REPS:-3}"
PER_FRAME="${PER_FRAME:-100}"

case "$VARIANT" in
  key-order) default_workloads=e2e,e2e-summary ;;
  chat-summary) default_workloads=e2e-summary ;;
  chat-reader) default_workloads=e2e,e2e-current ;;
  bracket-walk) default_workloads=e2e,e2e-floor ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d' >&2; exit 2 ;;
esac
IFS=, read -r -a WORKLOADS <<<"${WORKLOADS:-$default_workloads}"

WORK="$(mktemp -d)"
EMULATOR_PID=""
cleanup() {
  exec 3>&- 2>/dev/null || true # closing its stdin stops the emulator
  if [ -n "$EMULATOR_PID" ]; then
    for _ in $(seq 1 50); do kill -0 "$EMULATOR_PID" 2>/dev/null || break; sleep 0.1; done
    kill "$EMULATOR_PID" 2>/dev/null || true
    wait "$EMULATOR_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# ---------------------------------------------------------------------------
# B: the working tree, copied, with the reader bypassed
# ---------------------------------------------------------------------------

SRC_B="$WORK/src-b"
mkdir -p "$SRC_B"
tar -C "$ROOT" --exclude=./target --exclude=./.git -cf - . | tar -C "$SRC_B" -xf -
python3 - "$SRC_B" "$VARIANT" <<'EOF'
import pathlib, sys

root, variant = pathlib.Path(sys.argv[1]), sys.argv[2]

def replace(path, old, new):
    file = root / path
    text = file.read_text()
    if text.count(old) != 1:
        sys.exit(f"ab-readers: {path} no longer holds the code the {variant} variant "
                 f"replaces; update bench/ab-readers.sh:\n{old}")
    file.write_text(text.replace(old, new))

if variant == "key-order":
    # No guess is ever made, and nothing is learned: each key is read as a
    # string and looked up by its text, as before the key tables.
    replace("src/event/key_order.rs",
            "        let index = usize::from(self.after[previous].load(Ordering::Relaxed));\n"
            "        let length = self.quoted.get(index)?.length_at(bytes)?;\n"
            "        Some((index, length))\n",
            "        let _ = (previous, bytes);\n"
            "        None\n")
    replace("src/event/key_order.rs",
            "        if usize::from(self.after[previous].load(Ordering::Relaxed)) != next {\n",
            "        if false && usize::from(self.after[previous].load(Ordering::Relaxed)) != next {\n")
elif variant == "chat-summary":
    replace("src/event/summary.rs",
            "        read_directly(payload).or_else(|| decode_with_serde(payload))\n",
            "        let _ = read_directly;\n"
            "        decode_with_serde(payload)\n")
elif variant == "chat-reader":
    replace("src/event/mod.rs",
            "    if let Some(message) = chat_reader::read_chat_message(payload) {\n"
            "        return Some(VkEvent::ChatMessage(message));\n"
            "    }\n"
            "    serde_one_pass(payload)\n",
            "    serde_one_pass(payload)\n")
elif variant == "bracket-walk":
    # Where the container opening at byte 0 ends, by serde: a validating
    # IgnoredAny pass (stricter than the walk, which checks only brackets
    # and strings).
    replace("src/json_scan.rs",
            "pub(crate) fn container_end(bytes: &[u8]) -> Option<usize> {\n",
            "pub(crate) fn container_end(bytes: &[u8]) -> Option<usize> {\n"
            "    let mut values = serde_json::Deserializer::from_slice(bytes)\n"
            "        .into_iter::<serde::de::IgnoredAny>();\n"
            "    values.next()?.ok()?;\n"
            "    return Some(values.byte_offset());\n"
            "    #[allow(unreachable_code)]\n")
print(f"ab-readers: B is the working tree with the {variant} reader bypassed", file=sys.stderr)
EOF

if [ -n "$CHECK_ONLY" ]; then
  (cd "$SRC_B" && CARGO_TARGET_DIR="$TARGET/ab-readers-target" \
    cargo check --quiet --features emulator --example bench)
  echo "ab-readers: B ($VARIANT) builds" >&2
  exit 0
fi

echo "ab-readers: building A, this working tree (release)" >&2
cargo build --quiet --release --features emulator --example bench --example emulator
cp "$TARGET/release/examples/bench" "$WORK/bench-a"
cp "$TARGET/release/examples/emulator" "$WORK/emulator"
echo "ab-readers: building B in $TARGET/ab-readers-target (release)" >&2
(cd "$SRC_B" && CARGO_TARGET_DIR="$TARGET/ab-readers-target" \
  cargo build --quiet --release --features emulator --example bench)
cp "$TARGET/ab-readers-target/release/examples/bench" "$WORK/bench-b"

# ---------------------------------------------------------------------------
# One emulator, A B / B A
# ---------------------------------------------------------------------------

mkfifo "$WORK/emulator.stdin"
"$WORK/emulator" --port 0 --channel-limit 0 <"$WORK/emulator.stdin" \
  >"$WORK/emulator.stdout" 2>"$WORK/emulator.stderr" &
EMULATOR_PID=$!
exec 3>"$WORK/emulator.stdin"
for _ in $(seq 1 100); do
  [ -s "$WORK/emulator.stdout" ] && break
  kill -0 "$EMULATOR_PID" 2>/dev/null || { cat "$WORK/emulator.stderr" >&2; exit 1; }
  sleep 0.1
done
INFO="$(head -n 1 "$WORK/emulator.stdout")"

: >"$WORK/runs.jsonl"
for round in $(seq 1 "$ROUNDS"); do
  order="a b"
  (( round % 2 == 0 )) && order="b a"
  for workload in "${WORKLOADS[@]}"; do
    for build in $order; do
      figure="$("$WORK/bench-$build" --worker "$workload" --info "$INFO" --small "$SMALL" \
        --large "$LARGE" --reps "$REPS" --per-frame "$PER_FRAME" 2>/dev/null | tail -n 1 |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["marginal_cpu_us"])')"
      echo "ab-readers: round $round $workload $build $figure µs" >&2
      printf '{"build":"%s","workload":"%s","marginal_cpu_us":%s}\n' \
        "$build" "$workload" "$figure" >>"$WORK/runs.jsonl"
    done
  done
done

python3 - "$VARIANT" "$ROUNDS" "$WORK/runs.jsonl" <<'EOF'
import json, statistics, sys

variant, rounds, path = sys.argv[1], sys.argv[2], sys.argv[3]
runs = [json.loads(line) for line in open(path)]
print(f"{variant}: A = as it is, B = reader bypassed; medians of {rounds} interleaved runs")
print(f"{'workload':<14} {'A µs':>7} {'B µs':>7} {'B/A':>6}  the reader saves")
for workload in dict.fromkeys(run["workload"] for run in runs):
    figures = {build: [r["marginal_cpu_us"] for r in runs
                       if r["workload"] == workload and r["build"] == build]
               for build in ("a", "b")}
    a, b = statistics.median(figures["a"]), statistics.median(figures["b"])
    saves = 1 - a / b
    verdict = "pays (≥ 5%)" if saves >= 0.05 else "does not pay (< 5%)"
    print(f"{workload:<14} {a:7.3f} {b:7.3f} {b / a:6.3f}  {saves:6.1%}  {verdict}")
    print(f"{'':<14} A runs {sorted(figures['a'])}")
    print(f"{'':<14} B runs {sorted(figures['b'])}")
print(json.dumps({"variant": variant, "runs": runs}))
EOF
