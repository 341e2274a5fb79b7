"""GShard-style Mixture-of-Experts (Lepikhin et al., 2020), fully dense.

Top-2 gating with a softmax router and a fixed expert capacity
C = ceil(capacity_factor * 2 * tokens / num_experts). Routing is expressed
with one-hot masks, cumsum positions and einsums only: no data-dependent
Python control flow, boolean indexing, `.item()` or `nonzero`, so
`torch.export.export` captures it with static shapes. This is the
expert-parallel workload for tests, benchmarks and demos.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MoELayer", "MoETransformerBlock", "moe_layer", "moe_block",
           "example_inputs"]


def _one_hot(index, n, dtype):
    """index: [...] int -> [..., n] one-hot (comparison with arange)."""
    return (index.unsqueeze(-1) == torch.arange(n, device=index.device)).to(dtype)


class MoELayer(nn.Module):
    """Top-2 gated MoE feed-forward layer with E experts d -> ffn -> d.

    Tokens over capacity are dropped (their output is 0 for that expert).
    x: [B, S, d] -> [B, S, d]  (or ([B, S, d], aux_loss []) if asked)
    """

    def __init__(self, d_model=64, num_experts=4, ffn=128, capacity_factor=1.25):
        super().__init__()
        self.num_experts = num_experts
        self.capacity_factor = capacity_factor
        self.router = nn.Linear(d_model, num_experts, bias=False)
        self.w_in = nn.Parameter(torch.empty(num_experts, d_model, ffn))
        self.w_out = nn.Parameter(torch.empty(num_experts, ffn, d_model))
        nn.init.normal_(self.w_in, std=d_model ** -0.5)
        nn.init.normal_(self.w_out, std=ffn ** -0.5)

    def capacity(self, num_tokens):
        """Slots per expert: ceil(capacity_factor * 2 * tokens / E)."""
        return math.ceil(self.capacity_factor * 2 * num_tokens / self.num_experts)

    def route(self, tokens):
        """tokens: [T, d] -> combine [T, E, C], dispatch [T, E, C], aux_loss []."""
        T, E = tokens.shape[0], self.num_experts
        C = self.capacity(T)
        probs = torch.softmax(self.router(tokens), dim=-1)            # [T, E]
        top_p, top_i = probs.topk(2, dim=-1)                           # [T, 2]
        gates = top_p / top_p.sum(dim=-1, keepdim=True)                # normalized
        mask1 = _one_hot(top_i[:, 0], E, probs.dtype)                  # [T, E]
        mask2 = _one_hot(top_i[:, 1], E, probs.dtype)
        # Slot of each token in its expert's buffer: first choices fill first,
        # second choices queue after all kept first choices.
        pos1 = torch.cumsum(mask1, dim=0) - 1
        mask1 = mask1 * (pos1 < C).to(probs.dtype)
        pos2 = torch.cumsum(mask2, dim=0) - 1 + mask1.sum(dim=0, keepdim=True)
        mask2 = mask2 * (pos2 < C).to(probs.dtype)
        slot1 = _one_hot((pos1 * mask1).sum(-1).long(), C, probs.dtype)  # [T, C]
        slot2 = _one_hot((pos2 * mask2).sum(-1).long(), C, probs.dtype)
        combine = (gates[:, 0, None, None] * mask1[:, :, None] * slot1[:, None, :]
                   + gates[:, 1, None, None] * mask2[:, :, None] * slot2[:, None, :])
        dispatch = (mask1[:, :, None] * slot1[:, None, :]
                    + mask2[:, :, None] * slot2[:, None, :])
        # Load-balancing loss: E * sum_e (fraction routed first to e) * (mean prob e).
        frac = _one_hot(top_i[:, 0], E, probs.dtype).mean(dim=0)
        aux_loss = E * (frac * probs.mean(dim=0)).sum()
        return combine, dispatch, aux_loss

    def forward(self, x, return_aux_loss=False):
        B, S, d = x.shape
        tokens = x.reshape(B * S, d)
        combine, dispatch, aux_loss = self.route(tokens)
        expert_in = torch.einsum("tec,td->ecd", dispatch, tokens)       # [E, C, d]
        h = F.gelu(torch.einsum("ecd,edf->ecf", expert_in, self.w_in))  # [E, C, ffn]
        expert_out = torch.einsum("ecf,efd->ecd", h, self.w_out)        # [E, C, d]
        out = torch.einsum("tec,ecd->td", combine, expert_out).reshape(B, S, d)
        return (out, aux_loss) if return_aux_loss else out


class MoETransformerBlock(nn.Module):
    """Pre-LN block: x + Attn(LN(x)), then x + MoE(LN(x)).

    Hand-written multi-head self-attention (no mask).
    x: [B, S, d] -> [B, S, d]
    """

    def __init__(self, d_model=64, num_heads=4, num_experts=4, ffn=128,
                 capacity_factor=1.25):
        super().__init__()
        if d_model % num_heads:
            raise ValueError("d_model must be divisible by num_heads")
        self.num_heads = num_heads
        self.ln1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.ln2 = nn.LayerNorm(d_model)
        self.moe = MoELayer(d_model, num_experts, ffn, capacity_factor)

    def attention(self, x):
        """x: [B, S, d] -> [B, S, d]"""
        B, S, d = x.shape
        q, k, v = self.qkv(x).reshape(B, S, 3, self.num_heads, d // self.num_heads) \
                             .permute(2, 0, 3, 1, 4)                 # [B, H, S, dh] each
        att = torch.softmax(q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5, dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(B, S, d))

    def forward(self, x, return_aux_loss=False):
        x = x + self.attention(self.ln1(x))
        y, aux_loss = self.moe(self.ln2(x), return_aux_loss=True)
        x = x + y
        return (x, aux_loss) if return_aux_loss else x


def moe_layer(d_model=64, num_experts=4, ffn=128, capacity_factor=1.25):
    """Build a `MoELayer`; x: [B, S, d_model] -> [B, S, d_model]."""
    return MoELayer(d_model, num_experts, ffn, capacity_factor)


def moe_block(d_model=64, num_heads=4, num_experts=4, ffn=128, capacity_factor=1.25):
    """Build a `MoETransformerBlock`; x: [B, S, d_model] -> [B, S, d_model]."""
    return MoETransformerBlock(d_model, num_heads, num_experts, ffn, capacity_factor)


def example_inputs(batch=2, seq=16, d_model=64):
    """Positional args for both MoE models: (x [batch, seq, d_model],)."""
    return (torch.randn(batch, seq, d_model),)
