"""Plan: the planner's decision, as Python objects over its JSON form.

``Plan.param_specs`` maps each parameter FQN to its ShardingSpec string for a
single-stage plan; ``Plan.stages[i]`` holds each stage's part otherwise.
``Plan.collectives()`` lists every collective the runtime will issue,
forward and backward (gradient all-reduces included).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from alpa_torch import _C


@dataclass(frozen=True)
class CollectiveRecord:
    stage: int
    node: str
    kind: str           # all_reduce, all_gather, reduce_scatter, all_to_all, send_recv
    axes: Tuple[int, ...]
    bytes: float        # per device
    phase: str          # forward or backward
    what: str           # for people (explain()); code reads `role`
    input: int = -1     # the node input it concerns (-1: outputs or statistics)
    # why it runs: reshard, partial_output, input_grad, parameter_grad,
    # synced_statistics, synced_statistic_grads, token_dispatch, token_combine
    role: str = "reshard"


class Stage:
    """One pipeline stage: a sub-mesh, its logical shape, its shardings."""

    def __init__(self, doc: Dict[str, Any]):
        self._doc = doc

    @property
    def index(self) -> int:
        return self._doc["index"]

    @property
    def mesh_shape(self) -> Tuple[int, int]:
        return tuple(self._doc["mesh_shape"])

    @property
    def device_ids(self) -> List[int]:
        return list(self._doc["device_ids"])

    @property
    def param_specs(self) -> Dict[str, str]:
        return dict(self._doc["param_specs"])

    @property
    def input_specs(self) -> Dict[str, str]:
        return dict(self._doc["input_specs"])

    @property
    def node_specs(self) -> Dict[str, Dict[str, Any]]:
        """node name -> {"strategy", "inputs", "outputs"}."""
        return {n["node"]: {k: n[k] for k in ("strategy", "inputs", "outputs")}
                for n in self._doc["nodes"]}

    @property
    def predicted_time(self) -> float:
        return self._doc["predicted_time"]

    @property
    def memory_bytes(self) -> float:
        return self._doc["memory_bytes"]

    @property
    def layers(self) -> Tuple[int, int]:
        """First and last layer (inclusive) of the clustering this stage runs."""
        return tuple(self._doc["layers"])

    @property
    def submesh(self) -> Tuple[int, int]:
        """Physical sub-mesh: (hosts, devices per host)."""
        return tuple(self._doc["submesh"])

    @property
    def inputs(self) -> List[Dict[str, Any]]:
        """Values received from the previous stage: name, producer, index,
        meta, spec, requires_grad."""
        return [dict(v) for v in self._doc["inputs"]]

    @property
    def outputs(self) -> List[Dict[str, Any]]:
        """Values sent to the next stage (same fields as ``inputs``)."""
        return [dict(v) for v in self._doc["outputs"]]

    @property
    def graph_outputs(self) -> List[int]:
        """Indices of the model's outputs this stage produces."""
        return list(self._doc["graph_outputs"])

    def __repr__(self) -> str:
        return (f"<Stage {self.index}: layers {self.layers[0]}..{self.layers[1]} on "
                f"devices {self.device_ids} as {self.mesh_shape}, "
                f"{self.predicted_time:.3e} s>")

    def collectives(self) -> List[CollectiveRecord]:
        return [CollectiveRecord(self.index, c["node"], c["kind"], tuple(c["axes"]),
                                 c["bytes"], c["phase"], c["what"], c["input"], c["role"])
                for c in self._doc["collectives"]]


class Plan:
    """A plan; build one with ``alpa_torch.plan(...)`` or ``Plan.from_json``.

    Every plan is validated when it is made or loaded (C++
    plan/plan_validation.h): its cluster is sane and bounded, its stages run
    contiguous layers on distinct devices of the cluster, every spec names
    existing mesh axes and fits the shapes the plan records, and the values
    sent between stages line up. A plan that fails raises ValueError naming
    the field, its value, what is allowed and how to fix it."""

    def __init__(self, plan_json: str, solver: Optional[Dict[str, Any]] = None):
        self._json = _C.plan_normalize(plan_json)  # parses and validates
        self._doc = json.loads(self._json)
        self.solver = dict(solver or {})  # sizes and timings; not part of the JSON
        self.stages = [Stage(s) for s in self._doc["stages"]]

    # -- contract of DESIGN §4 ---------------------------------------------
    @property
    def param_specs(self) -> Dict[str, str]:
        if len(self.stages) != 1:
            raise ValueError(f"this plan has {len(self.stages)} stages; read "
                             f"plan.stages[i].param_specs for each")
        return self.stages[0].param_specs

    def collectives(self) -> List[CollectiveRecord]:
        return [c for s in self.stages for c in s.collectives()]

    @property
    def predicted_step_time(self) -> float:
        """Seconds per training step: Σ stage times + (B − 1)·slowest stage
        (Alpa §5.2); the stage's time for a single stage."""
        times = [s.predicted_time for s in self.stages]
        return sum(times) + (self.num_micro_batches - 1) * max(times)

    @property
    def num_micro_batches(self) -> int:
        return self._doc["num_micro_batches"]

    @property
    def schedule(self) -> str:
        return self._doc["schedule"]

    @property
    def num_layers(self) -> int:
        return self._doc["num_layers"]

    @property
    def notes(self) -> List[str]:
        """Why the planner chose this plan (the candidates it compared)."""
        return list(self._doc["notes"])

    @property
    def memory_per_device(self) -> float:
        """Bytes per device of the most loaded stage."""
        return max(s.memory_bytes for s in self.stages)

    @property
    def warnings(self) -> List[str]:
        return list(self._doc["warnings"])

    @property
    def graph_fingerprint(self) -> str:
        return self._doc["graph_fingerprint"]

    def check_graph(self, graph) -> None:
        """Raises ValueError unless this plan was made for ``graph`` (a
        ``CapturedGraph`` or ``_C.Graph``): same fingerprint, and every
        parameter FQN, input, node name and recorded shape of the plan exists
        in the graph with specs that fit it."""
        _C.plan_check_graph(self._json, getattr(graph, "graph", graph))

    def explain(self) -> str:
        return _C.plan_explain(self._json)

    def to_json(self, indent: Optional[int] = None) -> str:
        if indent is None:
            return self._json
        return json.dumps(self._doc, indent=indent)

    @classmethod
    def from_json(cls, text: str) -> "Plan":
        return cls(text)

    def save(self, path) -> None:
        with open(path, "w", encoding="utf-8") as f:
            f.write(self._json + "\n")

    @classmethod
    def load(cls, path) -> "Plan":
        with open(path, "r", encoding="utf-8") as f:
            return cls(f.read())

    def __eq__(self, other) -> bool:
        return isinstance(other, Plan) and self._json == other._json

    def __repr__(self) -> str:
        return (f"<Plan {self._doc['graph']!r}: {len(self.stages)} stage(s), "
                f"{self.predicted_step_time:.3e} s/step, "
                f"{self.memory_per_device / 2**30:.3f} GiB/device>")


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
    from alpa_torch.errors import PlanInfeasibleError
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
