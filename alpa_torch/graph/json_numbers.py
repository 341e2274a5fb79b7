"""Non-finite numbers in the JSON that alpa_torch writes (graphs, plans, ILP
problems; docs/architecture.md "Non-finite numbers").

JSON has no token for NaN or an infinity: Python's ``json.dumps`` writes the
bare words ``NaN``/``Infinity``, which other JSON readers refuse. alpa_torch
writes them as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``
where a number is expected (and a float attribute of a graph node as
``{"float": "-Infinity"}``, since a bare string there is a string
attribute). The C++ readers accept those strings and also the bare words
that older files hold.
"""
from __future__ import annotations

import json
import math
from typing import Any, Callable, Optional

__all__ = ["number_json", "finite_doc", "dumps"]


def number_json(value: float) -> Any:
    """``value`` itself when finite, else its string form."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def finite_doc(value: Any, default: Optional[Callable[[Any], Any]] = None) -> Any:
    """A copy of the JSON document ``value`` whose non-finite floats are
    strings; ``default`` (as for ``json.dumps``) turns other objects into
    documents first (numpy arrays by ``tolist``)."""
    if isinstance(value, float):
        return number_json(value)
    if isinstance(value, dict):
        return {k: finite_doc(v, default) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_doc(v, default) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if default is None:
        raise TypeError(f"{type(value).__name__} is not JSON serializable")
    return finite_doc(default(value), default)


def dumps(value: Any, *, default: Optional[Callable[[Any], Any]] = None, **kwargs: Any) -> str:
    """``json.dumps`` that writes valid JSON: non-finite floats as strings."""
    return json.dumps(finite_doc(value, default), allow_nan=False, **kwargs)
