"""Mixture-of-experts layers in local programs: this rank's part of an
``alpa.moe_experts`` op (alpa_torch/graph/experts.py makes it at capture):
data, expert (partial-sum) or token-exchange expert parallelism.

transformers' experts modules (classes decorated by
``use_experts_implementation``: Mixtral, Qwen-MoE, DeepSeek, ...) hold
parameters [E, ...] and compute ``forward(hidden [t, h], top_k_index [t, k],
top_k_weights [t, k])``: each token's weighted sum over its k experts. Which
rows meet which expert is data-dependent, so at the level of ATen ops the
planner could only split inside experts; as one op it can also move tokens:

    tokens split on an axis, experts too (expert parallelism, GShard):
      rank r: its tokens' routed rows, sorted by expert  --all-to-all-->
              rows of every rank for experts E_l·r ..     experts (local)
              --all-to-all back--> weighted sum over k   (nothing reduced)

The all-to-alls carry data-dependent row counts (``alpa.all_to_all_rows``,
counts exchanged first). With experts split but tokens whole, each rank
computes its experts' rows for every token and the output is a partial sum
(the rewrite all-reduces it).

The grouped matmul op itself (``transformers.grouped_mm_fallback``,
``aten._grouped_mm``, seen when the experts are traced through, as under
torch.compile) has a rule too: ``grouped_mm_experts`` runs it on this rank's
experts' rows, zeros elsewhere:

    rows  0 ....... start ...... end ........ t
    x     [ others' | my experts' | others'  ]
    out   [ 0       | x_mine·w    | 0        ]
"""
from __future__ import annotations

import copy
from typing import List, Optional

import torch

from alpa_torch.emit.local_ops import load_runtime
from alpa_torch.graph.experts import ExpertsEntry

__all__ = ["GROUPED_MM", "moe_experts_local", "grouped_mm_experts"]

GROUPED_MM = ("grouped_mm_fallback", "_grouped_mm")


def _stand_in(module: torch.nn.Module, names: List[str], params: List[torch.Tensor]) -> torch.nn.Module:
    """A shallow copy of `module` computing with `params` (this rank's
    experts): the experts interface's own forward then runs on them."""
    twin = copy.copy(module)
    twin._parameters = dict(module._parameters)
    for name, p in zip(names, params):
        twin._parameters[name] = p
    twin.num_experts = int(params[0].shape[0])
    return twin


def _expert_rows(twin: torch.nn.Module, rows: torch.Tensor, experts: torch.Tensor,
                 weight_dtype: torch.dtype, params: List[torch.Tensor]) -> torch.Tensor:
    """Each row through its (local) expert, unweighted: the module's forward
    with one expert per row and weight 1."""
    if rows.shape[0] == 0:
        # no row for these experts: their gradients are zeros, as in one
        # process, and the rows stay in the backward graph, so that this rank
        # joins the backward all-to-alls as every other rank does
        return rows.new_zeros(rows.shape) + (rows.sum() + sum(p.sum() for p in params)) * 0
    ones = torch.ones(rows.shape[0], 1, dtype=weight_dtype, device=rows.device)
    return type(twin).forward(twin, rows, experts.unsqueeze(1), ones)


def _combine(rows_out: torch.Tensor, order: torch.Tensor, top_k_weights: torch.Tensor) -> torch.Tensor:
    """Weighted sum over each token's k rows; `rows_out[i]` belongs to flat
    (token, slot) ``order[i]``; slots absent from `order` add zero."""
    tokens, k = top_k_weights.shape
    weights = top_k_weights.reshape(-1)[order].unsqueeze(1).to(rows_out.dtype)
    flat = rows_out.new_zeros(tokens * k, rows_out.shape[1]).index_copy(0, order, rows_out * weights)
    return flat.view(tokens, k, rows_out.shape[1]).sum(dim=1)


def moe_experts_local(entry: ExpertsEntry, hidden: torch.Tensor, top_k_index: torch.Tensor,
                      top_k_weights: torch.Tensor, params: List[torch.Tensor], *, piece: int,
                      count: int, group: Optional[str], node: str = "") -> torch.Tensor:
    """This rank's part of an experts layer. `params` hold experts
    ``piece·E_l ..`` (E_l = their dim 0) of ``count·E_l``; `group`: the
    exchange group (tokens moved to their experts), or None (tokens local:
    data parallel when count is 1, else a partial sum of this rank's
    experts)."""
    module, names = entry
    twin = _stand_in(module, names, params)
    local = int(params[0].shape[0])
    k = top_k_index.shape[1]
    ids = top_k_index.reshape(-1)
    if count == 1:  # every expert here: the module's own computation
        return type(twin).forward(twin, hidden, top_k_index, top_k_weights)
    first = piece * local
    if group is None:
        order = torch.nonzero((ids >= first) & (ids < first + local)).squeeze(1)
        order = order[torch.argsort(ids[order], stable=True)]
        out = _expert_rows(twin, hidden[order // k], ids[order] - first, top_k_weights.dtype, params)
        return _combine(out, order, top_k_weights).to(hidden.dtype)
    # token exchange: rows go to the rank owning their expert and come back
    load_runtime()
    order = torch.argsort(ids, stable=True)
    sorted_ids = ids[order]
    send_counts = torch.bincount(torch.div(sorted_ids, local, rounding_mode="floor"), minlength=count)
    ones = [1] * count
    recv_counts = torch.ops.alpa.all_to_all_rows(send_counts, ones, ones, group, node)
    send, recv = send_counts.tolist(), recv_counts.tolist()
    rows = torch.ops.alpa.all_to_all_rows(hidden[order // k], send, recv, group, node)
    experts = torch.ops.alpa.all_to_all_rows(sorted_ids, send, recv, group, node) - first
    by_expert = torch.argsort(experts, stable=True)
    out = _expert_rows(twin, rows[by_expert], experts[by_expert], top_k_weights.dtype, params)
    out = torch.zeros_like(out).index_copy(0, by_expert, out)  # back in arrival order
    back = torch.ops.alpa.all_to_all_rows(out, recv, send, group, node)
    return _combine(back, order, top_k_weights).to(hidden.dtype)


def grouped_mm_experts(op, x: torch.Tensor, weight: torch.Tensor, offs: torch.Tensor,
                       piece: int) -> torch.Tensor:
    """``op(x, w, offs)`` restricted to this rank's experts: ``weight`` holds
    experts ``piece·E_local ..`` of the ``offs.numel()`` experts; ``offs`` is
    whole. Rows of other experts come out zero."""
    count = weight.shape[0]
    first = piece * count
    if offs.numel() % count != 0 or first + count > offs.numel():
        raise ValueError(f"grouped matmul: {count} local experts at piece {piece} do not tile "
                         f"the {offs.numel()} experts of offs")
    ends = offs.tolist()  # one host sync, as transformers' own loop makes
    start = ends[first - 1] if first else 0
    end = ends[first + count - 1]
    local = op(x[start:end], weight, offs[first:first + count] - start)
    return torch.nn.functional.pad(local, (0, 0, start, x.shape[0] - end))
