"""Replays inputs through a target, one result line (JSON) per input.

    python tests/fuzz/replay.py TARGET FILE ...

Prints MARK + {"begin": FILE} before each input and MARK + {"file",
"ok", "finding"} after it (other output, e.g. a solver's, is ignored); a crash of the process leaves a "begin" without its result, which
the caller (run_replay in run.py, the corpus test) reports as the crash.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402

MARK = "@@alpa-fuzz "


def main() -> None:
    import faulthandler
    import resource
    faulthandler.enable()
    # An input that grows memory without end fails here (MemoryError, or a
    # crash of this worker), not the machine.
    limit = int(os.environ.get("ALPA_FUZZ_MEMORY_LIMIT_GB", "8")) << 30
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    target = harness.load_target(sys.argv[1])
    for path in sys.argv[2:]:
        print(MARK + json.dumps({"begin": path}), flush=True)
        with open(path, "rb") as f:
            data = f.read()
        try:
            target.one_input(data)
            result = {"file": path, "ok": True}
        except Exception as e:  # noqa: BLE001 - every other exception is a finding
            result = {"file": path, "ok": False, "finding": harness.signature(e),
                      "details": harness.describe(e)}
        print(MARK + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
