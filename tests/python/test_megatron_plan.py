"""The planner's layout for a wide Llama is Megatron's, and explain() puts
the pinned Megatron plan's predicted time beside the chosen one (issue 12,
defect 8). Planned on the meta device: shapes only, nothing allocated."""
import pytest
import torch

import alpa_torch
from alpa_torch.planning.megatron import megatron_overrides

transformers = pytest.importorskip("transformers")

COLUMN = ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj")
ROW = ("o_proj", "down_proj")


@pytest.fixture(scope="module")
def wide_llama():
    """Llama at 1024 wide, 8 heads, 128 tokens: weights dominate activations,
    so tensor parallelism beats data parallelism on 4 A100s."""
    cfg = transformers.LlamaConfig(vocab_size=32000, hidden_size=1024, intermediate_size=2816,
                                   num_hidden_layers=2, num_attention_heads=8,
                                   num_key_value_heads=8, use_cache=False)
    with torch.device("meta"):
        model = transformers.LlamaForCausalLM(cfg)
    ids = torch.zeros((1, 128), dtype=torch.long, device="meta")
    return alpa_torch.capture(model, (ids,))


def test_megatron_overrides_finds_column_and_row_linears(wide_llama):
    pins = megatron_overrides(wide_llama, 0)
    for layer in range(2):
        for name in COLUMN:
            sub = "mlp" if name in ("gate_proj", "up_proj") else "self_attn"
            assert pins[f"model.layers.{layer}.{sub}.{name}.weight"] == "S0R"
        assert pins[f"model.layers.{layer}.self_attn.o_proj.weight"] == "RS0"
        assert pins[f"model.layers.{layer}.mlp.down_proj.weight"] == "RS0"
    assert len(pins) == 14  # the lm_head and embedding are no pair
    assert set(megatron_overrides(wide_llama, (0, 1)).values()) == {"S01R", "RS01"}


def test_mlp_pair_without_attention():
    model = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.GELU(), torch.nn.Linear(64, 16))
    graph = alpa_torch.capture(model, (torch.randn(4, 16),))
    assert megatron_overrides(graph, 1) == {"0.weight": "S1R", "0.bias": "S1", "2.weight": "RS1",
                                            "2.bias": "R"}


def test_wide_llama_plan_is_megatron(wide_llama):
    plan = alpa_torch.plan(wide_llama, mesh_shape=(1, 4), cluster="a100-40gb")
    specs = plan.param_specs
    for fqn, spec in specs.items():
        if fqn.endswith(tuple(f"{n}.weight" for n in COLUMN)):
            assert spec == "S0R", (fqn, spec)
        elif fqn.endswith(tuple(f"{n}.weight" for n in ROW)):
            assert spec == "RS0", (fqn, spec)
    nodes = plan.stages[0].node_specs
    attention = [v["strategy"] for k, v in nodes.items() if "scaled_dot_product" in k]
    assert len(attention) == 2
    assert all(s.startswith("RS0RR = RS0RR x RS0RR x RS0RR") for s in attention), attention
    module = {n.name: n.module for n in wide_llama.nodes}
    for layer in range(2):
        reduces = sorted(module[c.node].rsplit(".", 1)[-1] for c in plan.collectives()
                         if c.kind == "all_reduce" and c.phase == "forward"
                         and module[c.node].startswith(f"model.layers.{layer}.")
                         and c.what == "partial sums of output")
        assert reduces == ["down_proj", "o_proj"], (layer, reduces)
    text = plan.explain()
    assert "Megatron baseline (tensor-parallel on mesh axes [0]" in text
    assert "vs the solver's" in text


def test_two_dimensional_mesh_compares_every_tensor_parallel_axis(wide_llama):
    plan = alpa_torch.plan(wide_llama, mesh_shape=(2, 2), cluster="a100-40gb")
    text = plan.explain()
    for axes in ("[1]", "[0]", "[0, 1]"):
        assert f"Megatron baseline (tensor-parallel on mesh axes {axes}" in text, text[:2000]
    skipped = alpa_torch.plan(wide_llama, mesh_shape=(2, 2), cluster="a100-40gb",
                              compare_megatron=False)
    assert not any("Megatron" in n for n in skipped.notes)
