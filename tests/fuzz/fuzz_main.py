"""The atheris driver of one target (run.py starts it; use run.py).

    python tests/fuzz/fuzz_main.py TARGET [libFuzzer flags] [CORPUS_DIR ...]

Environment (set by run.py):
  ALPA_FUZZ_FINDINGS  folder: each Python-level finding is stored there once
                      per signature (finding-<slug>.bin + .txt) and fuzzing
                      goes on; unset: the first finding stops the fuzzer.
  ALPA_FUZZ_CURRENT   file: each input is written there before it runs, so
                      a crash of the process (segfault, abort) leaves it.
"""
import faulthandler
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import atheris  # noqa: E402

TARGET = sys.argv.pop(1) if len(sys.argv) > 1 else ""
with atheris.instrument_imports(include=["alpa_torch", "common", f"target_{TARGET}"]):
    import common  # noqa: E402
    import harness  # noqa: E402
    target = harness.load_target(TARGET)

FINDINGS = os.environ.get("ALPA_FUZZ_FINDINGS")
CURRENT = os.environ.get("ALPA_FUZZ_CURRENT")
# One input that leaves the process this much larger is a finding of its
# own (memory kept after it returned), named before the RSS limit trips on
# a later, innocent input.
GROWTH_LIMIT_MB = 512
_seen = set()


class MemoryGrowth(Exception):
    """The process kept more than GROWTH_LIMIT_MB after one input."""


def _rss_mb() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") >> 20


def one_input(data: bytes) -> None:
    if CURRENT:
        with open(CURRENT, "wb") as f:
            f.write(data)
    before = _rss_mb()
    try:
        target.one_input(data)
        grown = _rss_mb() - before
        if grown > GROWTH_LIMIT_MB:
            raise MemoryGrowth(f"the process kept {grown} MB more after this input")
    except Exception as e:  # noqa: BLE001 - every other exception is a finding
        if not FINDINGS:
            raise
        sig = harness.signature(e)
        if sig in _seen:
            return
        _seen.add(sig)
        name = os.path.join(FINDINGS, f"finding-{TARGET}-{harness.slug(sig)}")
        with open(name + ".bin", "wb") as f:
            f.write(data)
        with open(name + ".txt", "w") as f:
            f.write(sig + "\n\n" + harness.describe(e))
        print(f"FINDING {sig}", file=sys.stderr, flush=True)


faulthandler.enable()
mutator = getattr(target, "mutate", common.json_mutator)
atheris.Setup(sys.argv, one_input, custom_mutator=mutator)
atheris.Fuzz()
