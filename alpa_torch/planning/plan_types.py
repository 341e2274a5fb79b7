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

__all__ = ["CollectiveRecord", "Stage", "Plan"]


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
    role: _C.CollectiveRole = _C.CollectiveRole.reshard


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
    def compute_time(self) -> float:
        """Seconds of the predicted time spent computing (0 in cost mode "alpa")."""
        return self._doc.get("compute_time", 0.0)

    @property
    def communication_time(self) -> float:
        """Seconds of the predicted time spent in collectives."""
        return self._doc.get("communication_time", 0.0)

    @property
    def remat(self) -> bool:
        """The stage runs its forward again in backward (rematerialization)
        and keeps only its inputs per microbatch in flight."""
        return bool(self._doc.get("remat", False))

    @property
    def peak_memory_bytes(self) -> float:
        """Bytes per device at the stage's busiest point of a step: with the
        microbatches it holds in flight (``memory_bytes`` is one microbatch's)."""
        return self._doc.get("peak_memory_bytes") or self._doc["memory_bytes"]

    @property
    def recompute_time(self) -> float:
        """Seconds of the predicted time spent recomputing (0 without remat)."""
        return self._doc.get("recompute_time", 0.0)

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
                                 c["bytes"], c["phase"], c["what"], c["input"],
                                 _C.CollectiveRole.__members__[c["role"]])
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
        """Bytes per device of the most loaded stage, with its microbatches
        in flight (``Stage.peak_memory_bytes``)."""
        return max(s.peak_memory_bytes for s in self.stages)

    @property
    def warnings(self) -> List[str]:
        return list(self._doc["warnings"])

    @property
    def graph_fingerprint(self) -> str:
        return self._doc["graph_fingerprint"]

    @property
    def precision(self) -> str:
        """``"fp32"``, or ``"bf16"``: the step runs under torch.autocast."""
        return self._doc.get("precision", "fp32")

    @property
    def cost_mode(self) -> str:
        """``"seconds"`` or ``"alpa"`` (see ``alpa_torch.plan``)."""
        return self._doc.get("cost_mode", "?")

    @property
    def cluster_spec(self) -> Dict[str, Any]:
        """The cluster the plan was made for, as its JSON dict (name,
        num_hosts, devices_per_host, device, intra_host, inter_host)."""
        return json.loads(json.dumps(self._doc["cluster"]))

    @property
    def graph_name(self) -> str:
        """The name of the graph the plan was made for (the model's class)."""
        return self._doc["graph"]

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
