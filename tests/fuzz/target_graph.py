"""Fuzz target (a): the graph loader and the planner.

Input: JSON ``{"graph": <a graph file's JSON>, "options": {...}}`` (a bare
graph file is read with the default options). The graph is read as
``alpa_torch.load`` reads a file, must round-trip (JSON and text form), and
is planned on a small mesh; the plan must round-trip too, and so must each
stage's local program (its text form).

Options: ``mesh`` [n0, n1] (more than 8 devices is cut to 8: planning time
grows with the mesh, not what this target looks for), ``method``
("intra_op" | "pipeshard"), ``num_micro_batches``, ``memory_budget``,
``plan_overrides``, ``num_layers``, ``schedule``.
"""
from __future__ import annotations

import os
import tempfile

from common import Finding, allowed, decode_json, dump, same_json

import alpa_torch
from alpa_torch import _C

_TMP = tempfile.mkdtemp(prefix="alpa-fuzz-graph-")


def _int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _pair(v):
    return isinstance(v, list) and len(v) == 2 and all(_int(n) for n in v)


# Options of the documented Python types (a wrong type is a TypeError by
# Python's convention, not what this target looks for); their values are
# fuzzed as they come.
_OPTION_TYPES = {
    "num_micro_batches": _int, "num_layers": _int, "max_num_stages": _int,
    "schedule": lambda v: isinstance(v, str), "optimizer": lambda v: isinstance(v, str),
    "memory_budget": lambda v: _int(v) or isinstance(v, (float, str)),
    "plan_overrides": lambda v: isinstance(v, dict) and all(
        isinstance(x, str) for x in v.values()),
    "layer_boundaries": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    "stage_meshes": lambda v: isinstance(v, list) and all(_pair(x) for x in v),
}


def _mesh(value):
    """Small meshes only (at most 8 devices; non-positive sizes pass)."""
    if not _pair(value):
        return (1, 2)
    n0, n1 = value
    while n0 * n1 > 8 and n0 > 0 and n1 > 0:
        n0, n1 = (max(1, n0 // 2), n1) if n0 >= n1 else (n0, max(1, n1 // 2))
    return (n0, n1)


def _load(text: str):
    path = os.path.join(_TMP, "g.json")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return alpa_torch.load(path)


def _round_trips(graph) -> None:
    first = graph.to_json()
    again = alpa_torch.CapturedGraph(_C.Graph.from_json(first))
    same_json(first, again.to_json(), "graph: load -> to_json -> load")
    text = graph.graph.to_text()
    ok, back = allowed(_C.Graph.from_text, text)
    if not ok:
        raise Finding(f"graph: to_text() does not read back with from_text: {back}")
    same_json(first, alpa_torch.CapturedGraph(back).to_json(), "graph: to_text -> from_text")


def one_input(data: bytes) -> None:
    text, doc = decode_json(data)
    if text is None:
        return
    if isinstance(doc, dict) and "graph" in doc:
        graph_text, options = dump(doc["graph"]), doc.get("options")
    else:
        graph_text, options = text, None
    ok, graph = allowed(_load, graph_text)
    if not ok:
        return
    _round_trips(graph)
    options = options if isinstance(options, dict) else {}
    kwargs = {k: v for k, v in options.items() if k in _OPTION_TYPES and _OPTION_TYPES[k](v)}
    method = options.get("method", "intra_op")
    if not isinstance(method, str):
        method = "intra_op"
    ok, plan = allowed(alpa_torch.plan, graph, mesh_shape=_mesh(options.get("mesh", [1, 2])),
                       method=method, time_limit_s=10.0, **kwargs)
    if not ok:
        return
    again = alpa_torch.Plan.from_json(plan.to_json())
    same_json(plan.to_json(), again.to_json(), "plan of the graph: to_json -> from_json")
    plan.explain()
    for stage in range(len(plan.stages)):
        # every stage's local program (csrc/rewrite/) is built or refused
        # with a documented exception, and its text reads back equal
        ok, program = allowed(_C.build_local_program, graph.graph, plan.to_json(), stage)
        if not ok:
            continue
        text = str(program)
        if _C.LocalProgram.parse(text) != program:
            raise Finding(f"stage {stage}'s local program does not read back from its text:\n{text}")
