"""Shrinks a JSON input that shows a Python-level finding, keeping its
signature: deletes list items and dict entries, and replaces subtrees by
smaller ones, while the target still fails the same way.

    python tests/fuzz/minimize.py TARGET IN.bin OUT.json

(A crash of the process cannot be minimized in process: shrink those by
hand, replaying candidates with run.py --replay.)
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
import harness  # noqa: E402


def failure(target, doc):
    try:
        target.one_input(common.dump(doc).encode())
    except Exception as e:  # noqa: BLE001
        return harness.signature(e)
    return None


def candidates(doc):
    """Smaller documents: one edit each, largest first."""
    for container, key in sorted(common._paths(doc)[1:], key=lambda p: -len(
            common.dump(p[0][p[1]]))):
        value = container[key]
        if isinstance(container, list):
            yield container, key, "del"
        elif isinstance(container, dict):
            yield container, key, "del"
        if isinstance(value, (list, dict)) and value:
            yield container, key, "empty"


def main():
    target = harness.load_target(sys.argv[1])
    with open(sys.argv[2], "rb") as f:
        doc = json.loads(f.read())
    sig = failure(target, doc)
    if sig is None:
        raise SystemExit("the input shows no finding")
    print("signature:", sig)
    size = len(common.dump(doc))
    while True:
        before = len(common.dump(doc))
        doc = _pass(target, doc, sig)
        if len(common.dump(doc)) >= before:
            break
    with open(sys.argv[3], "w") as f:
        f.write(common.dump(doc))
    kept = failure(target, doc) == sig
    print(f"{size} -> {len(common.dump(doc))} bytes, signature kept: {kept}")


def _pass(target, doc, sig):
    """One sweep: try each edit on a fresh copy; keep the first that holds."""
    n = 0
    while True:
        edits = list(candidates(doc))
        if n >= len(edits):
            return doc
        trial = json.loads(common.dump(doc))
        container, key, op = list(candidates(trial))[n]
        if op == "del":
            del container[key]
        else:
            container[key] = type(container[key])()
        if failure(target, trial) == sig:
            doc = trial
        else:
            n += 1


if __name__ == "__main__":
    main()
