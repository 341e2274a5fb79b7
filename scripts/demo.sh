#!/usr/bin/env bash
# README command 1: set up (if needed) and run the main demo.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ALPA_ROOT"
exec "$PY" examples/capture_gpt2.py "$@"
