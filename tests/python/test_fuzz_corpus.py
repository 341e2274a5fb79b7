"""Replays the fuzz corpus through the fuzz targets (tests/fuzz/), in the
normal test run.

tests/fuzz/corpus/<target>/ holds every input a campaign found a defect
with (minimized) and the reproductions of issue 11's table; the seeds
(tests/fuzz/seeds/<target>/) are replayed too, so an oracle that rejects a
valid input is caught. Each input runs in a worker process (a crash or a
hang fails that input only, not the test session) through the same
``one_input`` the fuzzer calls: it must raise nothing but ValueError,
NotImplementedError or an alpa_torch error, and satisfy the target's
oracles (docs/fuzzing.md).
"""
import glob
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FUZZ = os.path.join(ROOT, "tests", "fuzz")
sys.path.insert(0, FUZZ)

import run as fuzz_run  # noqa: E402  (tests/fuzz/run.py)

CASES = [(target, path) for target in fuzz_run.TARGETS
         for kind in ("corpus", "seeds")
         for path in sorted(glob.glob(os.path.join(FUZZ, kind, target, "*")))]


@pytest.fixture(scope="module")
def results():
    """Every input's result, from one replay worker per target."""
    out = {}
    for target in fuzz_run.TARGETS:
        files = [path for t, path in CASES if t == target]
        for r in fuzz_run.run_replay(target, files, sys.executable,
                                     timeout=fuzz_run.TIMEOUTS[target] + 10):
            out[r["file"]] = r
    return out


def _case_id(case):
    target, path = case
    return f"{target}/{os.path.basename(os.path.dirname(os.path.dirname(path)))}/" \
           f"{os.path.basename(path)}"


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_fuzz_input(results, case):
    target, path = case
    r = results[path]
    assert r["ok"], f"{target} finding for {os.path.relpath(path, ROOT)}: {r['finding']}\n" \
                    f"{r.get('details', '')}"


def test_every_target_has_a_corpus_and_seeds():
    for target in fuzz_run.TARGETS:
        for kind in ("corpus", "seeds"):
            assert glob.glob(os.path.join(FUZZ, kind, target, "*")), (kind, target)
