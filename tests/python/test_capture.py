"""Capture of the reference models: FQNs, FLOPs, outputs and round trips."""
import json
import re

import torch
from torch.utils.flop_counter import FlopCounterMode

import alpa_torch
from alpa_torch import _C

from conftest import gpt2_model

COUNTED = ["matmul", "convolution", "attention"]


def test_parameter_fqns_match_named_parameters(model_case):
    _, model, args = model_case
    captured = alpa_torch.capture(model, args)
    assert captured.param_fqns() == [n for n, _ in model.named_parameters()]
    shapes = {n.target: list(n.outputs[0][0]) for n in captured.nodes if n.kind == "parameter"}
    for name, p in model.named_parameters():
        assert shapes[name] == list(p.shape), name


def test_matmul_and_conv_flops_equal_flop_counter(model_case):
    name, model, args = model_case
    captured = alpa_torch.capture(model, args)
    # The math attention kernel decomposes into bmm, which FlopCounterMode
    # counts; the fused CPU flash kernel has no FLOP formula there.
    from torch.nn.attention import SDPBackend, sdpa_kernel
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(*args)
    expected = counter.get_total_flops()
    assert expected > 0
    assert captured.total_flops(COUNTED) == expected, name
    # Every node carries a FLOP count; matmul-family nodes are never zero.
    for n in captured.nodes:
        if n.category == "matmul":
            assert n.flops > 0, n


def test_json_round_trip_is_exact(model_case, tmp_path):
    _, model, args = model_case
    captured = alpa_torch.capture(model, args)
    path = tmp_path / "graph.json"
    captured.save(path)
    loaded = alpa_torch.load(path)
    assert loaded.graph == captured.graph
    assert loaded.to_json() == captured.to_json()
    assert loaded.graph.fingerprint() == captured.graph.fingerprint()
    assert loaded.exported is None


class _Masked(torch.nn.Module):
    """Non-finite scalar and list attributes, as attention masks have."""

    def forward(self, x):
        masked = x.masked_fill(x > 0.5, float("-inf"))
        return torch.nan_to_num(masked, nan=float("nan"), posinf=float("inf"), neginf=-1.0)


def _reject_constant(token):
    raise ValueError(f"{token} is not valid JSON")


def test_non_finite_attributes_are_written_as_valid_json(tmp_path):
    captured = alpa_torch.capture(_Masked(), (torch.randn(4, 8),))
    path = tmp_path / "graph.json"
    captured.save(path)
    text = path.read_text()
    doc = json.loads(text, parse_constant=_reject_constant)  # no bare NaN/Infinity
    attrs = [n["attrs"] for n in doc["nodes"] if n["kind"] == "op"]
    values = [v for a in attrs for v in a.values()]
    assert {"float": "-Infinity"} in values and {"float": "NaN"} in values, attrs
    assert {"float": "Infinity"} in values, attrs
    loaded = alpa_torch.load(path)
    assert loaded.to_json() == captured.to_json()
    assert loaded.graph.fingerprint() == captured.graph.fingerprint()
    # A file written before (bare tokens, as json.dumps(allow_nan=True) wrote)
    # loads into the same graph.
    legacy, count = re.subn(r'\{\s*"float":\s*"(-?Infinity|NaN)"\s*\}', r"\1", text)
    assert count == 3, legacy
    old = tmp_path / "old.json"
    old.write_text(legacy)
    assert alpa_torch.load(old).to_json() == captured.to_json()


def test_text_round_trip_is_exact(model_case):
    _, model, args = model_case
    captured = alpa_torch.capture(model, args)
    assert _C.Graph.from_text(captured.to_text()) == captured.graph


def test_outputs_and_shapes_match_eager(model_case):
    _, model, args = model_case
    captured = alpa_torch.capture(model, args)
    eager = model(*args)
    if not isinstance(eager, torch.Tensor):  # HF ModelOutput
        eager = eager[0]
    (node_id, index), role, _ = captured.graph.outputs[0]
    assert role == "user_output"
    shape, dtype = captured.nodes[node_id].outputs[index]
    assert list(shape) == list(eager.shape)
    assert dtype == str(eager.dtype).replace("torch.", "")


def test_capture_is_deterministic():
    a = alpa_torch.capture(*gpt2_model())
    b = alpa_torch.capture(*gpt2_model())
    assert a.to_json() == b.to_json()


def test_tied_weights_are_one_parameter():
    model, args = gpt2_model()
    assert model.lm_head.weight is model.transformer.wte.weight
    captured = alpa_torch.capture(model, args)
    wte = [n for n in captured.nodes if n.target == "transformer.wte.weight"]
    assert len(wte) == 1 and wte[0].attrs["aliases"] == "lm_head.weight"
    assert "lm_head.weight" not in captured.param_fqns()
    # the lm_head matmul reads the same node as the embedding
    users = [n for n in captured.nodes if n.kind == "op" and [wte[0].id, 0] in
             [list(i) for i in n.inputs]]
    assert {u.op for u in users} >= {"aten.embedding.default", "aten.linear.default"}


def test_kwargs_and_module_paths():
    model, (ids,) = gpt2_model()
    captured = alpa_torch.capture(model, (), {"input_ids": ids})
    modules = {n.module for n in captured.nodes if n.kind == "op"}
    assert "transformer.h.0.attn.c_attn" in modules
    layers = [layer.name for layer in captured.layers()]
    assert "transformer.h.0" in layers and "transformer.h.1" in layers
    per_layer = {layer.name: layer for layer in captured.layers()}
    assert per_layer["transformer.h.0"].num_params == per_layer["transformer.h.1"].num_params
    assert per_layer["transformer.h.0"].flops == per_layer["transformer.h.1"].flops > 0
    assert "transformer.h.1" in captured.summary()


def test_bert_attention_is_one_node():
    from conftest import bert_model
    captured = alpa_torch.capture(*bert_model())
    ops = [n.op for n in captured.nodes if n.kind == "op"]
    assert ops.count("aten.scaled_dot_product_attention.default") == 2
    assert ops.count("aten.linear.default") >= 12
