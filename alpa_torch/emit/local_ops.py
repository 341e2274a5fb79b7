"""Building blocks of the rewritten per-rank programs.

Each is a small differentiable function over local shards that the
rewrite inserts as an FX call: layout changes (with block-interleaved
dims), vocab-parallel embedding, synced BatchNorm. Collectives are the C++
autograd ops torch.ops.alpa.* (csrc/runtime/collectives.cc), which
``load_runtime`` registers from libalpa_runtime.so.
"""
from __future__ import annotations

import operator
import os
import threading
from typing import List, Sequence

import torch
import torch.fx

__all__ = ["load_runtime", "shard_dim", "gather_dim", "reshard_steps", "take_local", "view_local",
           "vocab_parallel_embedding", "synced_sum", "sync_batch_norm", "annotate_collectives"]

_lock = threading.Lock()
_loaded = False


def load_runtime() -> None:
    """Registers torch.ops.alpa.* (the C++ runtime, alpa_torch/lib/libalpa_runtime.so)
    once per process."""
    global _loaded
    with _lock:
        if _loaded:
            return
        package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        path = os.path.join(package, "lib", "libalpa_runtime.so")
        if not os.path.exists(path):
            raise RuntimeError(
                f"alpa_torch's C++ runtime is missing ({path}); rebuild with "
                f"`pip install --no-build-isolation -e .` (or ./scripts/setup.sh)")
        torch.ops.load_library(path)
        _loaded = True


def _split_block(x: torch.Tensor, dim: int, block: int) -> torch.Tensor:
    shape = list(x.shape)
    return x.reshape(shape[:dim] + [block, shape[dim] // block] + shape[dim + 1:])


def _merge_block(x: torch.Tensor, dim: int) -> torch.Tensor:
    shape = list(x.shape)
    return x.reshape(shape[:dim] + [shape[dim] * shape[dim + 1]] + shape[dim + 2:])


def shard_dim(x: torch.Tensor, dim: int, block: int, group: str, node: str = "") -> torch.Tensor:
    """Keep this rank's piece of `dim` (of every block when block > 1).
    `node`: the graph node served, named if the collective fails."""
    if block == 1:
        return torch.ops.alpa.shard(x, dim, group, node)
    piece = torch.ops.alpa.shard(_split_block(x, dim, block), dim + 1, group, node)
    return _merge_block(piece, dim)


def gather_dim(x: torch.Tensor, dim: int, block: int, group: str, node: str = "") -> torch.Tensor:
    """Concatenate the ranks' pieces of `dim` (block by block when block > 1)."""
    if block == 1:
        return torch.ops.alpa.all_gather(x, dim, group, node)
    whole = torch.ops.alpa.all_gather(_split_block(x, dim, block), dim + 1, group, node)
    return _merge_block(whole, dim)


def reshard_steps(call, value, steps, src_blocks: Sequence[int], dst_blocks: Sequence[int],
                  group) -> torch.Tensor:
    """Runs the planner's resharding steps (``_C.plan_reshard``: (op, mesh
    axis, from dim, to dim) each) in their order, each a local slice or a
    collective over one mesh axis (csrc/sharding/resharding.h). `call(fn,
    *args)` applies one op: an FX node in the rewrite, the op itself when
    run eagerly; `group([axis])` names the axis's process group. A dim is
    gathered with the source's block layout and cut with the target's."""
    ops = torch.ops.alpa
    for op, axis, f, t in steps:
        g = group([axis])
        if op == "all_reduce":
            value = call(ops.all_reduce, value, g)
        elif op == "reduce_scatter":
            value = call(shard_dim, call(ops.all_reduce, value, g), t, dst_blocks[t], g)
        elif op == "slice":
            value = call(shard_dim, value, t, dst_blocks[t], g)
        elif op == "all_to_all" and src_blocks[f] == 1 and dst_blocks[t] == 1:
            value = call(ops.all_to_all, value, f, t, g)
        elif op == "all_to_all":
            value = call(shard_dim, call(gather_dim, value, f, src_blocks[f], g), t, dst_blocks[t], g)
        elif op == "all_gather":
            value = call(gather_dim, value, f, src_blocks[f], g)
        else:
            raise ValueError(f"unknown resharding step {op!r} (from _C.plan_reshard)")
    return value


def take_local(x: torch.Tensor, pieces: Sequence[Sequence[int]]) -> torch.Tensor:
    """Local slice of a tensor every rank computed whole (factories):
    pieces[d] = (index, count, block)."""
    for d, (index, count, block) in enumerate(pieces):
        if count == 1:
            continue
        y = _split_block(x, d, block) if block > 1 else x
        inner = d + 1 if block > 1 else d
        size = y.shape[inner] // count
        y = y.narrow(inner, index * size, size)
        x = _merge_block(y, d) if block > 1 else y
    return x.contiguous()


def view_local(x: torch.Tensor, pieces: Sequence[Sequence[int]]) -> torch.Tensor:
    """This rank's piece of a replicated tensor as a *view* (no copy), so
    that in-place updates of a sliced buffer (BatchNorm running statistics)
    land in the buffer itself."""
    for d, (index, count, _) in enumerate(pieces):
        if count > 1:
            size = x.shape[d] // count
            x = x.narrow(d, index * size, size)
    return x


def vocab_parallel_embedding(weight: torch.Tensor, ids: torch.Tensor, index: int,
                             group: str, padding_idx: int = -1, node: str = "") -> torch.Tensor:
    """Embedding with the table split by rows: this rank holds rows
    [index·V_local, (index+1)·V_local); others contribute zeros; the
    partial results are summed (Megatron's vocab-parallel embedding).
    `padding_idx`: the padding row as a LOCAL row index, -1 when this rank
    does not hold it (its gradient stays zero, as aten.embedding's does)."""
    rows = weight.shape[0]
    local = ids - index * rows
    outside = (local < 0) | (local >= rows)
    out = torch.ops.aten.embedding(weight, local.clamp(0, rows - 1), padding_idx)
    out = out * (~outside).unsqueeze(-1).to(out.dtype)
    return torch.ops.alpa.all_reduce(out, group, node)


def synced_sum(x: torch.Tensor, group: str, node: str = "") -> torch.Tensor:
    """Sum over the group whose gradient is summed too: each rank's use of
    the total contributes part of its gradient."""
    return torch.ops.alpa.grad_all_reduce(torch.ops.alpa.all_reduce(x, group, node), group, node)


def sync_batch_norm(x: torch.Tensor, weight, bias, running_mean, running_var,
                    training: bool, momentum: float, eps: float, group: str,
                    total_count: int, node: str = "") -> torch.Tensor:
    """BatchNorm over [B, C, ...] whose batch/spatial dims are split over
    `group`: statistics over all ranks' elements (SyncBatchNorm), so the
    result equals one process's batch_norm."""
    if not training:
        return torch.nn.functional.batch_norm(x, running_mean, running_var, weight, bias,
                                              False, momentum, eps)
    dims = [0] + list(range(2, x.dim()))
    local_sum = x.sum(dims)
    local_sq = (x * x).sum(dims)
    stats = synced_sum(torch.stack([local_sum, local_sq]), group, node)
    mean = stats[0] / total_count
    var = stats[1] / total_count - mean * mean
    shape = [1, -1] + [1] * (x.dim() - 2)
    y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + eps)
    if weight is not None:
        y = y * weight.view(shape)
    if bias is not None:
        y = y + bias.view(shape)
    if running_mean is not None:
        with torch.no_grad():
            unbiased = var * total_count / max(total_count - 1, 1)
            running_mean.mul_(1 - momentum).add_(mean.detach() * momentum)
            running_var.mul_(1 - momentum).add_(unbiased.detach() * momentum)
    return y


# ---- names for failures ---------------------------------------------------------

_HELPERS = (shard_dim, gather_dim, vocab_parallel_embedding, synced_sum, sync_batch_norm)


def _collective_targets() -> set:
    ops = torch.ops.alpa
    return {ops.all_reduce, ops.grad_all_reduce, ops.grad_all_reduce_bucket, ops.all_gather,
            ops.shard, ops.reduce_scatter, ops.all_to_all, *_HELPERS}


def annotate_collectives(module: torch.fx.GraphModule, where: str = "") -> None:
    """Passes each collective of a local program the name of its FX node and
    the value it moves (``node="all_reduce_1 on linear_1"``), so that a
    failed collective names where in the program it was; `where` prefixes
    it (a pipeline stage)."""
    targets = _collective_targets()
    changed = False
    for node in module.graph.nodes:
        if node.op == "call_function" and node.target in targets and "node" not in node.kwargs:
            text = f"{where}node '{node.name}' ({_moves(node, targets)})"
            node.kwargs = {**node.kwargs, "node": text}
            changed = True
    if changed:
        module.recompile()


def _moves(node: torch.fx.Node, targets: set) -> str:
    value = node.args[0]
    if isinstance(value, (list, tuple)):  # a gradient bucket: its parameters
        names = [v.name for v in value if isinstance(v, torch.fx.Node)]
        shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        return f"the gradients of {shown}"
    while isinstance(value, torch.fx.Node) and value.op == "call_function" and (
            value.target in targets or value.target is operator.getitem):
        value = value.args[0]
    return f"on {value.name}" if isinstance(value, torch.fx.Node) else "on a constant"
