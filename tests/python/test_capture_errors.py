"""Bad input to capture/load: every case raises a clear, typed error."""
import json

import pytest
import torch

import alpa_torch
from alpa_torch import CaptureError

from conftest import mlp_model


class DataDependent(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)

    def forward(self, x):
        y = self.fc(x)
        if y.sum() > 0:  # branch on tensor data
            return y * 2
        return y


def test_rejects_non_module():
    with pytest.raises(TypeError, match="expects a torch.nn.Module, got function"):
        alpa_torch.capture(lambda x: x, (torch.ones(2),))


def test_rejects_bad_example_args():
    model, _ = mlp_model()
    with pytest.raises(TypeError, match="example_args must be a tuple"):
        alpa_torch.capture(model, {"x": torch.ones(2, 64)})
    with pytest.raises(TypeError, match="example_kwargs must be a dict"):
        alpa_torch.capture(model, (torch.ones(2, 64),), [1])


def test_single_tensor_args_are_accepted():
    model, (x,) = mlp_model()
    assert alpa_torch.capture(model, x).param_fqns()


def test_data_dependent_control_flow_names_the_cause():
    with pytest.raises(CaptureError) as info:
        alpa_torch.capture(DataDependent(), (torch.randn(2, 4),))
    msg = str(info.value)
    assert "data-dependent control flow" in msg
    assert "test_capture_errors.py" in msg  # the line of the model code
    assert "torch.where" in msg  # the fix


def test_cache_output_names_use_cache():
    # capture passes use_cache=False itself unless the caller asks for a cache
    from transformers import GPT2Config, GPT2LMHeadModel
    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=64,
                                       n_positions=16, use_cache=True,
                                       bos_token_id=0, eos_token_id=0))
    with pytest.raises(CaptureError, match="use_cache=False"):
        alpa_torch.capture(model, (torch.randint(0, 64, (1, 8)),), {"use_cache": True})


def test_wrong_input_shape_is_a_capture_error():
    model, _ = mlp_model()
    with pytest.raises(CaptureError, match="cannot capture MLP"):
        alpa_torch.capture(model, (torch.ones(2, 3),))


@pytest.fixture
def graph_doc(tmp_path):
    model, args = mlp_model()
    path = tmp_path / "g.json"
    alpa_torch.capture(model, args).save(path)
    return json.loads(path.read_text()), tmp_path


def _load_doc(doc, tmp_path):
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(doc))
    return alpa_torch.load(path)


def test_malformed_json(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"format": "alpa_torch.graph", "version": 1, nodes: []}')
    with pytest.raises(ValueError, match=r"malformed JSON at line 1, column \d+"):
        alpa_torch.load(path)


def test_truncated_json(graph_doc):
    doc, tmp = graph_doc
    text = json.dumps(doc)
    path = tmp / "cut.json"
    path.write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match="truncated"):
        alpa_torch.load(path)


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "empty.json").write_text("")
    with pytest.raises(ValueError, match="is empty"):
        alpa_torch.load(tmp_path / "empty.json")
    with pytest.raises(FileNotFoundError, match="no graph file"):
        alpa_torch.load(tmp_path / "absent.json")


def test_cycle_is_rejected(graph_doc):
    doc, tmp = graph_doc
    nodes = doc["nodes"]
    ops = [n for n in nodes if n["kind"] == "op"]
    first, last = ops[0], ops[-1]
    first["inputs"][0] = [last["id"], 0]  # first op now reads the last one
    with pytest.raises(ValueError, match="cycle"):
        _load_doc(doc, tmp)


def test_shape_mismatch_is_rejected(graph_doc):
    doc, tmp = graph_doc
    linear = next(n for n in doc["nodes"] if n.get("op") == "aten.linear.default")
    linear["outputs"][0]["shape"][-1] += 1
    with pytest.raises(ValueError, match="shape mismatch at node"):
        _load_doc(doc, tmp)


def test_other_version_and_format(graph_doc):
    doc, tmp = graph_doc
    doc["version"] = 99
    with pytest.raises(ValueError, match="version 99.*upgrade alpa_torch"):
        _load_doc(doc, tmp)
    doc["version"] = 1
    doc["format"] = "something.else"
    with pytest.raises(ValueError, match="not an alpa_torch graph"):
        _load_doc(doc, tmp)


def test_wrong_field_type(graph_doc):
    doc, tmp = graph_doc
    doc["nodes"][0]["outputs"] = "f32[2]"
    with pytest.raises(ValueError, match=r"nodes\[0\].*outputs.*must be an array"):
        _load_doc(doc, tmp)


# ---- issue 11 #1, #7: nodes that do not fit their kind or op -------------------

def _edited(graph_doc, edit):
    doc, tmp = graph_doc
    edit(doc["nodes"])
    path = tmp / "edited.json"
    path.write_text(json.dumps(doc))
    return path


def _first(nodes, op):
    return next(n for n in nodes if n.get("op") == op)


def test_parameter_with_two_outputs_is_rejected_at_load(graph_doc):
    # Loaded fine, then planning segfaulted (exit 139), also from the CLI.
    def edit(nodes):
        nodes[0]["outputs"].append(nodes[0]["outputs"][0])
    path = _edited(graph_doc, edit)
    with pytest.raises(ValueError, match=r"parameter node 'p_blocks_0_0_weight' has 2 outputs; "
                                         r"a placeholder .* is exactly one tensor"):
        alpa_torch.load(path)
    import subprocess
    import sys
    run = subprocess.run([sys.executable, "-m", "alpa_torch", "plan", str(path), "--mesh", "1x2"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr
    assert "has 2 outputs; a placeholder" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.parametrize("edit, message", [
    (lambda n: _first(n, "aten.linear.default")["inputs"].append(
        _first(n, "aten.linear.default")["inputs"][0]),
     r"node 'linear' \(aten.linear.default\) has 4 tensor inputs, but linear \(input, weight, "
     r"bias\?\) -> \(out\) has 2 to 3"),
    (lambda n: _first(n, "aten.linear.default")["outputs"].append(
        _first(n, "aten.linear.default")["outputs"][0]),
     r"node 'linear' \(aten.linear.default\) has 2 tensor outputs, but linear .* has 1"),
    (lambda n: _first(n, "aten.gelu.default")["inputs"].append(
        _first(n, "aten.gelu.default")["inputs"][0]),
     r"has 2 tensor inputs, but gelu \(self\) -> \(out\) has 1"),
])
def test_op_that_does_not_fit_its_schema_is_rejected_at_load(graph_doc, edit, message):
    # These loaded, then planning raised "internal error ... a bug in alpa_torch".
    path = _edited(graph_doc, edit)
    with pytest.raises(ValueError, match=message):
        alpa_torch.load(path)
    from alpa_torch import cli
    import io
    err = io.StringIO()
    assert cli.main(["plan", str(path), "--mesh", "1x2"], io.StringIO(), err) == 2
    assert "internal error" not in err.getvalue() and "re-capture the model" in err.getvalue()


def _one_op_graph(op, inputs, outputs, attrs=None):
    """A graph of one op on input placeholders (JSON, as a file would hold)."""
    nodes = [{"id": i, "name": f"x{i}", "kind": "input", "target": f"x{i}", "inputs": [],
              "attrs": {}, "outputs": [{"shape": s, "dtype": "float32"}], "flops": 0.0,
              "module": "", "requires_grad": True} for i, s in enumerate(inputs)]
    attrs = dict(attrs or {}, **{f"arg{i}": {"input": i} for i in range(len(inputs))})
    nodes.append({"id": len(inputs), "name": "op", "kind": "op", "op": op,
                  "inputs": [[i, 0] for i in range(len(inputs))], "attrs": attrs,
                  "outputs": [{"shape": s, "dtype": "float32"} for s in outputs],
                  "flops": 0.0, "module": "", "requires_grad": False})
    return {"format": "alpa_torch.graph", "version": 1, "name": "g", "nodes": nodes,
            "outputs": [{"value": [len(inputs), 0], "role": "user_output"}]}


@pytest.mark.parametrize("op, inputs, outputs, attrs", [
    # 0-dim operands ATen accepts: these segfaulted or threw std::bad_alloc.
    ("aten.topk.default", [[]], [[], []], {"k": 1}),
    ("aten.mean.dim", [[]], [[]], {"dim": [0]}),
    ("aten.amax.default", [[]], [[]], {"dim": [0]}),
    ("aten.transpose.int", [[]], [[]], {"dim0": 0, "dim1": -1}),
    ("aten.roll.default", [[]], [[]], {"shifts": [1], "dim": [0]}),
    ("aten.gather.default", [[], []], [[]], {"dim": 0}),
    ("aten.index_select.default", [[], [1]], [[]], {"dim": 0}),
    # Two-input forms of ops the rules read as one-input: "internal error".
    ("aten.max.other", [[4, 8], [4, 8]], [[4, 8]], {}),
    ("aten.view_as.default", [[4, 8], [8, 4]], [[8, 4]], {}),
])
def test_unusual_but_valid_ops_plan_without_crashing(tmp_path, op, inputs, outputs, attrs):
    # Found by generating one-op graphs over the op schema table.
    path = tmp_path / "g.json"
    path.write_text(json.dumps(_one_op_graph(op, inputs, outputs, attrs)))
    graph = alpa_torch.load(path)
    for mesh in [(1, 2), (2, 2)]:
        alpa_torch.plan(graph, mesh_shape=mesh)


def test_zero_dim_input_of_a_dim_op_is_rejected_at_load(tmp_path):
    # ATen rejects split/chunk/select/cat of a 0-dim tensor; planning one segfaulted.
    path = tmp_path / "g.json"
    path.write_text(json.dumps(_one_op_graph("aten.chunk.default", [[]], [[], []], {"chunks": 2})))
    with pytest.raises(ValueError, match=r"node 'op' \(aten.chunk.default\): input #0 \('self'\) "
                                         r"has rank 0, but chunk \(self\[>=1\]\) -> \(outs\+\) "
                                         r"needs rank ≥ 1 there"):
        alpa_torch.load(path)
