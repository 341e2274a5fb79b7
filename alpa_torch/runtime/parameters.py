"""A model's parameters and buffers as the plan lays them out: DTensors on
a stage's DeviceMesh, and back to whole tensors.

The same code serves a whole-mesh plan (spmd.py) and each stage of a
pipeline (pipeshard.py): every rank starts from rank 0's weights, keeps its
piece of each parameter and buffer its stage reads, and gathers them whole
for a checkpoint in the single-process model's form.

A block-interleaved dim (spec ``S0x2``: two blocks, each split over axis 0)
is permuted before it is cut, so that a plain ``Shard`` gives each rank its
slice of every block (``block_permute``):

    [a0 a1 | b0 b1]  (2 blocks, 2 ranks)  ->  [a0 b0 | a1 b1]  ->  rank 0: a0 b0
"""
from __future__ import annotations

from typing import Collection, Dict, List, Optional

import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor, Replicate, Shard

from alpa_torch.emit import local_ops
from alpa_torch.emit.spec import ShardingSpec, parse_spec, pieces
from alpa_torch.runtime.mesh import MeshGroups

__all__ = ["placements", "block_permute", "sharded_parameter", "sharded_tensor",
           "broadcast_from_rank0", "distribute_stage_state", "whole_tensor", "full_state_dict"]


def placements(spec: ShardingSpec) -> List:
    """DTensor placements of a (2-D mesh) layout: ``Shard(d)`` on each mesh
    axis that splits tensor dim d, ``Replicate()`` elsewhere."""
    out = [Replicate(), Replicate()]
    for d, axes in enumerate(spec.dims):
        for a in axes:
            out[a] = Shard(d)
    return out


def block_permute(t: torch.Tensor, spec: ShardingSpec, mesh: MeshGroups, inverse: bool = False) -> torch.Tensor:
    """Reorders block-interleaved dims so that a plain Shard of the result
    gives each rank its slice of every block (`inverse`: back)."""
    for d, (axes, block) in enumerate(zip(spec.dims, spec.blocks)):
        if block == 1:
            continue
        n = 1
        for a in axes:
            n *= mesh.shape[a]
        shape = list(t.shape)
        size = shape[d]
        if not inverse:  # [block, n, piece] -> [n, block, piece]
            t = t.reshape(shape[:d] + [block, n, size // (block * n)] + shape[d + 1:])
        else:
            t = t.reshape(shape[:d] + [n, block, size // (block * n)] + shape[d + 1:])
        t = t.transpose(d, d + 1).reshape(shape)
    return t


def sharded_tensor(whole: torch.Tensor, spec: ShardingSpec, mesh: MeshGroups) -> DTensor:
    """This rank's piece of `whole` (already block-permuted, if it has
    block-interleaved dims) as a DTensor on the mesh (a copy)."""
    local = local_ops.take_local(whole, [(i, c, 1) for i, c, _ in pieces(spec, mesh)])
    return DTensor.from_local(local.clone(), mesh.device_mesh, placements(spec), run_check=False)


def sharded_parameter(param: torch.Tensor, spec_text: str, mesh: MeshGroups) -> torch.nn.Parameter:
    """This rank's piece of a whole parameter as a DTensor Parameter laid
    out as `spec_text` (block-interleaved dims permuted, see block_permute).
    The spec is kept as ``new._alpa_spec`` for whole_tensor()."""
    spec = parse_spec(spec_text)
    dtensor = sharded_tensor(block_permute(param.detach(), spec, mesh), spec, mesh)
    new = torch.nn.Parameter(dtensor, requires_grad=param.requires_grad)
    new._alpa_spec = spec_text  # type: ignore[attr-defined]
    return new


def broadcast_from_rank0(model: torch.nn.Module) -> None:
    """Every rank starts from rank 0's weights: its parameters and buffers."""
    for p in model.parameters():
        dist.broadcast(p.data, src=0)
    for b in model.buffers():
        dist.broadcast(b.data, src=0)


def distribute_stage_state(model: torch.nn.Module, captured, stage, mesh: MeshGroups, *,
                           drop: Collection[str] = ()) -> None:
    """Rank 0's weights on every rank, then each parameter and buffer that
    `stage` reads replaced in `model` by this rank's piece, a DTensor laid
    out as planned (a tied parameter stays tied: one DTensor under each of
    its names). Buffers become DTensors too, laid out as the plan reads
    them, so that in-place updates (BatchNorm running statistics) land in
    the buffer. Names in `drop` that the stage does not read (the state of
    other pipeline stages) become None; the rest stay whole."""
    broadcast_from_rank0(model)
    specs = stage.param_specs
    replaced: Dict[int, Optional[torch.nn.Parameter]] = {}
    for fqn, param in list(model.named_parameters(remove_duplicate=False)):
        owner, _, leaf = fqn.rpartition(".")
        module = model.get_submodule(owner) if owner else model
        if id(param) in replaced:
            setattr(module, leaf, replaced[id(param)])
            continue
        canonical = fqn if fqn in specs else next(
            (a for a, p in model.named_parameters(remove_duplicate=False) if p is param and a in specs),
            None)
        if canonical is None:
            if fqn in drop:  # another stage's
                replaced[id(param)] = None
                setattr(module, leaf, None)
            continue
        new = sharded_parameter(param, specs[canonical], mesh)
        replaced[id(param)] = new
        setattr(module, leaf, new)
    node_specs = stage.node_specs
    buffer_nodes = {n.target: n.name for n in captured.graph.nodes if n.kind == "buffer"}
    for fqn, buf in list(model.named_buffers()):
        owner, _, leaf = fqn.rpartition(".")
        module = model.get_submodule(owner) if owner else model
        node = buffer_nodes.get(fqn)
        if node is None or node not in node_specs:
            if node is not None and fqn in drop:
                module._buffers[leaf] = None  # another stage's
            continue
        spec = parse_spec(node_specs[node]["outputs"][0])
        module._buffers[leaf] = sharded_tensor(buf, spec, mesh)


def whole_tensor(value: torch.Tensor, spec_text: Optional[str], mesh: MeshGroups) -> torch.Tensor:
    """A parameter or buffer as the single-process model holds it: a DTensor
    gathered whole, its block-interleaved dims (`spec_text`) put back in order."""
    full = value.full_tensor() if isinstance(value, DTensor) else value.detach()
    if spec_text is not None:
        full = block_permute(full, parse_spec(spec_text), mesh, inverse=True)
    return full


def full_state_dict(model: torch.nn.Module, mesh: MeshGroups) -> Dict[str, torch.Tensor]:
    """``model.state_dict()`` with every DTensor gathered whole (and its
    block-interleaved dims put back in order)."""
    out = {}
    for name, value in model.state_dict().items():
        if isinstance(value, DTensor):
            spec_text = getattr(_param_by_name(model, name), "_alpa_spec", None)
            value = whole_tensor(value, spec_text, mesh)
        out[name] = value
    return out


def _param_by_name(model, name):
    try:
        return model.get_parameter(name)
    except AttributeError:
        return None
