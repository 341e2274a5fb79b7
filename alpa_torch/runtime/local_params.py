"""Plain local leaves for DTensor parameters, so the per-rank programs run on
ordinary tensors.

The module's parameters are DTensors (optimizers, clip_grad_norm_ and DCP
see the planned layout), but feeding ``p.to_local()`` to the program on
every call puts a DTensor autograd node on every parameter and accumulates
gradients through DTensor's Python dispatch — per parameter, per step (per
microbatch in a pipeline). Instead each parameter gets ONE plain leaf that
shares its local storage; autograd accumulates into the leaf's ``.grad``,
and the parameter's ``.grad`` is a DTensor over that same storage, set once
when the leaf's gradient first appears:

    p (DTensor, nn.Parameter) ── local storage ── leaf (plain, requires_grad)
    p.grad (DTensor)          ── local storage ── leaf.grad

Optimizer steps update p in place, which the leaf sees. ``zero_grad()``
(either form) and any assignment to ``p.grad`` are honoured: just before
autograd accumulates into the leaf, the leaf's ``.grad`` is re-pointed at
whatever ``p.grad`` holds then (None after ``zero_grad()``).
"""
from __future__ import annotations

from typing import Dict, Tuple

import torch
from torch.distributed.tensor import DTensor

__all__ = ["LocalParameters"]


class LocalParameters:
    def __init__(self):
        self._leaves: Dict[int, "_Leaf"] = {}

    def local(self, p: torch.Tensor) -> torch.Tensor:
        """The tensor the program reads for parameter `p`."""
        if not isinstance(p, DTensor):
            return p
        entry = self._leaves.get(id(p))
        if entry is None or entry.param is not p:
            entry = _Leaf(p)
            self._leaves[id(p)] = entry
        return entry.leaf


class _Leaf:
    """One parameter's leaf and the DTensor gradient wrapping its ``.grad``.

    After ``zero_grad()`` (``p.grad`` is None) autograd hands the leaf a
    fresh gradient (no copy), and the parameter's DTensor gradient object
    is re-pointed at it instead of being rebuilt: building a DTensor costs
    more Python time than the small parameters' whole backward."""

    def __init__(self, p: DTensor):
        self.param = p
        with torch.no_grad():
            storage = p.to_local()
        self.leaf = storage.detach().requires_grad_(p.requires_grad)
        self.wrapper = None  # DTensor over leaf.grad, when linked
        if p.requires_grad:
            self.leaf.register_hook(self._before_accumulate)
            self.leaf.register_post_accumulate_grad_hook(self._after_accumulate)

    def _before_accumulate(self, grad: torch.Tensor) -> torch.Tensor:
        g = self.param.grad
        if g is None:
            self.leaf.grad = None  # zero_grad(): start afresh
            return grad
        # Accumulate into whatever p.grad holds now: our own wrapper, one the
        # user assigned, or one another leaf of the same parameter (another
        # program reading it) re-pointed at its buffer in this backward.
        local = g._local_tensor if isinstance(g, DTensor) else g
        if self.leaf.grad is not local:
            self.leaf.grad = local
        self.wrapper = g if isinstance(g, DTensor) else None
        return grad

    def _after_accumulate(self, leaf: torch.Tensor) -> None:
        p, w = self.param, self.wrapper
        if w is not None and p.grad is w and w._local_tensor is leaf.grad:
            return  # accumulated in place
        if (w is not None and p.grad is None and leaf.grad.shape == w._local_tensor.shape
                and leaf.grad.stride() == w._local_tensor.stride()):
            w._local_tensor = leaf.grad  # the same layout over the new buffer
        else:
            w = DTensor.from_local(leaf.grad, p.device_mesh, p.placements,
                                   run_check=False, shape=p.shape, stride=p.stride())
            self.wrapper = w
        p.grad = w
