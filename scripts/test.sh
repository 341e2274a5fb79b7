#!/usr/bin/env bash
# README command 2: set up (if needed), then run every test: the C++ planner
# tests (GoogleTest) and the Python tests (pytest). Fails if any test fails.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ALPA_ROOT"
start=$(date +%s)
echo "== C++ planner tests (GoogleTest)"
./build/alpa_tests --gtest_brief=1
echo "== Python tests (pytest)"
"$PY" -m pytest tests/python -q -p no:cacheprovider --timeout=600 "$@"
echo "== all tests passed in $(( $(date +%s) - start )) s"
