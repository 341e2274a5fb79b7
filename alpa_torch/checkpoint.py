"""torch.distributed.checkpoint (DCP) for pipeline models with tied weights.

A pipeshard model keeps a parameter read by several stages (GPT-2's
``wte``/``lm_head``) as one copy per stage, each a DTensor on its stage's
mesh with that stage's planned layout; their gradients are summed, so the
copies stay equal. DCP's default save planner requires each key to be
written as one tiling of the tensor: two copies laid out differently
(``S0R`` on stage 0's mesh, ``RR`` on stage 1's) give overlapping chunks
and ``dcp.save`` fails ("Failed to validate global plan: key:... has
overlapping chunks"). `SavePlanner` writes such a key from one mesh only;
every copy is still loaded, each in its own layout, because DCP reads
whatever chunks a target needs.

    dcp.save(state, checkpoint_id=path, planner=alpa_torch.checkpoint.SavePlanner())

See docs/checkpoint.md for the whole recipe.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, List, Tuple

from torch.distributed.checkpoint import DefaultSavePlanner
from torch.distributed.checkpoint.planner import SavePlan
from torch.distributed.tensor import DTensor

__all__ = ["SavePlanner", "MeshTaggedData", "one_mesh_per_key"]

MeshRanks = Tuple[int, ...]


@dataclasses.dataclass
class MeshTaggedData:
    """A local plan's planner data plus the mesh of each DTensor it writes."""
    planner_data: object
    meshes: Dict[str, MeshRanks]


class SavePlanner(DefaultSavePlanner):
    """DCP's DefaultSavePlanner, except that a key held as DTensors on
    several device meshes is written only from the mesh with the lowest
    rank. Its copies must hold equal values (alpa_torch keeps a tied
    weight's copies equal); copies of different shapes or dtypes are
    refused with a ValueError (on every rank, inside DCP's
    CheckpointException). A key on one mesh is saved as by default."""

    def create_local_plan(self) -> SavePlan:
        plan = super().create_local_plan()
        meshes = {fqn: tuple(v.device_mesh.mesh.flatten().tolist())
                  for fqn, v in self.state_dict.items() if isinstance(v, DTensor)}
        return dataclasses.replace(plan, planner_data=MeshTaggedData(plan.planner_data, meshes))

    def create_global_plan(self, all_plans: List[SavePlan]):
        return super().create_global_plan(one_mesh_per_key(all_plans))


def one_mesh_per_key(all_plans: List[SavePlan]) -> List[SavePlan]:
    """The plans with each multi-mesh key's items kept on its first mesh
    only, and the planner data untagged. Raises ValueError for a key whose
    holders disagree on its shape or dtype: those are not copies."""
    meshes = [p.planner_data.meshes if isinstance(p.planner_data, MeshTaggedData) else {}
              for p in all_plans]
    holders: Dict[str, Dict[MeshRanks, set]] = {}
    for plan, plan_meshes in zip(all_plans, meshes):
        for it in plan.items:
            mesh = plan_meshes.get(it.index.fqn)
            if mesh is not None and it.tensor_data is not None:
                what = (tuple(it.tensor_data.size), str(it.tensor_data.properties.dtype))
                holders.setdefault(it.index.fqn, {}).setdefault(mesh, set()).add(what)
    writer = {}
    for fqn, by_mesh in sorted(holders.items()):
        if len(by_mesh) < 2:
            continue
        kinds = set().union(*by_mesh.values())
        if len(kinds) > 1:
            raise ValueError(
                f"DCP key {fqn!r} is held on device meshes {sorted(by_mesh)} as different "
                f"tensors (shape, dtype: {sorted(kinds)}), so the ranks' state dicts disagree "
                f"on it. Optimizer.state_dict() numbers each rank's parameters from 0, so "
                f"pipeline stages reuse its keys: save the state of "
                f"torch.distributed.checkpoint.state_dict.get_state_dict(model, optimizer) "
                f"instead (docs/checkpoint.md)")
        writer[fqn] = min(by_mesh, key=lambda m: (min(m), m))
    out = []
    for plan, plan_meshes in zip(all_plans, meshes):
        def kept(fqn: str) -> bool:
            return fqn not in writer or plan_meshes.get(fqn) == writer[fqn]
        data = plan.planner_data
        if isinstance(data, MeshTaggedData):
            data = data.planner_data
        out.append(dataclasses.replace(plan, items=[it for it in plan.items if kept(it.index.fqn)],
                                       planner_data=data))
    return out
