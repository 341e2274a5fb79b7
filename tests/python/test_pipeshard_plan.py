"""Acceptance tests of the pipeshard planner (Alpa §5) through alpa_torch.plan:

* layer clustering gives a 12-block GPT-2 whole blocks per layer (L = 12, 6, 4);
* on a 2-host cluster, sweeping the inter-host link α/β from cheap to very
  expensive moves the choice, for every model of a hidden-size × batch grid,
  from a single stage (pure intra-op) to a pipeline with one host per stage,
  monotonically, and plan.explain() says why (the chosen pipeline against the
  best single stage, or the reverse);
* progress(done, total) reports every distinct candidate ILP, and an
  exception raised by it stops planning and propagates.

Models are built on the meta device, so capturing and planning allocate no
weights.
"""
import pytest
import torch
from torch import nn

import alpa_torch
from alpa_torch import _C
from alpa_torch.planning.cluster import Cluster
from test_layer_clustering import Block


class MlpStack(nn.Module):
    def __init__(self, d, blocks=4):
        super().__init__()
        self.blocks = nn.ModuleList([Block(d) for _ in range(blocks)])

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x


def capture_mlp(hidden, batch):
    with torch.device("meta"):
        model = MlpStack(hidden)
    return alpa_torch.capture(model, (torch.randn(batch, hidden, device="meta"),))


@pytest.fixture(scope="module")
def gpt2():
    transformers = pytest.importorskip("transformers")
    transformers.utils.logging.set_verbosity_error()
    cfg = transformers.GPT2Config(n_layer=12, n_embd=256, n_head=4, vocab_size=256,
                                  n_positions=64, use_cache=False)
    with torch.device("meta"):
        model = transformers.GPT2LMHeadModel(cfg)
    return alpa_torch.capture(model, (torch.randint(0, 256, (2, 64), device="meta"),))


@pytest.mark.parametrize("num_layers", [12, 6, 4])
def test_gpt2_blocks_are_never_split(gpt2, num_layers):
    result = _C.cluster_layers(gpt2.graph, num_layers=num_layers)
    assert result["num_layers"] == num_layers
    per_layer = 12 // num_layers
    layer_of_node = result["layer_of_node"]
    for node in gpt2.nodes:
        if node.kind == "op" and node.module.startswith("transformer.h."):
            block = int(node.module.split(".")[2])
            assert layer_of_node[node.id] == block // per_layer, (node.name, node.module)
    flops = result["layer_flops"]
    # Equal blocks, equal layers; the first holds the embeddings, the last the head.
    assert len(set(flops[1:-1])) <= 1
    assert max(flops) / min(flops) < 1.25


def two_hosts(factor):
    """2 hosts × 2 A100s whose inter-host link is `factor` times the preset's."""
    base = Cluster.preset("a100-40gb", 2, 2).to_dict()["inter_host"]
    return Cluster.preset("a100-40gb", 2, 2).with_links(
        inter_alpha=base["alpha"] * factor, inter_beta=base["beta"] * factor)


def hosts_of(stage, devices_per_host=2):
    return {d // devices_per_host for d in stage.device_ids}


GRID = [(256, 64), (256, 1024), (1024, 64), (1024, 1024)]  # (hidden, batch)
SWEEP = [1e-4, 1e-2, 1.0, 1e2, 1e4]  # inter-host α and β, times the preset's


@pytest.mark.parametrize("hidden,batch", GRID)
def test_choice_moves_from_intra_op_to_pipelining_as_links_get_costlier(hidden, batch):
    graph = capture_mlp(hidden, batch)
    stages = []
    for factor in SWEEP:
        plan = alpa_torch.plan(graph, cluster=two_hosts(factor), method="pipeshard",
                               num_micro_batches=4)
        stages.append(len(plan.stages))
        text = plan.explain()
        if len(plan.stages) == 1:
            assert plan.stages[0].device_ids == [0, 1, 2, 3]
            assert "pure intra-op: a single stage on all 4 devices" in text, text
            assert "beats the best pipeline of >= 2 stages" in text, text
        else:
            for stage in plan.stages:
                assert len(hosts_of(stage)) == 1, (factor, stage.device_ids, text)
            assert "best single stage on all 4 devices (pure intra-op)" in text, text
            assert "pipelining is" in text and "% faster" in text, text
        assert "stage DP (Alpa §5.2) over 4 layers" in text, text
    pipelined = [n > 1 for n in stages]
    assert not pipelined[0], f"cheap links should keep one stage: {stages}"
    assert pipelined[-1], f"very expensive inter-host links should pipeline: {stages}"
    switch = pipelined.index(True)
    assert all(pipelined[switch:]), f"the switch must be monotone along the sweep: {stages}"


def test_progress_reports_each_distinct_ilp():
    graph = capture_mlp(256, 64)
    calls = []
    plan = alpa_torch.plan(graph, cluster=two_hosts(1.0), method="pipeshard",
                           num_micro_batches=4, progress=lambda d, t: calls.append((d, t)))
    solved = plan.solver["num_solved"]
    assert solved > 0
    assert [d for d, _ in calls] == list(range(1, solved + 1))
    assert all(1 <= d <= t <= solved for d, t in calls)
    assert calls[-1] == (solved, solved)


def test_progress_exception_propagates_and_bad_progress_arguments():
    graph = capture_mlp(256, 64)
    seen = []

    def stop(done, total):
        seen.append(done)
        raise KeyError("stop planning")

    with pytest.raises(KeyError, match="stop planning"):
        alpa_torch.plan(graph, cluster=two_hosts(1.0), method="pipeshard", num_micro_batches=4,
                        progress=stop)
    assert seen == [1]
    with pytest.raises(TypeError, match="progress must be a callable"):
        alpa_torch.plan(graph, cluster=two_hosts(1.0), method="pipeshard", progress=3)
    with pytest.raises(ValueError, match="method='intra_op' solves one ILP"):
        alpa_torch.plan(graph, mesh_shape=(1, 2), progress=print)


def _gpt2_on_meta(layers, hidden, seq, batch):
    from transformers import GPT2Config, GPT2LMHeadModel
    cfg = GPT2Config(n_layer=layers, n_embd=hidden, n_head=hidden // 128, vocab_size=51200,
                     n_positions=seq, use_cache=False, bos_token_id=0, eos_token_id=0)
    with torch.device("meta"):
        model = GPT2LMHeadModel(cfg)
    ids = torch.randint(0, cfg.vocab_size, (batch, seq), device="meta")
    return alpa_torch.capture(model, (ids,))


@pytest.fixture(scope="module")
def gpt_4_hosts():
    # 8 GPT-2 blocks (h 1024, seq 512, micro-batch 8) on 4 hosts x 1 A100-40GB, 16 microbatches
    return _gpt2_on_meta(8, 1024, 512, 8), Cluster.preset("a100-40gb", 4, 1)


def test_remat_is_chosen_per_stage_when_memory_binds(gpt_4_hosts):
    # At 6 GiB per device a pipeline's first stages cannot keep the
    # activations of their microbatches in flight: without remat the planner
    # falls back to one stage over the slow inter-host links; with
    # remat="auto" it recomputes those stages (priced) and stays pipelined.
    graph, cluster = gpt_4_hosts
    kwargs = dict(cluster=cluster, method="pipeshard", num_micro_batches=16,
                  memory_budget="6GiB")
    kept = alpa_torch.plan(graph, remat="none", **kwargs)
    auto = alpa_torch.plan(graph, remat="auto", **kwargs)
    assert len(kept.stages) == 1 and not kept.stages[0].remat
    assert len(auto.stages) > 1
    assert auto.stages[0].remat  # the first stage holds the most microbatches in flight
    assert not all(s.remat for s in auto.stages)  # the last holds one: no need
    assert auto.predicted_step_time < kept.predicted_step_time
    for s in auto.stages:
        if s.remat:
            assert 0 < s.recompute_time < s.predicted_time
        else:
            assert s.recompute_time == 0
    assert "recompute" in auto.explain() and "with the microbatches in flight" in auto.explain()
    budget = 6 * 2**30
    S = len(auto.stages)
    for i, s in enumerate(auto.stages):  # the DP's in-flight bound, as the plan reports it
        in_flight = min(S - i, 16)
        act = s.memory_bytes - s._doc["parameter_memory_bytes"]
        kept = act + (in_flight - 1) * min(act, s._doc["input_memory_bytes"]) if s.remat \
            else in_flight * act
        assert s.peak_memory_bytes == pytest.approx(s._doc["parameter_memory_bytes"] + kept)
        assert s.peak_memory_bytes <= budget
        if s.remat:  # keeping every activation would not have fit
            assert s._doc["parameter_memory_bytes"] + in_flight * act > budget
    assert auto.memory_per_device == max(s.peak_memory_bytes for s in auto.stages)
    again = alpa_torch.Plan.from_json(auto.to_json())
    assert [s.remat for s in again.stages] == [s.remat for s in auto.stages]
    unbounded = alpa_torch.plan(graph, remat="auto", **dict(kwargs, memory_budget=float("inf")))
    assert not any(s.remat for s in unbounded.stages)  # remat costs time: only when needed


def test_remat_all_prices_every_stage(gpt_4_hosts):
    graph, cluster = gpt_4_hosts
    kwargs = dict(cluster=cluster, method="pipeshard", num_micro_batches=16,
                  layer_boundaries=["transformer.h.4"], stage_meshes=[(1, 2), (1, 2)])
    kwargs["cluster"] = Cluster.preset("a100-40gb", 2, 2)
    kept = alpa_torch.plan(graph, remat="none", **kwargs)
    every = alpa_torch.plan(graph, remat="all", **kwargs)
    assert [s.remat for s in every.stages] == [True, True]
    for a, b in zip(kept.stages, every.stages):
        assert b.predicted_time == pytest.approx(a.predicted_time + b.recompute_time, rel=1e-12)
        assert 0 < b.recompute_time < a.predicted_time  # the forward: about a third


def test_bad_remat_arguments(gpt_4_hosts):
    graph, cluster = gpt_4_hosts
    with pytest.raises(ValueError, match="remat must be 'auto'"):
        alpa_torch.plan(graph, cluster=cluster, method="pipeshard", remat="sometimes")
    with pytest.raises(ValueError, match="use method='pipeshard'"):
        alpa_torch.plan(graph, cluster=cluster, remat="all")
