"""parallelize(): plan, shard and run a model across the ranks of a job.

The options are checked to be the same on every rank (agreement.py), then
the plan's method picks the path: a whole-mesh plan runs one SPMD program
per rank (spmd.py); a pipeshard plan splits the model into stages, and
each rank runs its stage's program, built by the same single-stage code,
under the C++ pipeline executor (pipeshard.py).

    parallelize ─┬─ intra_op:  capture → plan → rewrite → ProgramRunner
                 └─ pipeshard: capture (one microbatch) → plan → per stage:
                               rewrite → PipelineExecutor
"""
from __future__ import annotations

import datetime
from typing import Any, Dict, Optional, Tuple

import torch
import torch.distributed as dist

from alpa_torch.runtime.agreement import agree_on_options
from alpa_torch.runtime.mesh import DEFAULT_TIMEOUT
from alpa_torch.runtime.pipeshard import parallelize_pipeshard
from alpa_torch.runtime.spmd import parallelize_spmd

__all__ = ["parallelize"]


def parallelize(model: torch.nn.Module, example_args: Any = (),
                example_kwargs: Optional[Dict[str, Any]] = None, *,
                mesh_shape=None, local_outputs: bool = False,
                data_parallel_inputs: bool = False,
                timeout: datetime.timedelta = DEFAULT_TIMEOUT,
                **plan_options) -> torch.nn.Module:
    """Shard `model` across the default process group as Alpa plans it.

    Args:
      model, example_args, example_kwargs: the model and an example batch.
      mesh_shape: logical mesh (n0, n1) with n0·n1 = world size; default
        (1, world size).
      local_outputs: return each rank's shard of the outputs instead of the
        full outputs (the default gathers them, so every rank sees the same).
      data_parallel_inputs: forward() receives this rank's slice of the batch
        (as the plan splits it) instead of the global batch.
      plan_options: passed to alpa_torch.plan (cluster, memory_budget,
        plan_overrides, optimizer, cost_mode, ...).
    Returns the same module object, parallelized; ``module.alpa_plan`` is the plan.

    Every rank must pass the same options (but `timeout` and the planner's
    time and thread limits): a difference raises ValueError on every rank.
    Inputs must have the example's shapes. If a rank dies, hangs or fails
    mid-training, the others raise ``alpa_torch.PeerFailedError`` naming it
    within `timeout` plus a few seconds (alpa_torch/runtime/health.py).
    """
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(
            "parallelize() runs under torch.distributed: launch with torchrun (or call "
            "torch.distributed.init_process_group first); alpa_torch.plan() plans without it")
    world = dist.get_world_size()
    shape, error = None, None
    try:
        shape = _job_mesh_shape(mesh_shape, world)
    except (TypeError, ValueError) as e:
        error = e
    agree_on_options(dict(plan_options, mesh_shape=shape or mesh_shape, local_outputs=local_outputs,
                          data_parallel_inputs=data_parallel_inputs), error, timeout)
    if plan_options.get("method", "intra_op") == "pipeshard":
        return parallelize_pipeshard(model, example_args, example_kwargs, shape, timeout,
                                     plan_options)
    return parallelize_spmd(model, example_args, example_kwargs, shape, timeout, plan_options,
                            local_outputs, data_parallel_inputs)


def _job_mesh_shape(mesh_shape, world: int) -> Tuple[int, int]:
    shape = tuple(mesh_shape) if mesh_shape is not None else (1, world)
    if len(shape) == 1:
        shape = (1, shape[0])
    if len(shape) != 2:
        raise ValueError(f"mesh_shape must be (n0, n1), got {mesh_shape!r}")
    if shape[0] * shape[1] != world:
        raise ValueError(
            f"mesh_shape {shape} has {shape[0] * shape[1]} devices but the job has {world} "
            f"ranks; launch {shape[0] * shape[1]} processes or pass a mesh whose axes "
            f"multiply to {world}")
    return shape
