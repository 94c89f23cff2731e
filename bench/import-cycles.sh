#!/usr/bin/env bash
# Looks for import circles between the files of src/ (see tests/import_cycles.rs):
# prints every circle with the imports that make it, and fails when one lies
# in a folder the test enforces (its ENFORCED list; src/emulator/ today).
#   bench/import-cycles.sh
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo test --quiet --test import_cycles -- --nocapture "$@"
