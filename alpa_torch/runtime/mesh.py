"""Meshes and process groups from torch.distributed.

A logical mesh (n0, n1) is laid over the ranks row-major: rank r sits at
(r // n1, r % n1). Every rank creates the same groups in the same order:
one per row/column of each mesh axis, and one over the whole mesh, all with
a timeout, so that a failing peer raises instead of hanging (and
alpa_torch/runtime/health.py names it). Nothing is global: a MeshGroups
object is passed to whoever needs the groups.
"""
from __future__ import annotations

import datetime
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.distributed as dist

from alpa_torch.runtime import health

__all__ = ["DEFAULT_TIMEOUT", "MeshGroups"]

DEFAULT_TIMEOUT = datetime.timedelta(seconds=120)


class MeshGroups:
    """This rank's coordinate in the logical mesh and the group names of
    each mesh-axis set ((0,), (1,), (0, 1)) that has more than one rank."""

    def __init__(self, mesh_shape: Sequence[int], *, timeout: datetime.timedelta = DEFAULT_TIMEOUT,
                 device_ids: Optional[Sequence[int]] = None):
        """`device_ids`: the ranks of the mesh, row-major (default: every
        rank). Every rank of the job must construct the same MeshGroups in
        the same order (group creation is collective); a rank outside
        `device_ids` gets ``coord = None`` and no groups of its own."""
        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError(
                "alpa_torch.parallelize needs torch.distributed: launch with torchrun "
                "(or call torch.distributed.init_process_group) before parallelize(); "
                "for planning alone use alpa_torch.plan(), which needs no processes")
        n0, n1 = int(mesh_shape[0]), int(mesh_shape[1])
        world, rank = dist.get_world_size(), dist.get_rank()
        ids = list(range(world)) if device_ids is None else [int(d) for d in device_ids]
        if n0 * n1 != len(ids):
            if device_ids is None:
                raise ValueError(
                    f"the mesh ({n0}, {n1}) has {n0 * n1} devices but the job has {world} ranks; "
                    f"launch {n0 * n1} processes (torchrun --nproc-per-node) or pass a mesh_shape "
                    f"whose axes multiply to {world}")
            raise ValueError(f"the mesh ({n0}, {n1}) needs {n0 * n1} devices, got {ids}")
        self.shape: Tuple[int, int] = (n0, n1)
        self.world_group = dist.group.WORLD  # the job these groups belong to
        self.device_ids = ids
        self.rank = rank
        self.coord: Optional[Tuple[int, int]] = None
        if rank in ids:
            k = ids.index(rank)
            self.coord = (k // n1, k % n1)
        self.device = _device_for_backend()
        self.group_names: Dict[Tuple[int, ...], str] = {}
        self._groups = []
        at = lambda i, j: ids[i * n1 + j]  # noqa: E731
        # axis 0: ranks that share a column j; axis 1: ranks that share a row i
        for axis, count, members in (
                (0, n1, lambda j: [at(i, j) for i in range(n0)]),
                (1, n0, lambda i: [at(i, j) for j in range(n1)])):
            if self.shape[axis] == 1:
                continue
            for k in range(count):
                ranks = members(k)
                group = dist.new_group(ranks, timeout=timeout)
                self._groups.append(group)
                if rank in ranks:
                    self.group_names[(axis,)] = group.group_name
                    health.name_group(group.group_name, f"axis {axis} of the ({n0}, {n1}) mesh "
                                                        f"over ranks {ids}")
        if n0 > 1 and n1 > 1:
            group = dist.new_group(ids, timeout=timeout)
            self._groups.append(group)
            if rank in ids:
                self.group_names[(0, 1)] = group.group_name
                health.name_group(group.group_name, f"the whole ({n0}, {n1}) mesh")
        elif n0 * n1 > 1 and rank in ids:
            only = (0,) if n0 > 1 else (1,)
            self.group_names[(0, 1)] = self.group_names[only]
        from torch.distributed.device_mesh import DeviceMesh
        self.device_mesh = DeviceMesh(self.device.type, torch.tensor(ids).view(n0, n1),
                                      mesh_dim_names=("axis0", "axis1"))

    def group(self, axes: Sequence[int]) -> str:
        """Group name for collectives over `axes` (sorted mesh axes)."""
        axes = tuple(sorted(a for a in axes if self.shape[a] > 1))
        return self.group_names[axes if len(axes) < 2 else (0, 1)]

    def axis_index(self, axis: int) -> int:
        return self.coord[axis]

    def check_alive(self) -> None:
        """Raises if the job's process groups were destroyed (or replaced by
        a new init_process_group) since these groups were made."""
        if not dist.is_initialized() or dist.group.WORLD is not self.world_group:
            raise RuntimeError(
                "alpa_torch: the process groups this model was parallelized on are gone: "
                "torch.distributed.destroy_process_group() was called"
                + (" and a new group initialized" if dist.is_initialized() else "")
                + ". A parallelized model runs only while its process groups live: run it "
                  "before destroy_process_group(), or build the model again and call "
                  "alpa_torch.parallelize() under the new process group")


def _device_for_backend() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
