"""What every fuzz target shares: the exceptions a user may see, findings,
JSON in and out, and a structure-aware JSON mutator.

A target is a module with ``one_input(data: bytes) -> None``: it returns for
an accepted input and for one rejected with a documented exception
(``ValueError``, ``NotImplementedError``, ``alpa_torch.AlpaError``), and
raises anything else. A wrong answer against an oracle raises ``Finding``.
The fuzz driver (fuzz_main.py), the replay worker (replay.py) and the corpus
test (tests/python/test_fuzz_corpus.py) call the same function.
"""
from __future__ import annotations

import json
import math
import os
import random
import sys
from typing import Any, Callable, List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # examples.models, alpa_torch from the tree
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from alpa_torch.errors import AlpaError  # noqa: E402

#: The only exceptions a fuzzed entry point may raise (alpa_torch/errors.py).
ALLOWED = (ValueError, NotImplementedError, AlpaError)

FUZZ_DIR = os.path.dirname(os.path.abspath(__file__))
TARGETS = ("graph", "plan", "ilp", "stage_dp", "torchscript")


class Finding(AssertionError):
    """An oracle disagreed: a wrong answer, not a rejected input."""


def allowed(fn: Callable, *args, **kwargs) -> Tuple[bool, Any]:
    """(True, result) or (False, the documented exception); anything else
    propagates, so the driver records it."""
    try:
        return True, fn(*args, **kwargs)
    except ALLOWED as e:
        if type(e) in (UnicodeDecodeError, UnicodeEncodeError):
            raise  # ValueError subclasses that only a bug in our code raises
        return False, e


def decode_json(data: bytes) -> Tuple[Optional[str], Any]:
    """(text, document); (text, None) when the bytes are not JSON; (None,
    None) when they are not UTF-8 text at all."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None, None
    try:
        return text, json.loads(text)
    except (ValueError, RecursionError):
        return text, None


def dump(doc: Any) -> str:
    return json.dumps(doc, allow_nan=True)


def same_json(a: str, b: str, what: str) -> None:
    """Round-trip oracle: two JSON texts must be identical."""
    if a != b:
        i = next((n for n, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        raise Finding(f"{what}: JSON round trip differs at character {i}: "
                      f"{a[max(0, i - 60):i + 60]!r} vs {b[max(0, i - 60):i + 60]!r}")


def close(a: float, b: float, rtol: float, atol: float = 0.0) -> bool:
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= atol + rtol * max(abs(a), abs(b))


# ---- structure-aware JSON mutation ------------------------------------------------

INTERESTING_INTS = [0, 1, -1, 2, 3, 4, 7, 8, 16, 64, 255, 1024, 65535, 2**31 - 1, 2**31,
                    -2**31, 2**32, 2**53, 2**62, 2**63 - 1, -2**63, 2**64, 10**9]
INTERESTING_FLOATS = [0.0, -0.0, 1e-300, 5e-324, 1e-9, 0.5, 1.0, 1.5, 1e7, 1e15, 1e16, 1e300,
                      math.inf, -math.inf, math.nan, -1.0, -1e-9]


def _paths(doc: Any, limit: int = 20000) -> List[Tuple[Any, Any]]:
    """(container, key) of every value in `doc` (the root is (None, None))."""
    out: List[Tuple[Any, Any]] = [(None, None)]
    stack = [doc]
    while stack and len(out) < limit:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else (
            enumerate(node) if isinstance(node, list) else ())
        for k, v in items:
            out.append((node, k))
            if isinstance(v, (dict, list)):
                stack.append(v)
    return out


def _strings(doc: Any, limit: int = 400) -> List[str]:
    found, stack = [], [doc]
    while stack and len(found) < limit:
        node = stack.pop()
        if isinstance(node, str):
            found.append(node)
        elif isinstance(node, dict):
            found.extend(list(node.keys())[:8])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found or ["x"]


def _new_scalar(old: Any, rng: random.Random, pool: List[str]) -> Any:
    r = rng.random()
    if isinstance(old, bool) or r < 0.05:
        return rng.choice([True, False, None, 0, "", [], {}])
    if isinstance(old, int) and r < 0.8:
        return rng.choice([old + rng.choice([-2, -1, 1, 2]), old * 2, -old,
                           rng.choice(INTERESTING_INTS)])
    if isinstance(old, float) and r < 0.8:
        return rng.choice([old * rng.choice([0.0, -1.0, 1e-9, 1e9, 1.0000001]),
                           rng.choice(INTERESTING_FLOATS)])
    if isinstance(old, str) and r < 0.8:
        if rng.random() < 0.5:
            return rng.choice(pool)
        s = list(old)
        for _ in range(rng.randint(1, 3)):
            op = rng.randrange(3)
            pos = rng.randint(0, len(s))
            if op == 0 and s:
                del s[min(pos, len(s) - 1)]
            elif op == 1:
                s.insert(pos, rng.choice(["S", "R", "P", "0", "1", "x", ",", "[", "]", ".",
                                          "é", "\x00", "\ud800", "\udfff", "\U0001f600"]))
            elif s:
                s[min(pos, len(s) - 1)] = rng.choice("SRP0123x,[]")
        return "".join(s)
    return rng.choice(INTERESTING_INTS + INTERESTING_FLOATS + pool[:20])


def mutate_doc(doc: Any, rng: random.Random, rounds: Optional[int] = None) -> Any:
    """`doc` with 1-4 random structural edits: scalars replaced by
    interesting values, list items deleted, duplicated, swapped or copied
    from elsewhere, dict keys dropped or retargeted, strings swapped for
    others of the document. The graph/plan/problem stays mostly well formed,
    so edits reach the validation and planning code behind the parser."""
    pool = _strings(doc)
    for _ in range(rounds or rng.randint(1, 4)):
        paths = _paths(doc)
        container, key = rng.choice(paths[1:] if len(paths) > 1 else paths)
        if container is None:
            doc = _new_scalar(doc, rng, pool)
            continue
        value = container[key]
        r = rng.random()
        if isinstance(value, list) and r < 0.6 and value:
            op = rng.randrange(6)
            i, j = rng.randrange(len(value)), rng.randrange(len(value))
            if op == 0:
                del value[i]
            elif op == 1:
                value.insert(j, json.loads(dump(value[i])))
            elif op == 2:
                value[i], value[j] = value[j], value[i]
            elif op == 3:
                del value[rng.randrange(len(value) + 1):]
            elif op == 4:
                value.append(json.loads(dump(rng.choice(value))))
            else:
                value[i] = _new_scalar(value[i], rng, pool) if not isinstance(
                    value[i], (dict, list)) else value[i]
        elif isinstance(value, dict) and r < 0.5 and value:
            k = rng.choice(list(value))
            if rng.random() < 0.5:
                del value[k]
            else:
                other = rng.choice(paths)
                if other[0] is not None:
                    value[k] = json.loads(dump(other[0][other[1]]))
        elif isinstance(value, (dict, list)) and r < 0.7:
            other = rng.choice(paths)  # graft another part of the document here
            if other[0] is not None and len(dump(other[0][other[1]])) < 20000:
                container[key] = json.loads(dump(other[0][other[1]]))
        else:
            container[key] = _new_scalar(value, rng, pool)
    return doc


def json_mutator(data: bytes, max_size: int, seed: int) -> bytes:
    """atheris custom mutator: structural edits on JSON, byte edits else."""
    import atheris
    rng = random.Random(seed)
    text, doc = decode_json(data)
    if doc is None or rng.random() < 0.05:
        return atheris.Mutate(data, max_size)
    try:
        out = dump(mutate_doc(doc, rng)).encode()
    except (RecursionError, ValueError, TypeError):  # too deep, or not JSON-able
        return atheris.Mutate(data, max_size)
    return out if len(out) <= max_size else atheris.Mutate(data, max_size)
