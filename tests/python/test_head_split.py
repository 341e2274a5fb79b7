"""Head-split (Megatron) attention for the Llama family: rotary embeddings
and the grouped-query key/value repeat carry a split of the heads dim
(issue 12, defect 8).

A tiny Llama with GQA (4 query heads, 2 key/value heads) trained on 2 Gloo
processes with the head-split plan equals single-process training, both as
transformers captures it on CPU (repeat_kv: expand + reshape of the
key/value heads, then plain attention) and with its GQA attention
(``enable_gqa=True``, what it uses on CUDA without a mask).
"""
import contextlib
import os

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from dist_harness import run_ranks  # noqa: E402
from training import train_steps  # noqa: E402

STEPS = 2
VARIANTS = ("repeat_kv", "enable_gqa")


@contextlib.contextmanager
def sdpa_variant(variant):
    """transformers picks SDPA's own GQA when this variable is 1."""
    old = os.environ.get("TRANSFORMERS_SDPA_FORCE_GQA")
    os.environ["TRANSFORMERS_SDPA_FORCE_GQA"] = "1" if variant == "enable_gqa" else "0"
    try:
        yield
    finally:
        if old is None:
            del os.environ["TRANSFORMERS_SDPA_FORCE_GQA"]
        else:
            os.environ["TRANSFORMERS_SDPA_FORCE_GQA"] = old


def tiny_llama(layers=1):
    cfg = transformers.LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
        use_cache=False)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(cfg)
    ids = torch.randint(0, 64, (2, 8), generator=torch.Generator().manual_seed(1))
    return model, (ids,)


def megatron_overrides(model, axis=0):
    """Parameter pins of Megatron's layout on mesh axis `axis`."""
    col, row = f"S{axis}R", f"RS{axis}"
    pins = {}
    for name, _ in model.named_parameters():
        if name.endswith(("q_proj.weight", "k_proj.weight", "v_proj.weight",
                          "gate_proj.weight", "up_proj.weight")):
            pins[name] = col
        elif name.endswith(("o_proj.weight", "down_proj.weight")):
            pins[name] = row
    return pins


def loss_of(out):
    logits = out.logits if hasattr(out, "logits") else out[0]
    target = torch.randn(logits.shape, generator=torch.Generator().manual_seed(7))
    return ((logits.float() - target) ** 2).mean()


def train(model, args):
    return train_steps(model, args, loss_of, STEPS)


def _worker(rank, world):
    import alpa_torch
    out = {}
    for variant in VARIANTS:
        with sdpa_variant(variant):
            model, args = tiny_llama()
            pmodel = alpa_torch.parallelize(model, args, mesh_shape=(1, 2),
                                            plan_overrides=megatron_overrides(model))
            losses = train(pmodel, args)
        state = {k: v.detach().numpy().copy() for k, v in pmodel.full_state_dict().items()}
        nodes = pmodel.alpa_plan.stages[0].node_specs
        attn = {k: v["strategy"] for k, v in nodes.items() if "scaled_dot_product" in k}
        out[variant] = (losses, state, attn)
    return out


def test_gqa_head_split_training_equals_single_process():
    results = run_ranks(_worker, 2, timeout=120)
    for variant in VARIANTS:
        with sdpa_variant(variant):
            model, args = tiny_llama()
            ref_losses = train(model, args)
        ref_state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
        for rank, result in enumerate(results):
            losses, state, attn = result[variant]
            label = f"{variant} rank {rank}"
            # attention split by heads: dim 1 of q, k, v [b, heads, s, d]
            assert attn and all(s.startswith("RS0RR = RS0RR x RS0RR x RS0RR") for s in attn.values()), (label, attn)
            np.testing.assert_allclose(losses, ref_losses, rtol=1e-5, err_msg=label)
            for key in ref_state:
                np.testing.assert_allclose(state[key], ref_state[key], rtol=1e-5, atol=1e-6,
                                           err_msg=f"{label}: {key}")
