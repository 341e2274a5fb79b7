"""The Megatron baseline: Megatron-LM's tensor-parallel layout of a
graph's linears, pinned and planned next to the solver's plan, so that
``explain()`` compares the two and the known layout wins a tie.
"""
from __future__ import annotations

import json
from typing import Dict, List

from alpa_torch.errors import PlanInfeasibleError
from alpa_torch.planning.plan_types import Plan

__all__ = ["megatron_overrides", "with_megatron_baseline", "MEGATRON_TIE"]

# -- Megatron baseline -----------------------------------------------------
# Ops through which a tensor-parallel split of features carries unchanged
# from a column-parallel linear to the row-parallel one that consumes it
# (Megatron-LM §3: Y = GeLU(XA), Z = YB with A split by columns, B by
# rows): layout ops, the rotary embedding and GQA repeat, activations,
# attention, and elementwise arithmetic between activations.
_CARRY_OPS = frozenset("""
    view reshape _unsafe_view flatten unflatten transpose permute t unsqueeze squeeze
    expand clone contiguous _to_copy to alias type_as dropout native_dropout slice narrow
    select neg cat chunk split split_with_sizes getitem silu gelu relu tanh sigmoid
    mul add sub div scaled_dot_product_attention matmul bmm softmax _softmax
""".split())
_REDUCTIONS = frozenset("mean sum var var_mean std amax max norm".split())


def _base(op: str) -> str:
    parts = op.split(".")
    return parts[1] if len(parts) > 2 else parts[-1]


def megatron_overrides(graph, axes) -> Dict[str, str]:
    """Megatron's parameter layout for ``graph`` (a ``CapturedGraph`` or
    ``_C.Graph``), tensor-parallel over mesh ``axes`` (an int or a tuple,
    ``(0, 1)`` for both axes of a 2-D mesh): ``{fqn: spec}``.

    A ``linear`` is row-parallel (weight ``RS<axes>``, bias ``R``) when its
    input derives, through `_CARRY_OPS` only, from other linears' outputs;
    those are column-parallel (weight ``S<axes>R``, bias ``S<axes>``). A
    product with a parameter (a norm's scale) or with a reduction's result
    (a normalisation) ends the search: the features are whole again there.
    Empty when the graph has no such pair."""
    nodes = list(getattr(graph, "graph", graph).nodes)
    trainable = {n.id for n in nodes if n.kind == "parameter"}
    derived = set(trainable)  # values computed from trainable parameters only
    reduced = set()           # statistics: a reduction and unary ops of it (rsqrt(mean + eps))
    for n in nodes:
        if n.kind != "op":
            continue
        ins = [i for i, _ in n.inputs]
        if ins and all(i in derived for i in ins):
            derived.add(n.id)
        if _base(n.op) in _REDUCTIONS or (len(ins) == 1 and ins[0] in reduced):
            reduced.add(n.id)
    by_id = {n.id: n for n in nodes}

    def weight_of(n):
        if _base(n.op) != "linear" or len(n.inputs) < 2 or n.inputs[1][0] not in trainable:
            return None
        return by_id[n.inputs[1][0]]

    def producers(start: int) -> List[int]:
        found, seen, todo = [], set(), [start]
        while todo:
            node = by_id[todo.pop()]
            if node.id in seen or node.kind != "op":
                continue
            seen.add(node.id)
            if weight_of(node) is not None:
                found.append(node.id)
                continue
            base = _base(node.op)
            ins = [i for i, _ in node.inputs]
            if base not in _CARRY_OPS:
                continue
            if base in ("mul", "div") and any(i in derived or i in reduced for i in ins):
                continue  # a norm's scale or a normalisation
            if base == "scaled_dot_product_attention":
                ins = ins[:3]
            todo.extend(i for i in ins if i not in derived)
        return found

    axis = "".join(str(a) for a in ((axes,) if isinstance(axes, int) else axes))
    col, row = f"S{axis}R", f"RS{axis}"
    pins: Dict[str, str] = {}
    for n in nodes:
        w = weight_of(n) if n.kind == "op" else None
        if w is None:
            continue
        cols = producers(n.inputs[0][0])
        if not cols:
            continue
        pins[w.target] = row
        if len(n.inputs) > 2 and n.inputs[2][0] in trainable:
            pins[by_id[n.inputs[2][0]].target] = "R"
        for c in cols:
            cn = by_id[c]
            pins.setdefault(weight_of(cn).target, col)
            if len(cn.inputs) > 2 and cn.inputs[2][0] in trainable:
                pins.setdefault(by_id[cn.inputs[2][0]].target, f"S{axis}")
    return pins


# Relative step-time difference under which the pinned Megatron plan is
# preferred to the solver's: below the cost model's resolution (an all-gather
# before a column-split matmul costs what an all-reduce after a row-split
# one does, forward plus backward), the known layout wins the tie.
MEGATRON_TIE = 1e-3


def with_megatron_baseline(chosen: Plan, graph, plan_with_overrides) -> Plan:
    """``chosen`` with a note comparing it to the Megatron layout pinned on
    each tensor-parallel candidate axis (`megatron_overrides`), planned by
    ``plan_with_overrides(overrides) -> Plan``; the pinned plan itself when
    it is predicted no slower (`MEGATRON_TIE`). Pinned plans that fail
    (memory) are noted as such."""
    if len(chosen.stages) != 1:
        return chosen
    shape = chosen.stages[0].mesh_shape
    best, notes = chosen, []
    candidates = [(a,) for a in (1, 0) if shape[a] > 1]
    if len(candidates) == 2:
        candidates.append((0, 1))
    for axes in candidates:
        pins = megatron_overrides(graph, axes)
        if not pins:
            continue
        n_row = sum(1 for s in pins.values() if s.startswith("RS"))
        what = (f"Megatron baseline (tensor-parallel on mesh axes {list(axes)}: "
                f"{len(pins) - n_row} column- and {n_row} row-split weights pinned)")
        try:
            pinned = plan_with_overrides(pins)
        except (PlanInfeasibleError, ValueError, NotImplementedError) as e:
            notes.append(f"{what}: no plan ({str(e).splitlines()[0]})")
            continue
        t, t0 = pinned.predicted_step_time, chosen.predicted_step_time
        notes.append(f"{what}: predicted {t:.6g} s/step vs the solver's {t0:.6g} s "
                     f"({(t - t0) / t0 * 100:+.3g}%)")
        if t <= best.predicted_step_time * (1 + MEGATRON_TIE):
            best = pinned
    if not notes:
        return chosen
    if best is not chosen:
        notes.append(f"using the pinned Megatron plan: within {MEGATRON_TIE:.1%} of the solver's or faster")
    doc = json.loads(best.to_json())
    doc["notes"] = list(doc["notes"]) + notes
    return Plan(json.dumps(doc), best.solver)
