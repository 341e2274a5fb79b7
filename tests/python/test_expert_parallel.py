"""Mixture-of-experts layers (transformers' Mixtral experts, a grouped
matmul over stacked expert weights) get sharding rules (issue 12, defect
7): the planner splits the expert weights instead of replicating them, and
a plan that splits them by expert trains exactly on 2 processes."""
import numpy as np
import pytest
import torch

import alpa_torch

transformers = pytest.importorskip("transformers")

from dist_harness import run_ranks  # noqa: E402
from training import train_steps  # noqa: E402

STEPS = 2


def tiny_mixtral():
    cfg = transformers.MixtralConfig(
        vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=1,
        num_attention_heads=4, num_key_value_heads=2, num_local_experts=4,
        num_experts_per_tok=2, max_position_embeddings=32, use_cache=False)
    torch.manual_seed(0)
    model = transformers.MixtralForCausalLM(cfg)
    ids = torch.randint(0, 64, (2, 8), generator=torch.Generator().manual_seed(1))
    return model, (ids,)


def expert_overrides(graph, axis=0):
    """Pins every grouped matmul to its expert-split strategy on `axis`."""
    pins = {}
    for n in graph.nodes:
        if n.kind == "op" and "grouped_mm" in n.op:
            w = f"S{axis}RR"
            pins[n.name] = f"RR = RR x {w} x R"
    return pins


def loss_of(out):
    target = torch.randn(out.logits.shape, generator=torch.Generator().manual_seed(7))
    return ((out.logits - target) ** 2).mean()


def train(model, args):
    return train_steps(model, args, loss_of, STEPS)


def test_mixtral_experts_are_split_on_four_devices():
    cfg = transformers.MixtralConfig(
        vocab_size=32000, hidden_size=4096, intermediate_size=14336, num_hidden_layers=1,
        num_attention_heads=32, num_key_value_heads=8, num_local_experts=8,
        num_experts_per_tok=2, use_cache=False)
    with torch.device("meta"):
        model = transformers.MixtralForCausalLM(cfg)
    graph = alpa_torch.capture(model, (torch.zeros((1, 1024), dtype=torch.long, device="meta"),))
    plan = alpa_torch.plan(graph, mesh_shape=(1, 4), cluster="a100-40gb")
    experts = {k: v for k, v in plan.param_specs.items() if "experts" in k}
    assert experts and all("S" in s for s in experts.values()), experts
    assert not any("grouped_mm" in w for w in plan.warnings), plan.warnings
    # the expert-split strategy exists (expert parallelism), priced by the ILP
    pinned = alpa_torch.plan(graph, mesh_shape=(1, 4), cluster="a100-40gb",
                             plan_overrides=expert_overrides(graph))
    specs = {k: v["strategy"] for k, v in pinned.stages[0].node_specs.items() if "grouped_mm" in k}
    assert specs and all(s == "RR = RR x S0RR x R" for s in specs.values()), specs


def _worker(rank, world):
    out = {}
    for label in ("expert_split", "planned"):
        model, args = tiny_mixtral()
        # expert_split: pinned by expert; planned: Alpa's cost mode, which
        # splits each expert's weights by columns then rows
        options = ({"plan_overrides": expert_overrides(alpa_torch.capture(model, args))}
                   if label == "expert_split" else {"cost_mode": "alpa"})
        pmodel = alpa_torch.parallelize(model, args, mesh_shape=(1, 2), **options)
        losses = train(pmodel, args)
        state = {k: v.detach().numpy().copy() for k, v in pmodel.full_state_dict().items()}
        nodes = pmodel.alpa_plan.stages[0].node_specs
        out[label] = (losses, state, {k: v["strategy"] for k, v in nodes.items() if "grouped_mm" in k})
    return out


def test_mixtral_expert_split_training_equals_single_process():
    results = run_ranks(_worker, 2, timeout=180)
    model, args = tiny_mixtral()
    ref_losses = train(model, args)
    ref_state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    expected = {"expert_split": {"RR = RR x S0RR x R"},  # 2 of the 4 experts per rank
                "planned": {"RS0x2 = RR x RRS0x2 x R", "RR = RS0 x RS0R x R"}}
    for rank, result in enumerate(results):
        for label, (losses, state, strategies) in result.items():
            assert set(strategies.values()) == expected[label], (label, strategies)
            np.testing.assert_allclose(losses, ref_losses, rtol=1e-5, err_msg=f"{label} rank {rank}")
            for key in ref_state:
                np.testing.assert_allclose(state[key], ref_state[key], rtol=1e-5, atol=1e-6,
                                           err_msg=f"{label} rank {rank}: {key}")
