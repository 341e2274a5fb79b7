#!/usr/bin/env bash
# Installs whatever is missing and builds alpa_torch in place. Idempotent:
# a second run only rebuilds what changed. Sourced by demo.sh and test.sh.
#
#   ALPA_VENV            virtual environment to use/create (default: .venv)
#   ALPA_TORCH_SPEC      torch requirement (default: torch==2.13.0, CPU build
#                        on this machine; on a GPU cluster install CUDA torch
#                        into the venv first, see README)
#   ALPA_SKIP_APT=1      do not touch Debian packages
set -euo pipefail

ALPA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ALPA_VENV="${ALPA_VENV:-$ALPA_ROOT/.venv}"
ALPA_TORCH_SPEC="${ALPA_TORCH_SPEC:-torch==2.13.0}"
TRANSFORMERS_SPEC="${ALPA_TRANSFORMERS_SPEC:-transformers==5.24.0}"

log() { printf '[alpa setup] %s\n' "$*" >&2; }

# ---- 1. Debian packages: compilers, CBC, fmt, nlohmann_json, GoogleTest ----
install_debian_packages() {
  [ "${ALPA_SKIP_APT:-0}" = 1 ] && return 0
  command -v dpkg >/dev/null 2>&1 || { log "not a Debian system: install CBC, fmt, nlohmann_json, GoogleTest, cmake, ninja yourself"; return 0; }
  local wanted=(g++ cmake ninja-build pkg-config coinor-libcbc-dev libfmt-dev nlohmann-json3-dev
                libgtest-dev librsvg2-bin)
  local missing=()
  for pkg in "${wanted[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if ! python3 -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' 2>/dev/null; then
    missing+=(python3-dev)
  fi
  python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# pip's output goes to a log, shown only when pip fails.
quiet_pip() {
  local out
  out="$(mktemp)"
  if ! "$PY" -m pip "$@" >"$out" 2>&1; then
    grep -v "^WARNING: Location" "$out" >&2 || true
    rm -f "$out"
    log "pip $* failed"
    return 1
  fi
  rm -f "$out"
}

# ---- 2. Python environment ----------------------------------------------------
setup_venv() {
  if [ ! -x "$ALPA_VENV/bin/python" ]; then
    log "creating virtual environment $ALPA_VENV"
    python3 -m venv "$ALPA_VENV"
  fi
  PY="$ALPA_VENV/bin/python"
  local need=()
  "$PY" -c 'import torch' 2>/dev/null || need+=("$ALPA_TORCH_SPEC")
  "$PY" -c 'import pybind11' 2>/dev/null || need+=("pybind11>=2.10")
  "$PY" -c 'import pytest, pytest_timeout' 2>/dev/null || need+=(pytest pytest-timeout)
  "$PY" -c 'import transformers' 2>/dev/null || need+=("$TRANSFORMERS_SPEC")
  # The fuzz targets (tests/fuzz, docs/fuzzing.md); 3.0.0 ships CPython 3.11 wheels.
  "$PY" -c 'import atheris' 2>/dev/null || need+=("${ALPA_ATHERIS_SPEC:-atheris==3.0.0}")
  "$PY" -c 'import setuptools, wheel' 2>/dev/null || need+=("setuptools>=64" wheel)
  if [ ${#need[@]} -gt 0 ]; then
    log "pip installing: ${need[*]}"
    quiet_pip install "${need[@]}"
  fi
}

# ---- 3. Build (CMake via setup.py the first time, incremental afterwards) ------
build_alpa() {
  cd "$ALPA_ROOT"
  # Import from / so that the check sees the installed package, not ./alpa_torch.
  # The install must also carry the entry points (the `alpa-torch` script,
  # the torch.compile backend "alpa"): an older install is redone.
  if [ -f build/build.ninja ] && ls alpa_torch/_C*.so >/dev/null 2>&1 &&
     (cd / && "$PY" -c 'import alpa_torch._C') 2>/dev/null &&
     "$PY" -c 'import importlib.metadata as m, sys; sys.exit(not any(e.name == "alpa" for e in m.entry_points(group="torch_dynamo_backends")))' 2>/dev/null; then
    cmake --build build -j "${ALPA_BUILD_JOBS:-$(nproc)}" >/dev/null
  else
    log "building alpa_torch (C++ planner, extension, tests)"
    quiet_pip install --no-build-isolation --no-deps -e .
  fi
}

install_debian_packages
setup_venv
build_alpa
export PATH="$ALPA_VENV/bin:$PATH"
export ALPA_ROOT ALPA_VENV PY
