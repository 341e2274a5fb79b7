"""``plan``: the planner's entry point (one process, no torch.distributed).

``plan`` captures the model (or takes a captured graph), builds the cluster
description, and runs the C++ planner. Planning never needs the cluster to
exist, so it runs anywhere, e.g. on a laptop for a 64-GPU cluster.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

import torch

from alpa_torch import _C
from alpa_torch.graph.capture import CapturedGraph, capture
from alpa_torch.planning.cluster import Cluster, as_cluster
from alpa_torch.planning.megatron import with_megatron_baseline
from alpa_torch.planning.plan_types import Plan

__all__ = ["plan", "parse_bytes", "parse_mesh_shape"]

_OPTIMIZER_STATE = {"adam": 2.0, "adamw": 2.0, "sgd": 0.0, "sgd_momentum": 1.0,
                    "adagrad": 1.0, "rmsprop": 1.0}
_COST_MODES = {"seconds": _C.CostMode.seconds, "alpa": _C.CostMode.alpa}
_UNITS = {"b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_bytes(value: Union[None, int, float, str]) -> float:
    """Bytes from a number or a string such as ``"12GiB"`` / ``"500 MB"``."""
    if value is None or value == math.inf:
        return math.inf
    if isinstance(value, bool):
        raise TypeError("memory_budget must be a number of bytes or a string like '16GiB'")
    if isinstance(value, (int, float)):
        if value <= 0:
            raise ValueError(f"memory_budget must be positive, got {value}")
        return float(value)
    if isinstance(value, str):
        m = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", value)
        if m and (m.group(2).lower() or "b") in _UNITS:
            return float(m.group(1)) * _UNITS[m.group(2).lower() or "b"]
        raise ValueError(f"cannot read memory_budget {value!r}; write bytes or e.g. '16GiB', '500MB'")
    raise TypeError(f"memory_budget must be a number of bytes or a string, got {type(value).__name__}")


def parse_mesh_shape(mesh_shape, cluster: Optional[Cluster]) -> Tuple[int, int]:
    """``mesh_shape`` as (n0, n1): an int n or a 1-tuple is (1, n); None is
    the cluster's (hosts, devices per host), else (1, world size) under
    torch.distributed, else (1, 1)."""
    if mesh_shape is None:
        if cluster is not None:
            return (cluster.num_hosts, cluster.devices_per_host)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return (1, torch.distributed.get_world_size())
        return (1, 1)
    if isinstance(mesh_shape, int):
        mesh_shape = (1, mesh_shape)
    shape = tuple(mesh_shape)
    if len(shape) == 1:
        shape = (1, shape[0])
    if len(shape) != 2 or not all(isinstance(n, int) and n >= 1 for n in shape):
        raise ValueError(f"mesh_shape must be (n0, n1) with positive ints, got {mesh_shape!r}")
    return shape


def _optimizer_factor(optimizer) -> float:
    if isinstance(optimizer, (int, float)) and not isinstance(optimizer, bool):
        return float(optimizer)
    key = str(optimizer).lower()
    if key not in _OPTIMIZER_STATE:
        raise ValueError(f"unknown optimizer {optimizer!r}: pass one of "
                         f"{sorted(_OPTIMIZER_STATE)} or the optimizer-state size in "
                         f"units of the parameters (Adam: 2)")
    return _OPTIMIZER_STATE[key]


def plan(module: Union[torch.nn.Module, CapturedGraph], example_args: Any = (),
         example_kwargs: Optional[Dict[str, Any]] = None, *,
         mesh_shape: Optional[Sequence[int]] = None,
         cluster: Union[None, str, Dict[str, Any], Cluster] = None,
         memory_budget: Union[None, int, float, str] = None,
         cost_mode: str = "seconds",
         mesh_alpha: Optional[Sequence[float]] = None,
         mesh_beta: Optional[Sequence[float]] = None,
         plan_overrides: Optional[Dict[str, str]] = None,
         optimizer: Union[str, float] = "adam",
         method: str = "intra_op",
         time_limit_s: float = 60.0,
         memory_gap: float = 0.01,
         num_threads: int = 1,
         num_micro_batches: int = 1,
         schedule: str = "1f1b",
         remat: str = "auto",
         precision: str = "fp32",
         num_layers: Optional[int] = None,
         layer_eps: float = 0.5,
         layer_boundaries: Optional[Sequence[str]] = None,
         stage_meshes: Optional[Sequence[Sequence[int]]] = None,
         max_num_stages: Optional[int] = None,
         progress: Optional[Callable[[int, int], Any]] = None,
         compare_megatron: bool = True) -> Plan:
    """Plan how to shard ``module`` on a device mesh (Alpa's intra-op pass).

    Args:
      module: the model, or a graph from ``alpa_torch.capture``/``load``.
      example_args, example_kwargs: an example batch (shapes are planned for).
      mesh_shape: logical mesh (n0, n1); a 1-D mesh (1, n) splits over axis 0.
        Default: the cluster's (hosts, devices per host).
      cluster: a ``Cluster``, a preset name (``"a100-40gb"``...), a dict, or
        None for local CPU processes (Gloo).
      memory_budget: bytes per device (or ``"16GiB"``); a plan must fit.
        Default: the cluster's device memory. ``math.inf`` lifts the bound.
      cost_mode: ``"seconds"`` (roofline compute + α-β communication) or
        ``"alpa"`` (Alpa's conventions, with ``mesh_alpha``/``mesh_beta``).
      plan_overrides: ``{"fc1.weight": "S0R"}`` pins parameter specs; a value
        with ``=`` pins an op node's strategy by name
        (``{"linear": "RS0 = RR x S0R x S0"}``, see ``_C.node_strategies``).
      optimizer: optimizer whose state counts toward memory (Adam by default).
      method: ``"intra_op"`` (one stage on the whole mesh) or ``"pipeshard"``
        (Alpa's inter-op pass: layers, stages on sub-meshes, intra-op within
        each). For pipeshard, pass an example of ONE microbatch; the cluster
        is ``cluster`` or, by default, ``mesh_shape``'s hosts × devices.
      num_micro_batches, schedule: pipeline microbatches B and ``"1f1b"`` or
        ``"gpipe"`` (both bound the memory of microbatches in flight).
      remat: pipeshard only: rematerialization per stage. ``"auto"`` lets the
        stage DP choose, per stage, to run its forward again in backward
        (the recompute time is priced; each microbatch in flight then keeps
        only the stage's inputs), ``"all"`` makes every stage recompute,
        ``"none"`` keeps every activation.
      precision: ``"fp32"``, or ``"bf16"``: mixed precision as
        ``torch.autocast(dtype=torch.bfloat16)`` runs it (fp32 master
        weights, gradients and optimizer state; matmuls, convolutions and
        attention in bf16 at the device's 16-bit FLOP/s, norms, softmax and
        losses in fp32, other ops in their inputs' widest dtype). Costs and
        memory use those dtypes, and ``parallelize`` runs the step so.
      num_layers, layer_eps: layer clustering (Alpa §5.1); None picks L from
        the model's repeated blocks.
      layer_boundaries: manual layers, as module FQN prefixes that start a
        new layer (``["transformer.h.2"]``).
      stage_meshes: manual stages: one logical mesh per layer, e.g.
        ``[(1, 2), (1, 2)]``; the devices of all stages must add up to the
        cluster's.
      num_threads: ILP solver threads (intra_op) or candidate stages solved
        at once (pipeshard).
      time_limit_s: CBC time limit per ILP (pipeshard: per candidate stage).
      memory_gap: an ILP whose memory budget binds stops once its plan is
        proven within this fraction of the optimum (0: exact; proving the
        last 0.1-0.7% of a budgeted ILP can take minutes).
      progress: pipeshard only: ``progress(done, total)`` is called after
        each distinct candidate-stage ILP is solved (``total`` = distinct
        ILPs known so far; it grows when the planner solves chosen composed
        stages whole, or costs the stages its balance rule skipped). An
        exception raised by it stops planning and propagates out of ``plan``.

      compare_megatron: intra_op in cost mode "seconds" without
        plan_overrides: also plan the Megatron layout pinned
        (``alpa_torch.planning.megatron.megatron_overrides``, one ILP per candidate
        tensor-parallel axis), note both predicted times in ``explain()``
        and keep the Megatron plan when it is within 0.1% or faster.

    Raises ``PlanInfeasibleError`` when no plan fits the memory budget.
    """
    if method not in ("intra_op", "pipeshard"):
        raise ValueError(f"unknown method {method!r}; use 'intra_op' or 'pipeshard'")
    graph = module if isinstance(module, CapturedGraph) else capture(module, example_args, example_kwargs)
    given_cluster = None if cluster is None else as_cluster(cluster, 1)
    shape = parse_mesh_shape(mesh_shape, given_cluster if isinstance(cluster, (Cluster, dict)) else None)
    resolved = as_cluster(cluster, shape[0] * shape[1])
    if method == "pipeshard" and (cluster is None or isinstance(cluster, str)):
        # the pipeline's cluster is the mesh's hosts × devices per host
        resolved = Cluster.preset(cluster or "cpu-gloo", shape[0], shape[1])
    pinned = dict(plan_overrides or {})
    for name, spec in pinned.items():
        if not isinstance(name, str) or not isinstance(spec, str):
            raise TypeError(f"plan_overrides maps parameter names to spec strings like 'S0R', "
                            f"got {name!r}: {spec!r}")
    budget = (resolved.to_dict()["device"]["memory_bytes"] if memory_budget is None
              else parse_bytes(memory_budget))
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be a callable progress(done, total), got "
                        f"{type(progress).__name__}")
    if progress is not None and method != "pipeshard":
        raise ValueError("progress reports the candidate stages of method='pipeshard'; "
                         "method='intra_op' solves one ILP and has none to report")
    if isinstance(memory_gap, bool) or not isinstance(memory_gap, (int, float)) or \
            not 0 <= memory_gap < 1:
        raise ValueError(f"memory_gap must be a fraction in [0, 1) (0.01: plans within 1% "
                         f"of the optimum), got {memory_gap!r}")
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'fp32' or 'bf16' (autocast with fp32 master "
                         f"weights), got {precision!r}" + (
                             "; fp16 needs loss scaling, which is not supported yet: use 'bf16'"
                             if precision == "fp16" else ""))
    if remat not in ("auto", "none", "all"):
        raise ValueError(f"remat must be 'auto' (the planner picks per pipeline stage), 'none' "
                         f"or 'all', got {remat!r}")
    if remat == "all" and method != "pipeshard":
        raise ValueError("remat='all' recomputes pipeline stages; use method='pipeshard' (a "
                         "single-stage intra-op plan keeps its activations)")
    if cost_mode not in _COST_MODES:
        raise ValueError(f"cost_mode must be 'seconds' (roofline compute + alpha-beta "
                         f"communication) or 'alpa' (Alpa's conventions: no compute term, "
                         f"mesh_alpha/mesh_beta per axis), got {cost_mode!r}")

    def options(overrides, threads):
        return _C.IntraOpOptions(memory_budget=float(budget), cost_mode=_COST_MODES[cost_mode],
                                 pinned=overrides, optimizer_state_factor=_optimizer_factor(optimizer),
                                 time_limit_s=float(time_limit_s), num_threads=int(threads),
                                 memory_gap=float(memory_gap), precision=precision)

    if method == "pipeshard":
        if mesh_alpha is not None or mesh_beta is not None:
            raise ValueError("mesh_alpha/mesh_beta set the links of one fixed mesh; for "
                             "method='pipeshard' describe the links in the cluster instead")
        if not isinstance(num_micro_batches, int) or num_micro_batches < 1:
            raise ValueError(f"num_micro_batches must be a positive int, got {num_micro_batches!r}")
        meshes = [tuple(int(n) for n in m) for m in (stage_meshes or [])]
        if any(len(m) != 2 for m in meshes):
            raise ValueError(f"stage_meshes must be a list of (n0, n1) shapes, got {stage_meshes!r}")
        request = _C.PipeshardRequest(
            options=options(pinned, 1),
            clustering=_C.LayerClusteringOptions(num_layers=int(num_layers or 0),
                                                 eps=float(layer_eps)),
            layer_boundaries=list(layer_boundaries or []), stage_meshes=meshes,
            num_micro_batches=num_micro_batches, schedule=schedule,
            max_num_stages=max_num_stages, num_threads=int(num_threads), remat=remat)
        result = _C.plan_pipeshard(graph.graph, resolved.to_json(), request, progress)
        return _with_capture_notes(Plan(result["plan_json"], result["solver"]), graph)
    links = None
    if mesh_alpha is not None or mesh_beta is not None:
        alpha = [float(a) for a in (mesh_alpha or (1.0, 1.0))]
        beta = [float(b) for b in (mesh_beta or (1.0, 1.0))]
        if len(alpha) != 2 or len(beta) != 2:
            raise ValueError(f"mesh_alpha and mesh_beta give one value per mesh axis (two), "
                             f"got {mesh_alpha!r} and {mesh_beta!r}")
        links = (_C.LinkSpec(alpha[0], beta[0]), _C.LinkSpec(alpha[1], beta[1]))

    def intra_op(overrides):
        request = _C.IntraOpRequest(mesh_shape=tuple(shape), options=options(overrides, num_threads),
                                    axis_links=links)
        result = _C.plan_intra_op(graph.graph, resolved.to_json(), request)
        return Plan(result["plan_json"], result["solver"])
    chosen = intra_op(pinned)
    if not (pinned or cost_mode != "seconds" or not compare_megatron):
        chosen = with_megatron_baseline(chosen, graph, intra_op)
    return _with_capture_notes(chosen, graph)


def _with_capture_notes(the_plan: Plan, graph: CapturedGraph) -> Plan:
    """The plan with what capture changed in the call (use_cache=False)
    first among its notes, so explain() says so."""
    notes = getattr(graph, "notes", None)
    if not notes:
        return the_plan
    doc = json.loads(the_plan.to_json())
    doc["notes"] = list(notes) + list(doc.get("notes", []))
    return Plan(json.dumps(doc), the_plan.solver)
