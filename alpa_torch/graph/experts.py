"""Mixture-of-experts layers at capture: each experts module of transformers
becomes one op, ``alpa.moe_experts``, so the planner can move tokens to
their experts (alpa_torch/emit/experts.py runs its local programs).

transformers' experts modules (classes decorated by
``use_experts_implementation``: Mixtral, Qwen-MoE, DeepSeek, ...) hold
parameters [E, ...] and compute ``forward(hidden [t, h], top_k_index [t, k],
top_k_weights [t, k])``: each token's weighted sum over its k experts. Which
rows meet which expert is data-dependent, so at the level of ATen ops the
planner could only split inside experts; as one op it can also move tokens
(expert parallelism, GShard).
"""
from __future__ import annotations

import contextlib
from typing import Dict, Iterator, List, Tuple

import torch

__all__ = ["EXPERTS_OP", "ExpertsEntry", "is_experts_module", "experts_as_ops"]

EXPERTS_OP = "moe_experts"  # the op's name in the graph (alpa.moe_experts)


@torch.library.custom_op("alpa::moe_experts", mutates_args=())
def _moe_experts(hidden: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor,
                 params: List[torch.Tensor], module: str) -> torch.Tensor:
    raise RuntimeError(
        f"alpa.moe_experts (the experts module {module!r}) runs only inside alpa_torch's "
        f"parallel programs; run the model itself to compute it in one process")


@_moe_experts.register_fake
def _(hidden, top_k_index, top_k_weights, params, module):
    return torch.empty_like(hidden)


def is_experts_module(module: torch.nn.Module) -> bool:
    """An experts module of transformers' experts interface: an int
    ``num_experts``, the interface's ``_apply_gate``, and its own
    parameters, every one [num_experts, ...]."""
    count = getattr(module, "num_experts", None)
    params = list(module.parameters(recurse=False))
    return (isinstance(count, int) and count > 0 and callable(getattr(type(module), "_apply_gate", None))
            and bool(params) and all(p.dim() >= 2 and p.shape[0] == count for p in params)
            and all(not list(child.parameters()) for child in module.children()))


ExpertsEntry = Tuple[torch.nn.Module, List[str]]  # (module, its parameter names in op order)


@contextlib.contextmanager
def experts_as_ops(root: torch.nn.Module) -> Iterator[Dict[str, ExpertsEntry]]:
    """While active, every experts module under `root` computes through
    ``alpa.moe_experts`` (for torch.export). Yields {module path: entry}."""
    found: Dict[str, ExpertsEntry] = {}
    patched = []
    for path, module in root.named_modules():
        if not is_experts_module(module):
            continue
        names = [n for n, _ in module.named_parameters(recurse=False)]
        found[path] = (module, names)
        had = module.__dict__.get("forward")

        def forward(hidden_states, top_k_index, top_k_weights, _m=module, _n=names, _p=path):
            return torch.ops.alpa.moe_experts(hidden_states, top_k_index, top_k_weights,
                                              [getattr(_m, n) for n in _n], _p)

        module.forward = forward
        patched.append((module, had))
    try:
        yield found
    finally:
        for module, had in patched:
            if had is None:
                del module.forward
            else:
                module.forward = had
