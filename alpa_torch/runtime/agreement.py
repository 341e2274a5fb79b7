"""What every rank of a job must agree on before it runs a plan: the
options, the captured graph and the plan itself.

Rank 0 plans for all, so a rank whose own options, model or example differ
would silently run rank 0's plan on the wrong model; each step here is one
collective that raises on every rank instead, naming the ranks that differ.
Used by parallelize() (both paths) and the torch.compile backend.
"""
from __future__ import annotations

import datetime
import inspect
from typing import Any, Dict, List, Optional, Sequence

import torch.distributed as dist

from alpa_torch import errors
from alpa_torch.planning.planner import parse_bytes, plan as make_plan
from alpa_torch.planning.plan_types import Plan
from alpa_torch.runtime import health
from alpa_torch.runtime.mesh import DEFAULT_TIMEOUT

__all__ = ["agree_on_options", "check_same_graph_everywhere", "plan_on_rank0"]


# ---- options every rank must agree on ------------------------------------------

# Only rank 0 plans, and each rank waits with its own timeout: these may differ.
_PER_RANK_OPTIONS = ("progress", "time_limit_s", "num_threads", "timeout")
_PLAN_DEFAULTS = {name: p.default for name, p in inspect.signature(make_plan).parameters.items()
                  if p.default is not inspect.Parameter.empty}


def agree_on_options(options: Dict[str, Any], local_error: Optional[BaseException] = None,
                     timeout: datetime.timedelta = DEFAULT_TIMEOUT,
                     what: str = "parallelize()") -> None:
    """Checks, in one all_gather_object, that every rank passed the same
    options (rank 0 plans for all, so a rank's own mesh or pins would be
    ignored without a word) and that no rank's arguments were rejected, and
    raises on every rank if not; then starts this rank's heartbeat
    (alpa_torch/runtime/health.py) for the job, named by rank 0."""
    error = None if local_error is None else f"{type(local_error).__name__}: {local_error}"
    mine = {"options": _canonical_options(options), "error": error,
            "process": health.this_process(),
            "job": health.proposed_job() if dist.get_rank() == 0 else None}
    everyone: List[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, mine)
    if local_error is not None:
        raise local_error
    bad = [(r, e["error"]) for r, e in enumerate(everyone) if e["error"]]
    if bad:
        raise ValueError(f"rank {bad[0][0]} rejected its arguments to {what}: {bad[0][1]}"
                         + (f" (and ranks {[r for r, _ in bad[1:]]})" if len(bad) > 1 else ""))
    differences = _differences([e["options"] for e in everyone])
    if differences:
        raise ValueError(
            f"ranks passed different options to {what}, which must be the same on every rank "
            f"(rank 0 plans for all, so the others' would be ignored): " + "; ".join(differences)
            + ". Pass the same options on every rank")
    health.start(everyone[0]["job"], [tuple(e["process"]) for e in everyone],
                 timeout.total_seconds())


def _canonical_options(options: Dict[str, Any]) -> Dict[str, str]:
    given = {k: v for k, v in options.items() if k not in _PER_RANK_OPTIONS}
    full = {k: v for k, v in _PLAN_DEFAULTS.items() if k not in _PER_RANK_OPTIONS}
    full.update(given)
    for name in ("plan_overrides", "layer_boundaries", "stage_meshes"):
        if full.get(name) is None and name in full:
            full[name] = {} if name == "plan_overrides" else ()  # what None means
    if full.get("memory_budget") is not None:
        try:
            full["memory_budget"] = parse_bytes(full["memory_budget"])
        except (TypeError, ValueError):
            pass  # planning rejects it on rank 0
    return {k: _canonical(v) for k, v in sorted(full.items())}


def _canonical(value: Any) -> str:
    """Text equal for equal option values (tuples and lists alike, dicts sorted)."""
    if isinstance(value, datetime.timedelta):
        return f"{value.total_seconds()}s"
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: str(kv[0]))
        return "{" + ", ".join(f"{_canonical(k)}: {_canonical(v)}" for k, v in items) + "}"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(_canonical(v) for v in value) + ")"
    if hasattr(value, "to_json"):
        return value.to_json()
    return repr(value)


def _differences(per_rank: Sequence[Dict[str, str]]) -> List[str]:
    """'name: A on ranks [0, 2], B on rank [1]' for each option that differs."""
    out = []
    for name in sorted({k for options in per_rank for k in options}):
        holders: Dict[str, List[int]] = {}
        for r, options in enumerate(per_rank):
            holders.setdefault(options.get(name, "<not passed>"), []).append(r)
        if len(holders) > 1:
            parts = [f"{_short(v)} on rank{'s' if len(rs) > 1 else ''} {rs}"
                     for v, rs in sorted(holders.items(), key=lambda kv: kv[1])]
            out.append(f"option '{name}' is " + ", ".join(parts))
    return out


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


# ---- planning ------------------------------------------------------------------

def check_same_graph_everywhere(captured) -> None:
    """Raises ValueError on every rank unless all ranks captured the same
    graph (one all_gather_object of its fingerprint)."""
    mine = captured.graph.fingerprint()
    everyone: List[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, (mine, captured.graph.num_nodes))
    if len({f for f, _ in everyone}) != 1:
        odd = [r for r, (f, _) in enumerate(everyone) if f != everyone[0][0]]
        raise ValueError(
            f"ranks captured different graphs (ranks {odd} differ from rank 0): pass the same "
            f"example input shapes and the same model on every rank")


def plan_on_rank0(captured, shape, options) -> Plan:
    """Rank 0 plans ``captured`` (``alpa_torch.plan(captured, mesh_shape=shape,
    **options)``) and broadcasts the plan, so every rank runs the same one, bit
    for bit; a planning error is raised on every rank, as the same type."""
    box: List[Any] = [None]
    if dist.get_rank() == 0:
        try:
            p = make_plan(captured, mesh_shape=shape, **options)
            box[0] = ("ok", p.to_json(), p.solver)
        except Exception as e:  # noqa: BLE001 -- re-raised on every rank below
            box[0] = ("error", type(e).__name__, str(e))
    dist.broadcast_object_list(box, src=0)
    if box[0][0] == "error":
        kind = getattr(errors, box[0][1], None) or {"ValueError": ValueError,
                                                     "NotImplementedError": NotImplementedError,
                                                     "TypeError": TypeError}.get(box[0][1], RuntimeError)
        raise kind(f"planning failed on rank 0: {box[0][2]}")
    return Plan(box[0][1], box[0][2])
