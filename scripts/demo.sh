#!/usr/bin/env bash
# README command 1: set up (if needed) and run the main demo: capture and
# plan a GPT-2 (no GPU needed), then train one on 4 local CPU processes.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ALPA_ROOT"
"$PY" examples/capture_gpt2.py
echo
echo "== training a GPT-2 on 4 local processes (examples/train_gpt.py)"
exec "$PY" examples/train_gpt.py --steps 5 "$@"
