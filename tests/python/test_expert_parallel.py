"""Mixture-of-experts layers (issue 12, defect 7): capture keeps each of
transformers' experts modules as one op, ``alpa.moe_experts``, whose plans
include expert parallelism with tokens moved by all-to-all; every strategy
trains exactly, also when routing leaves ranks without tokens."""
import numpy as np
import pytest
import torch

import alpa_torch
from alpa_torch.emit.experts import moe_experts_local
from alpa_torch.graph.experts import is_experts_module

transformers = pytest.importorskip("transformers")

from dist_harness import run_ranks  # noqa: E402
from training import train_steps  # noqa: E402

STEPS = 3
EXCHANGE = "S{a}R = S{a}R x S{a}R x S{a}R x S{a}RR x S{a}RR"


def tiny_config(**extra):
    base = dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=1,
                num_attention_heads=4, num_key_value_heads=2, num_local_experts=4,
                num_experts_per_tok=2, max_position_embeddings=32, use_cache=False)
    return transformers.MixtralConfig(**{**base, **extra})


def tiny_mixtral():
    torch.manual_seed(0)
    model = transformers.MixtralForCausalLM(tiny_config())
    ids = torch.randint(0, 64, (2, 8), generator=torch.Generator().manual_seed(1))
    return model, (ids,)


def loss_of(out):
    target = torch.randn(out.logits.shape, generator=torch.Generator().manual_seed(7))
    return ((out.logits - target) ** 2).mean()


def optimizer(params, kind):
    return (torch.optim.SGD(params, lr=0.05) if kind == "sgd"
            else torch.optim.AdamW(params, lr=1e-3, eps=1e-6))


def reference(kind):
    model, args = tiny_mixtral()
    losses = train_steps(model, args, loss_of, STEPS, optimizer(model.parameters(), kind))
    return losses, {k: v.detach().numpy() for k, v in model.state_dict().items()}


# ---- capture and planning ---------------------------------------------------------

def test_capture_keeps_each_experts_module_as_one_op():
    model, args = tiny_mixtral()
    experts = model.model.layers[0].mlp.experts
    before = model(*args).logits
    graph = alpa_torch.capture(model, args)
    ops = [n for n in graph.nodes if n.kind == "op"]
    moe = [n for n in ops if n.op == "alpa.moe_experts.default"]
    assert [n.module for n in moe] == ["model.layers.0.mlp.experts"]
    assert list(graph.experts) == ["model.layers.0.mlp.experts"]
    # the routing inside the experts (sort, histc, grouped matmuls) is not in the graph
    assert not any(k in n.op for n in ops for k in ("sort", "histc", "grouped_mm"))
    # 16 tokens x 2 routed rows, each through one expert's [96, 32] and [32, 48]
    assert moe[0].flops == 2 * 32 * (96 * 32 + 32 * 48)
    # the module is itself again after capture
    assert "forward" not in experts.__dict__
    torch.testing.assert_close(model(*args).logits, before, rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="runs only inside alpa_torch's parallel programs"):
        torch.ops.alpa.moe_experts(torch.zeros(2, 32), torch.zeros(2, 2, dtype=torch.long),
                                   torch.zeros(2, 2), [experts.gate_up_proj], "x")


def test_modules_that_are_not_experts_are_left_alone():
    assert not is_experts_module(torch.nn.Linear(4, 4))
    block = transformers.MixtralForCausalLM(tiny_config()).model.layers[0].mlp
    assert not is_experts_module(block)  # the router's block holds modules with weights
    assert is_experts_module(block.experts)


def full_width_graph():
    cfg = transformers.MixtralConfig(
        vocab_size=32000, hidden_size=4096, intermediate_size=14336, num_hidden_layers=1,
        num_attention_heads=32, num_key_value_heads=8, num_local_experts=8,
        num_experts_per_tok=2, use_cache=False)
    with torch.device("meta"):
        model = transformers.MixtralForCausalLM(cfg)
    return alpa_torch.capture(model, (torch.zeros((1, 1024), dtype=torch.long, device="meta"),))


@pytest.mark.parametrize("mesh", [(1, 4), (2, 2)])
def test_mixtral_plans_expert_parallelism_with_token_all_to_all(mesh):
    """The acceptance line: Mixtral on (1,4) (and (2,2)), a100-40gb: expert
    weights split on the expert dim, tokens moved by all-to-all."""
    plan = alpa_torch.plan(full_width_graph(), mesh_shape=mesh, cluster="a100-40gb")
    experts = {k: v for k, v in plan.param_specs.items() if "experts" in k}
    assert len(experts) == 2 and all(s.startswith("S") and s.endswith("RR") for s in experts.values())
    stage = plan.stages[0]
    strategy = stage.node_specs["moe_experts"]["strategy"]
    split = strategy.split(" ")[0][:-1]  # the tokens' split, e.g. "S0"
    assert strategy == f"{split}R = " + " x ".join([f"{split}R"] * 3 + [f"{split}RR"] * 2), strategy
    moved = [c for c in stage.collectives() if c.node == "moe_experts" and c.what.startswith("token")]
    assert sorted(c.what for c in moved) == sorted(["token dispatch", "token combine",
                                                   "token dispatch (backward)", "token combine (backward)"])
    assert all(c.kind == "all_to_all" for c in moved)
    assert "token dispatch" in plan.explain()


# ---- training ---------------------------------------------------------------------------

def _train_worker(rank, world, mesh, strategies, kinds):
    out = {}
    for strategy in strategies:
        for kind in kinds:
            model, args = tiny_mixtral()
            pins = {"moe_experts": strategy} if strategy else {}
            pmodel = alpa_torch.parallelize(model, args, mesh_shape=mesh, plan_overrides=pins)
            losses = train_steps(pmodel, args, loss_of, STEPS, optimizer(pmodel.parameters(), kind))
            state = {k: v.detach().numpy().copy() for k, v in pmodel.full_state_dict().items()}
            chosen = pmodel.alpa_plan.stages[0].node_specs["moe_experts"]["strategy"]
            out[(strategy, kind)] = (losses, state, chosen)
    return out


def strategies_on(mesh):
    graph = alpa_torch.capture(*tiny_mixtral())
    with pytest.raises(ValueError) as info:
        alpa_torch.plan(graph, mesh_shape=mesh, plan_overrides={"moe_experts": "R = R"})
    return [line.strip() for line in str(info.value).splitlines()[1:] if " = " in line]


def check_equal(results, kinds):
    refs = {kind: reference(kind) for kind in kinds}
    for rank, result in enumerate(results):
        for (strategy, kind), (losses, state, chosen) in result.items():
            if strategy:
                assert chosen == strategy
            ref_losses, ref_state = refs[kind]
            where = f"{chosen}, {kind}, rank {rank}"
            np.testing.assert_allclose(losses, ref_losses, rtol=1e-5, err_msg=where)
            assert set(state) == set(ref_state), where
            for key in ref_state:
                np.testing.assert_allclose(state[key], ref_state[key], rtol=1e-5, atol=1e-6,
                                           err_msg=f"{where}: {key}")


def test_every_experts_strategy_on_2x2_trains_exactly():
    strategies = strategies_on((2, 2))
    assert len(strategies) == 14 and EXCHANGE.format(a="01") in strategies
    check_equal(run_ranks(_train_worker, 4, (2, 2), strategies, ("sgd",), timeout=400), ("sgd",))


def test_expert_parallel_on_1x4_trains_exactly_with_sgd_and_adamw():
    # (1, 4) is planned as a (4, 1) logical mesh: axis 0 has the 4 devices
    strategies = [EXCHANGE.format(a="0"), "RR = RR x RR x RR x S0RR x S0RR", None]
    kinds = ("sgd", "adamw")
    check_equal(run_ranks(_train_worker, 4, (1, 4), strategies, kinds, timeout=400), kinds)


# ---- the exchange itself, with uneven and empty routing ------------------------------------

ROUTINGS = {
    # every token to experts 0 and 1, both on rank 0: ranks 1..3 receive no row
    "skewed": lambda t, e: torch.stack([torch.zeros(t, dtype=torch.long), torch.ones(t, dtype=torch.long)], 1),
    # every token to the last expert and one other
    "last": lambda t, e: torch.stack([torch.full((t,), e - 1), torch.arange(t) % (e - 1)], 1),
    "random": lambda t, e: torch.stack([torch.randperm(e, generator=torch.Generator().manual_seed(i))[:2]
                                        for i in range(t)]),
}


def experts_module():
    torch.manual_seed(3)
    module = transformers.models.mixtral.modeling_mixtral.MixtralExperts(
        tiny_config(num_local_experts=8))
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.2)
    return module


def routed_batch(routing):
    g = torch.Generator().manual_seed(5)
    hidden = torch.randn(16, 32, generator=g)
    weights = torch.rand(16, 2, generator=g)
    return hidden, ROUTINGS[routing](16, 8), weights, torch.randn(16, 32, generator=g)


def _exchange_worker(rank, world):
    from alpa_torch.runtime.mesh import MeshGroups
    mesh = MeshGroups((1, world))
    return {routing: _exchange(rank, world, mesh, routing) for routing in sorted(ROUTINGS)}


def _exchange(rank, world, mesh, routing):
    module = experts_module()
    hidden, index, weights, grad_out = routed_batch(routing)
    tokens = slice(rank * 16 // world, (rank + 1) * 16 // world)
    experts = slice(rank * 8 // world, (rank + 1) * 8 // world)
    h = hidden[tokens].clone().requires_grad_(True)
    w = weights[tokens].clone().requires_grad_(True)
    params = [p.detach()[experts].clone().requires_grad_(True) for p in module.parameters()]
    names = [n for n, _ in module.named_parameters()]
    out = moe_experts_local((module, names), h, index[tokens], w, params, piece=rank,
                                       count=world, group=mesh.group([1]))
    (out * grad_out[tokens]).sum().backward()
    return (out.detach().numpy(), h.grad.numpy(), w.grad.numpy(), [p.grad.numpy() for p in params])


def test_token_exchange_equals_the_module_with_uneven_routing():
    by_rank = run_ranks(_exchange_worker, 4, timeout=120)
    for routing in sorted(ROUTINGS):
        check_exchange(routing, [r[routing] for r in by_rank])


def check_exchange(routing, results):
    module = experts_module()
    hidden, index, weights, grad_out = routed_batch(routing)
    h, w = hidden.clone().requires_grad_(True), weights.clone().requires_grad_(True)
    out = module(h, index, w)
    (out * grad_out).sum().backward()
    np.testing.assert_allclose(np.concatenate([r[0] for r in results]), out.detach().numpy(),
                               rtol=1e-5, atol=1e-6, err_msg=routing)
    np.testing.assert_allclose(np.concatenate([r[1] for r in results]), h.grad.numpy(), rtol=1e-5, atol=1e-6, err_msg=routing)
    np.testing.assert_allclose(np.concatenate([r[2] for r in results]), w.grad.numpy(), rtol=1e-5, atol=1e-6, err_msg=routing)
    for i, p in enumerate(module.parameters()):
        np.testing.assert_allclose(np.concatenate([r[3][i] for r in results]), p.grad.numpy(),
                                   rtol=1e-5, atol=1e-6, err_msg=routing)
