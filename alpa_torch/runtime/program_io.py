"""Feeding a local program and taking back what it returns, the same for a
whole-mesh program (spmd.py) and a pipeline stage's (pipeshard.py).

A program's placeholders are those of the exported graph (torch.export's
graph signature): parameters, buffers, constants and user inputs. The
state placeholders read the model's current tensors — each parameter
through its one plain local leaf (local_params.py), each buffer as its
local piece — and a user input arrives whole and is cut to this rank's
piece as the plan lays it out. Outputs come back whole (gathered), buffer
mutations are copied into the buffers.
"""
from __future__ import annotations

import contextlib
from typing import Any, Dict, Optional, Sequence, Tuple

import torch
from torch.distributed.tensor import DTensor

from alpa_torch.emit import local_ops
from alpa_torch.emit.spec import ShardingSpec, parse_spec, pieces
from alpa_torch.runtime.local_params import LocalParameters
from alpa_torch.runtime.mesh import MeshGroups

__all__ = ["STATE_KINDS", "ProgramState", "placeholder_targets", "slice_input", "gather_full",
           "write_buffer", "sync_buffer_views", "precision_context"]

_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def precision_context(precision: str, values: Sequence[Any]):
    """torch.autocast to the plan's 16-bit dtype on the device of the first
    tensor of `values` (fp32 master weights); a no-op for "fp32"."""
    dtype = _AUTOCAST_DTYPES.get(precision)
    if dtype is None:
        return contextlib.nullcontext()
    device = next((v.device.type for v in values if isinstance(v, torch.Tensor)), "cpu")
    return torch.autocast(device_type=device, dtype=dtype)

# torch.export InputKind names of the placeholders that read the model's state
STATE_KINDS = ("PARAMETER", "BUFFER", "CONSTANT_TENSOR", "CUSTOM_OBJ")


class ProgramState:
    """The state placeholders of an exported program, read from `model`:
    ``value(kind, target)`` is what the program takes for the placeholder
    of that kind (a name of `STATE_KINDS`) and FQN. Several programs reading
    one module's parameters may share `local_params` (one leaf each)."""

    def __init__(self, model: torch.nn.Module, exported,
                 local_params: Optional[LocalParameters] = None):
        self.model = model
        self.constants = dict(getattr(exported, "constants", {}) or {})
        self.local_params = local_params if local_params is not None else LocalParameters()

    def value(self, kind: str, target: str) -> Any:
        if kind == "PARAMETER":
            return self.local_params.local(self.model.get_parameter(target))
        if kind == "BUFFER":
            b = self.model.get_buffer(target)
            return b.to_local() if isinstance(b, DTensor) else b
        if kind in ("CONSTANT_TENSOR", "CUSTOM_OBJ"):
            return self.constants[target]
        raise ValueError(f"a placeholder of kind {kind} reads no model state; "
                         f"expected one of {STATE_KINDS}")


def slice_input(x: torch.Tensor, spec: ShardingSpec, mesh: MeshGroups) -> torch.Tensor:
    """This rank's piece of a global input. With autograd (the input needs a
    gradient) through alpa.shard, whose backward gathers, so the input's
    gradient is complete on every rank; otherwise a plain local slice."""
    if not x.requires_grad:
        return local_ops.take_local(x, pieces(spec, mesh))
    for d, (axes, block) in enumerate(zip(spec.dims, spec.blocks)):
        for a in axes:
            x = local_ops.shard_dim(x, d, block, mesh.group([a]))
    return x


def gather_full(value: torch.Tensor, spec: ShardingSpec, mesh: MeshGroups, node: str = "") -> torch.Tensor:
    """The whole tensor from each rank's piece laid out as `spec`; `node`
    names the gather in a failure."""
    for d, (axes, block) in enumerate(zip(spec.dims, spec.blocks)):
        for a in reversed(axes):
            value = local_ops.gather_dim(value, d, block, mesh.group([a]), node)
    return value


def write_buffer(model: torch.nn.Module, target: str, value: torch.Tensor) -> None:
    """A buffer mutation the program returned, copied into the buffer
    `target` (its local piece when it is a DTensor)."""
    with torch.no_grad():
        b = model.get_buffer(target)
        (b.to_local() if isinstance(b, DTensor) else b).copy_(value)


def sync_buffer_views(model: torch.nn.Module, buffer_views: Sequence[Tuple[str, ShardingSpec]],
                      mesh: MeshGroups) -> None:
    """Each rank updated its piece of a replicated buffer in place
    (BatchNorm running statistics of a channel-split BatchNorm): gather
    the pieces so every rank holds the whole, updated buffer.
    `buffer_views`: (buffer FQN, the spec of the piece each rank updates)."""
    with torch.no_grad():
        for target, spec in buffer_views:
            buf = model.get_buffer(target)
            full = buf.to_local() if isinstance(buf, DTensor) else buf
            mine = local_ops.view_local(full, pieces(spec, mesh)).clone()
            # .data: autograd saved this buffer (native batch_norm keeps
            # its running stats for backward); our own piece is unchanged,
            # so the write must not bump the version counter.
            whole = gather_full(mine, spec, mesh, f"the gather of buffer {target!r}")
            full.data.copy_(whole)


def placeholder_targets(exported) -> Dict[str, Tuple[str, str]]:
    """Placeholder name -> (its InputKind name, its target FQN or input name)."""
    return {s.arg.name: (s.kind.name, s.target) for s in exported.graph_signature.input_specs
            if hasattr(s.arg, "name")}
