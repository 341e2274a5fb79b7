"""Inter-operator parallelism: Alpa's stage DP (OSDI'22 §5.2) as plain data.

Given what every contiguous run of layers costs as one pipeline stage on every
sub-mesh and logical mesh shape, ``stage_dp`` picks the stages, their
sub-meshes and shapes that minimize the latency of B microbatches::

    T* = min over t_max of  [ min_s F(s, 0, D) + (B - 1) * t_max ]
    F(s, i, d) = min over k >= i, m, c of F(s-1, k+1, d - n_m) + t(i, k, m, c)
                 subject to t(i, k, m, c) <= t_max and s-1 <= max_n_succ(i, k, m, c)

where D devices are used exactly, sub-mesh m has n_m devices, and a stage
fits in memory only while at most ``max_n_succ`` stages follow it (under
1F1B the first stage holds the most microbatches in flight). The solver is
exact and runs in C++ (see ``csrc/inter_op/stage_dp.h`` for how it prunes
the t_max search); ``submeshes`` and ``logical_mesh_shapes`` give Alpa's
choices of sub-mesh and logical shape, ``place_submeshes`` turns a chosen
sequence of sub-meshes into device ids.
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence as _SequenceABC
from dataclasses import dataclass, field
from typing import Any, List, NamedTuple, Optional, Sequence, Tuple

from alpa_torch import _C

try:  # numpy is optional: nested lists always work
    import numpy as _np
except ImportError:  # pragma: no cover - depends on the environment
    _np = None

__all__ = ["Submesh", "StageChoice", "StageDPResult", "submeshes", "logical_mesh_shapes",
           "place_submeshes", "stage_dp"]

Submesh = Tuple[int, int]

# Bounds at or above this are "unbounded" (the C++ side caps them anyway).
_UNBOUNDED = 2**62


class StageChoice(NamedTuple):
    """One pipeline stage: layers ``start_layer..end_layer`` (inclusive) on
    ``submeshes[submesh]`` with logical config ``logical_config_index``;
    ``cost`` in seconds."""
    start_layer: int
    end_layer: int
    submesh: int
    logical_config_index: int
    cost: float


@dataclass(frozen=True)
class StageDPResult:
    """The optimal pipeline. ``total_time`` = Σ stage costs + (B-1)·``t_max``
    (seconds); ``stages`` in pipeline order (stage 0 holds layer 0)."""
    total_time: float
    t_max: float
    stages: List[StageChoice]
    submeshes: List[Submesh] = field(default_factory=list)
    num_t_max_evaluated: int = 0
    solve_seconds: float = 0.0

    @property
    def stage_submeshes(self) -> List[Submesh]:
        """The (hosts, devices_per_host) sub-mesh of each stage."""
        return [self.submeshes[s.submesh] for s in self.stages]

    def __repr__(self) -> str:
        lines = [f"StageDPResult(total_time={self.total_time:.6g} s, "
                 f"t_max={self.t_max:.6g} s, {len(self.stages)} stage(s), "
                 f"{self.num_t_max_evaluated} t_max evaluated"]
        for n, s in enumerate(self.stages):
            shape = self.submeshes[s.submesh] if s.submesh < len(self.submeshes) else "?"
            lines.append(f"  stage {n}: layers {s.start_layer}..{s.end_layer} on "
                         f"{tuple(shape)} (submesh {s.submesh}), config "
                         f"{s.logical_config_index}, {s.cost:.6g} s")
        return "\n".join(lines) + ")"


def _cluster_json(cluster: Any) -> str:
    if isinstance(cluster, str):
        return cluster
    if isinstance(cluster, dict):
        return json.dumps(cluster)
    if hasattr(cluster, "to_json"):
        return cluster.to_json()
    raise TypeError(f"cluster must be an alpa_torch.Cluster, a dict or its JSON text; "
                    f"got {type(cluster).__name__}")


def submeshes(cluster: Any) -> List[Submesh]:
    """Alpa's sub-mesh choices for ``cluster`` (an ``alpa_torch.Cluster``, a
    dict or JSON): (1, 1), (1, 2), (1, 4), ... within a host, then (2, M),
    ..., (H, M) whole hosts."""
    return [tuple(s) for s in _C.submeshes(_cluster_json(cluster))]


def logical_mesh_shapes(submesh: Submesh) -> List[Tuple[int, int]]:
    """Logical (n0, n1) shapes to try on ``submesh``: (n, 1), then (n/k, k)
    for powers of two k dividing n, then the physical shape."""
    return [tuple(s) for s in _C.logical_mesh_shapes(_as_submesh(submesh, "submesh"))]


def place_submeshes(cluster: Any, stage_submeshes: Sequence[Submesh]) -> List[List[int]]:
    """Device ids of each stage's sub-mesh (stages in pipeline order); every
    device is used once and a single-host sub-mesh never straddles hosts."""
    shapes = [_as_submesh(s, f"stage_submeshes[{n}]") for n, s in enumerate(stage_submeshes)]
    return [list(ids) for ids in _C.place_submeshes(_cluster_json(cluster), shapes)]


# Sizes the C++ stage DP accepts (csrc/inter_op/stage_dp.h); checked here
# too so that no absurd size is flattened into a list first.
_MAX_COUNT = 2**62           # ints larger than this do not reach C++
_MAX_TABLE_ENTRIES = 2**24   # L * L * M * C


def _is_int(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (
        _np is not None and isinstance(value, _np.integer))


def _as_submesh(value: Any, name: str) -> Submesh:
    ok = (isinstance(value, (tuple, list)) and len(value) == 2 and
          all(_is_int(v) and v >= 1 for v in value))
    if not ok:
        raise ValueError(f"{name} must be a (num_hosts, devices_per_host) pair of positive "
                         f"ints, e.g. (1, 4); got {value!r}")
    if any(v > _MAX_COUNT for v in value):
        raise ValueError(f"{name} is {tuple(value)}: more devices than the stage DP takes")
    return (int(value[0]), int(value[1]))


def _is_rows(value: Any) -> bool:
    return isinstance(value, (list, tuple)) or (_np is not None and isinstance(value, _np.ndarray)
                                                and value.ndim >= 1)


_AXES = ("layers i", "layers k", "sub-meshes", "logical configs")


def _nested_shape(values: Any, name: str) -> Tuple[int, int, int, int]:
    """[L, L, M, C] of a nested list; every row is checked."""
    def not_rows(path: str, value: Any) -> ValueError:
        return ValueError(f"{name} must be a nested list or array of shape [L, L, M, C] "
                          f"(layers, layers, sub-meshes, logical configs); {name}{path} is "
                          f"{type(value).__name__}, not a list")
    shape: List[int] = []
    level = values
    for depth in range(4):
        if not _is_rows(level):
            raise not_rows("[0]" * depth, level)
        shape.append(len(level))
        if not shape[-1]:
            raise ValueError(f"{name} must have shape [L, L, M, C] with every size >= 1; its "
                             f"{_AXES[depth]} axis is empty")
        level = level[0]
    L, L2, M, C = shape
    if L2 != L:
        raise ValueError(f"{name} must have shape [L, L, M, C]; got [{L}, {L2}, ...]")
    if L * L * M * C > _MAX_TABLE_ENTRIES:
        raise ValueError(f"{name} has {L} x {L} x {M} x {C} entries, more than the stage DP "
                         f"takes (2^24)")

    def check(rows: Any, depth: int, path: str) -> None:
        if not _is_rows(rows):
            raise not_rows(path, rows)
        if len(rows) != shape[depth]:
            what = {1: "entries; every row needs", 2: "sub-mesh entries; expected",
                    3: "configs; expected"}[depth]
            raise ValueError(f"{name}{path} has {len(rows)} {what} {shape[depth]} "
                             f"(shape [L, L, M, C])")
        if depth < 3:
            for i, row in enumerate(rows):
                check(row, depth + 1, f"{path}[{i}]")
    for i, row in enumerate(values):
        check(row, 1, f"[{i}]")
    return (L, L2, M, C)


def _shape_of(values: Any, name: str, num_submeshes: int) -> Tuple[int, int, int, int]:
    """[L, L, M, C] of a nested list (every row checked) or array."""
    if _np is not None and isinstance(values, _np.ndarray):
        if values.ndim != 4:
            raise ValueError(f"{name} must have 4 dimensions [L, L, M, C] (layers, layers, "
                             f"sub-meshes, logical configs); got shape {values.shape}")
        shape = tuple(int(n) for n in values.shape)
        if values.size > _MAX_TABLE_ENTRIES:
            raise ValueError(f"{name} has shape {list(shape)}, more entries than the stage DP "
                             f"takes (2^24)")
    else:
        shape = _nested_shape(values, name)
    L, L2, M, C = shape
    if L < 1 or L2 != L or C < 1:
        raise ValueError(f"{name} must have shape [L, L, M, C] with L >= 1 layers and C >= 1 "
                         f"configs; got {list(shape)}")
    if M != num_submeshes:
        raise ValueError(f"{name} has {M} sub-mesh entries per layer range but submeshes lists "
                         f"{num_submeshes}; give one entry per sub-mesh (axis 2)")
    return shape


def _flat_costs(values: Any, L: int) -> List[float]:
    if _np is not None and isinstance(values, _np.ndarray):
        try:
            arr = _np.array(values, dtype=_np.float64)
        except (TypeError, ValueError, OverflowError):
            raise ValueError("stage_costs must hold numbers of seconds (math.inf = "
                             "infeasible)") from None
        arr[_np.tril_indices(L, -1)] = math.inf  # k < i: unused
        if _np.isnan(arr).any():
            raise ValueError("stage_costs contains NaN; use math.inf for an infeasible stage")
        return arr.ravel().tolist()
    out: List[float] = []
    for i, row in enumerate(values):
        for k, per_mesh in enumerate(row):
            for m, configs in enumerate(per_mesh):
                for c, v in enumerate(configs):
                    if k < i:
                        out.append(math.inf)
                        continue
                    try:
                        if isinstance(v, (bool, str, bytes)):
                            raise TypeError
                        x = float(v)
                    except (TypeError, ValueError, OverflowError):
                        raise ValueError(f"stage_costs[{i}][{k}][{m}][{c}] must be a number of "
                                         f"seconds (math.inf = infeasible); got "
                                         f"{repr(v)[:40]}") from None
                    if math.isnan(x):
                        raise ValueError(f"stage_costs[{i}][{k}][{m}][{c}] is NaN; use math.inf "
                                         f"for an infeasible stage")
                    out.append(x)
    return out


def _flat_bounds(values: Any) -> List[int]:
    if _np is not None and isinstance(values, _np.ndarray):
        if values.dtype.kind not in "iu":
            raise ValueError(f"max_n_succ_stages must hold integers; got dtype {values.dtype}")
        if values.size and values.min() < -1:
            raise ValueError(f"max_n_succ_stages must be >= -1 (-1 = never fits); its least "
                             f"entry is {values.min()}")
        return _np.minimum(values, _UNBOUNDED).astype(_np.int64).ravel().tolist()
    out: List[int] = []
    for i, row in enumerate(values):
        for k, per_mesh in enumerate(row):
            for m, configs in enumerate(per_mesh):
                for c, v in enumerate(configs):
                    where = f"max_n_succ_stages[{i}][{k}][{m}][{c}]"
                    if v is None or (isinstance(v, float) and v == math.inf):
                        out.append(_UNBOUNDED)
                    elif not _is_int(v):
                        raise ValueError(f"{where} must be an int (-1 = never fits, None = "
                                         f"unbounded); got {v!r}")
                    elif v < -1:
                        raise ValueError(f"{where} must be >= -1 (-1 = never fits); got {v}")
                    else:
                        out.append(min(int(v), _UNBOUNDED))
    return out


def stage_dp(stage_costs: Any, submeshes: Sequence[Submesh], num_micro_batches: int,
             max_n_succ_stages: Any = None, num_devices: Optional[int] = None, *,
             max_num_stages: Optional[int] = None) -> StageDPResult:
    """The latency-optimal pipeline (Alpa §5.2).

    Args:
      stage_costs: shape [L, L, M, C] (nested lists, or a numpy array):
        seconds to run layers i..k (inclusive) as one stage on ``submeshes[m]``
        with logical config c; ``math.inf`` = infeasible; entries with k < i
        are ignored.
      submeshes: the M sub-meshes as (num_hosts, devices_per_host) pairs,
        e.g. ``inter_op.submeshes(cluster)``.
      num_micro_batches: B >= 1.
      max_n_succ_stages: same shape, ints: the most stages that may follow the
        stage for it to fit in memory (-1 = never fits; None or a value
        >= L-1 = unbounded). None: no memory bound at all.
      num_devices: D, the devices every plan uses exactly. Defaults to the
        largest sub-mesh's device count (the whole cluster when ``submeshes``
        comes from ``inter_op.submeshes``).
      max_num_stages: at most this many stages (default: no limit).

    Raises ValueError for malformed input and
    ``alpa_torch.PlanInfeasibleError`` when no plan exists (the message says
    why: a layer no stage can hold, device counts, or the memory bounds).
    """
    if isinstance(submeshes, (str, bytes)) or not isinstance(submeshes, _SequenceABC) or not submeshes:
        raise ValueError("submeshes must be a non-empty list of (num_hosts, devices_per_host) "
                         "pairs, e.g. alpa_torch.planning.inter_op.submeshes(cluster)")
    shapes = [_as_submesh(s, f"submeshes[{n}]") for n, s in enumerate(submeshes)]
    L, _, M, C = _shape_of(stage_costs, "stage_costs", len(shapes))
    if max_n_succ_stages is not None:
        bound_shape = _shape_of(max_n_succ_stages, "max_n_succ_stages", len(shapes))
        if bound_shape != (L, L, M, C):
            raise ValueError(f"max_n_succ_stages has shape {list(bound_shape)} but stage_costs "
                             f"has {[L, L, M, C]}; give one bound per cost entry")
    for name, value in (("num_micro_batches", num_micro_batches), ("num_devices", num_devices),
                        ("max_num_stages", max_num_stages)):
        if value is None and name != "num_micro_batches":
            continue
        if not _is_int(value) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if value > _MAX_COUNT:
            raise ValueError(f"{name} is {value}, beyond what the stage DP takes (see "
                             f"alpa_torch.stage_dp)")
    num_micro_batches = int(num_micro_batches)
    num_devices = None if num_devices is None else int(num_devices)
    max_num_stages = None if max_num_stages is None else int(max_num_stages)
    if num_devices is None:
        num_devices = min(max(h * d for h, d in shapes), _MAX_COUNT)
    raw = _C.stage_dp(L, shapes, [C] * M, _flat_costs(stage_costs, L),
                      [] if max_n_succ_stages is None else _flat_bounds(max_n_succ_stages),
                      num_devices, num_micro_batches, max_num_stages)
    return StageDPResult(
        total_time=raw["total_time"], t_max=raw["t_max"],
        stages=[StageChoice(*s) for s in raw["stages"]], submeshes=shapes,
        num_t_max_evaluated=raw["num_t_max_evaluated"], solve_seconds=raw["solve_seconds"])
