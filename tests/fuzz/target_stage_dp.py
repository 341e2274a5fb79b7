"""Fuzz target (d): ``alpa_torch.stage_dp`` with an exhaustive-search oracle.

Input: JSON ``{"costs": [L][L][M][C], "submeshes": [[h, d], ...], "B": int,
"bounds": [L][L][M][C] | null, "num_devices": int | null,
"max_num_stages": int | null, "numpy": bool}``. Whatever the DP returns is
checked against the table (contiguous stages covering every layer, the
costs it names, exactly D devices, the stage count and memory bounds, the
total recomputed); on small tables (few stage splits) it must equal the
optimum of an exhaustive search over every split, sub-mesh and config, and
PlanInfeasibleError must mean that search finds no plan either.
"""
from __future__ import annotations

import math

from common import Finding, allowed, close, decode_json

import alpa_torch
from alpa_torch.errors import PlanInfeasibleError

_MAX_SEARCH = 50000   # stage-split assignments tried by the exhaustive search
_RTOL = 1e-9


def _entry(table, i, k, m, c, default):
    try:
        v = table[i][k][m][c]
    except (IndexError, KeyError, TypeError):
        return default
    return default if v is None else v


def _bound(bounds, i, k, m, c) -> float:
    if bounds is None:
        return math.inf
    v = _entry(bounds, i, k, m, c, math.inf)
    return v if v != math.inf and v < 2**62 else math.inf


def _latency(times, B) -> float:
    return sum(times) + (B - 1) * max(times)


def _check_result(r, costs, subs, B, bounds, D, max_stages, L) -> None:
    layer = 0
    for n, s in enumerate(r.stages):
        if s.start_layer != layer or s.end_layer < s.start_layer:
            raise Finding(f"stage {n} is layers {s.start_layer}..{s.end_layer}; expected a "
                          f"stage starting at layer {layer}")
        layer = s.end_layer + 1
        want = costs[s.start_layer][s.end_layer][s.submesh][s.logical_config_index]
        if not close(s.cost, float(want), _RTOL) or math.isinf(s.cost):
            raise Finding(f"stage {n} reports cost {s.cost}, the table says {want}")
        succ = len(r.stages) - 1 - n
        if _bound(bounds, s.start_layer, s.end_layer, s.submesh, s.logical_config_index) < succ:
            raise Finding(f"stage {n} has {succ} successors; its memory bound allows fewer")
    if layer != L:
        raise Finding(f"the stages cover layers 0..{layer - 1} of {L}")
    used = sum(subs[s.submesh][0] * subs[s.submesh][1] for s in r.stages)
    if used != D:
        raise Finding(f"the stages use {used} devices, not D = {D}")
    if max_stages is not None and len(r.stages) > max_stages:
        raise Finding(f"{len(r.stages)} stages, max_num_stages = {max_stages}")
    times = [s.cost for s in r.stages]
    if not close(r.total_time, _latency(times, B), _RTOL):
        raise Finding(f"total_time {r.total_time} != Σt + (B-1)·max t = {_latency(times, B)}")
    if not close(r.t_max, max(times), _RTOL):
        raise Finding(f"t_max {r.t_max} != the slowest stage {max(times)}")


def _search(costs, subs, B, bounds, D, max_stages, L):
    """Least latency over every plan (None: no plan), or False when the
    search would try more than _MAX_SEARCH assignments."""
    options = {}  # (i, k) -> [(cost, devices, bound)]
    for i in range(L):
        for k in range(i, L):
            options[i, k] = [(float(costs[i][k][m][c]), subs[m][0] * subs[m][1],
                              _bound(bounds, i, k, m, c))
                             for m in range(len(subs)) for c in range(len(costs[i][k][m]))
                             if not math.isinf(float(costs[i][k][m][c]))]
    best, tried = [None], [0]

    def walk(i, devices, chosen):
        tried[0] += 1
        if tried[0] > _MAX_SEARCH:
            raise OverflowError
        if i == L:
            S = len(chosen)
            if devices == D and (max_stages is None or S <= max_stages) and all(
                    b >= S - 1 - n for n, (_, b) in enumerate(chosen)):
                t = _latency([c for c, _ in chosen], B)
                best[0] = t if best[0] is None else min(best[0], t)
            return
        for k in range(i, L):
            for cost, n, b in options[i, k]:
                if devices + n <= D:
                    walk(k + 1, devices + n, chosen + [(cost, b)])

    try:
        walk(0, 0, [])
    except OverflowError:
        return False
    return best[0]


def one_input(data: bytes) -> None:
    _, doc = decode_json(data)
    if not isinstance(doc, dict):
        return
    costs, subs = doc.get("costs"), doc.get("submeshes")
    B, bounds = doc.get("B", 1), doc.get("bounds")
    D, max_stages = doc.get("num_devices"), doc.get("max_num_stages")
    args = costs, bounds
    if doc.get("numpy"):
        import numpy as np
        try:  # the harness's own conversion; what numpy refuses is no finding
            args = (np.array(costs, dtype=float),
                    None if bounds is None else np.array(bounds))
        except Exception:  # noqa: BLE001
            return
    ok, r = allowed(alpa_torch.stage_dp, args[0], subs, B, args[1], D, max_num_stages=max_stages)
    # From here the input was accepted or rejected: check the answer.
    valid = ok or isinstance(r, PlanInfeasibleError)
    if not valid:
        return
    L = len(costs)
    subs = [tuple(s) for s in subs]
    if D is None:
        D = max(h * d for h, d in subs)
    if ok:
        _check_result(r, costs, subs, B, bounds, D, max_stages, L)
    best = _search(costs, subs, B, bounds, D, max_stages, L)
    if best is False:
        return
    if not ok and best is not None:
        raise Finding(f"stage_dp says infeasible ({r}); exhaustive search finds latency {best}")
    if ok and best is None:
        raise Finding(f"stage_dp returned latency {r.total_time}; exhaustive search finds no plan")
    if ok and not close(r.total_time, best, 1e-9):
        raise Finding(f"stage_dp latency {r.total_time} != exhaustive optimum {best}")
