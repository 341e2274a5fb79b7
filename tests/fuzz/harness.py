"""Running a target on one input, the same way in every mode: a finding is
any exception outside common.ALLOWED (oracle failures raise Finding).

``signature(exc)`` names a finding by its type, its message with numbers
blanked, and the innermost alpa_torch or fuzz frame, so that one defect
found many times is stored once.
"""
from __future__ import annotations

import hashlib
import importlib
import os
import re
import traceback

import common


def load_target(name: str):
    if name not in common.TARGETS:
        raise SystemExit(f"unknown fuzz target {name!r}; targets: {', '.join(common.TARGETS)}")
    return importlib.import_module(f"target_{name}")


def signature(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = next((f"{os.path.basename(f.filename)}:{f.name}" for f in reversed(frames)
                  if "alpa_torch" in f.filename or "tests/fuzz" in f.filename), "?")
    message = re.sub(r"[-+]?\d[\d.e+-]*", "N", str(exc).splitlines()[0] if str(exc) else "")
    message = re.sub(r"'[^']*'", "'S'", message)
    message = re.sub(r"\[(N, )*N\]", "[N...]", message)[:90]
    return f"{type(exc).__name__}: {message} @ {where}"


def slug(sig: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", sig)[:60].strip("-") + "-" + \
        hashlib.sha1(sig.encode()).hexdigest()[:8]


def describe(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-4000:]
