"""The C++ API for LibTorch applications (docs/cpp_api.md), through the two
examples in examples/cpp, built against the INSTALLED AlpaTorch package:

- plan_model plans a graph saved by ``capture(...).save()`` into the same
  plan, JSON-equal, as ``alpa_torch.plan`` (intra-op on GPT-2, pipeshard);
- the TorchScript importer turns a scripted model into a graph with the
  model's parameter FQNs, shapes and submodules, and names the op it does
  not support;
- train_pipeline trains a 2-stage pipeline on 2 processes with the C++
  executor, with the losses of single-process training, falling.

The examples are (re)built incrementally by the ``examples`` fixture, as
scripts/test.sh does: install into build/install, configure
examples/cpp against that prefix, build."""
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

import alpa_torch
from conftest import gpt2_model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, "build")
INSTALL = os.path.join(BUILD, "install")
EXAMPLES = os.path.join(BUILD, "examples")

# torch.jit.script/save are deprecated upstream; the importer serves them.
pytestmark = [pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")]


def _run(cmd, timeout=600, **kw):
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, **kw)


def _checked(cmd, timeout=600):
    r = _run(cmd, timeout)
    assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def examples():
    """Paths of the example binaries, built against build/install."""
    if not os.path.exists(os.path.join(BUILD, "CMakeCache.txt")):
        pytest.fail("no CMake build in build/: run scripts/setup.sh first")
    # One build at a time on a shared machine: the build lock when present.
    lock = ["flock", "/tmp/alpa_build.lock"] if shutil.which("flock") else []
    _checked(lock + ["cmake", "--install", BUILD, "--prefix", INSTALL])
    generator = ["-G", "Ninja"] if shutil.which("ninja") and not os.path.exists(
        os.path.join(EXAMPLES, "Makefile")) else []
    prefix = f"{INSTALL};{torch.utils.cmake_prefix_path}"
    _checked(["cmake", "-S", os.path.join(ROOT, "examples", "cpp"), "-B", EXAMPLES, *generator,
              "-DCMAKE_BUILD_TYPE=Release", f"-DCMAKE_PREFIX_PATH={prefix}"])
    _checked(lock + ["cmake", "--build", EXAMPLES])
    return {name: os.path.join(EXAMPLES, name) for name in ("plan_model", "train_pipeline")}


def test_examples_use_the_installed_package(examples):
    cache = open(os.path.join(EXAMPLES, "CMakeCache.txt")).read()
    line = next(l for l in cache.splitlines() if l.startswith("AlpaTorch_DIR"))
    assert line.endswith(os.path.join(INSTALL, "lib", "cmake", "AlpaTorch")), line
    assert os.path.exists(os.path.join(INSTALL, "include", "alpa_torch", "alpa.h"))


# ---- the C++ planner's plan equals the Python planner's ------------------------

def _cpp_plan(examples, tmp_path, args):
    out = tmp_path / "plan.json"
    _checked([examples["plan_model"], *args, "--json", str(out), "--quiet"], timeout=300)
    return json.loads(out.read_text())


def test_gpt2_intra_op_plan_identical_to_python(examples, tmp_path):
    model, example = gpt2_model(layers=2, hidden=64, heads=4)
    path = tmp_path / "gpt2.json"
    alpa_torch.capture(model, example).save(path)
    py = alpa_torch.plan(alpa_torch.load(path), mesh_shape=(2, 2))
    cpp = _cpp_plan(examples, tmp_path, ["--graph", str(path), "--mesh", "2x2"])
    assert json.loads(py.to_json()) == cpp
    assert len(cpp["stages"]) == 1 and cpp["stages"][0]["param_specs"]


class _Mlp(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(64, 256)
        self.ln = torch.nn.LayerNorm(256)
        self.fc2 = torch.nn.Linear(256, 64)

    def forward(self, x):
        return self.fc2(torch.nn.functional.gelu(self.ln(self.fc1(x))))


def test_pipeshard_plan_identical_to_python(examples, tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "mlp.json"
    alpa_torch.capture(_Mlp(), (torch.randn(16, 64),)).save(path)
    py = alpa_torch.plan(alpa_torch.load(path), mesh_shape=(1, 2), method="pipeshard",
                         num_micro_batches=4, optimizer="sgd", memory_budget="1GiB")
    cpp = _cpp_plan(examples, tmp_path, [
        "--graph", str(path), "--mesh", "1x2", "--method", "pipeshard", "--micro-batches", "4",
        "--optimizer-state-factor", "0", "--memory-budget", "1GiB"])
    assert json.loads(py.to_json()) == cpp
    assert cpp["num_micro_batches"] == 4


# ---- the TorchScript importer ----------------------------------------------------

class _Block(torch.nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc = torch.nn.Linear(d, d)
        self.ln = torch.nn.LayerNorm(d)
        self.drop = torch.nn.Dropout(0.1)

    def forward(self, x):
        return self.drop(torch.nn.functional.gelu(self.ln(self.fc(x))))


class _TinyLM(torch.nn.Module):
    """Embedding, a ModuleList, attention-like matmuls, shapes from size()."""

    def __init__(self, vocab=50, d=32):
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, d)
        self.layers = torch.nn.ModuleList([_Block(d), _Block(d)])
        self.head = torch.nn.Linear(d, vocab)

    def forward(self, ids):
        h = self.emb(ids)
        for layer in self.layers:
            h = layer(h)
        b, t = ids.size(0), ids.size(1)
        att = torch.softmax(h @ h.transpose(1, 2) / 4.0, -1)
        h = (att @ h).reshape(b * t, h.size(-1)) * 2.0 + 1
        return self.head(torch.relu(h))


def test_torchscript_import(examples, tmp_path):
    torch.manual_seed(0)
    model = _TinyLM().eval()
    ids = torch.randint(0, 50, (2, 8))
    script, graph_path = tmp_path / "lm.pt", tmp_path / "lm.json"
    torch.jit.save(torch.jit.script(model), str(script))
    r = _checked([examples["plan_model"], "--torchscript", str(script), "--input", "i64[2,8]",
                  "--mesh", "1x2", "--save-graph", str(graph_path)], timeout=300)
    assert "stage 0" in r.stdout and "head.weight" in r.stdout

    g = alpa_torch.load(graph_path).graph
    params = {n.target: list(n.outputs[0][0]) for n in g.nodes if n.kind == "parameter"}
    assert params == {k: list(v.shape) for k, v in model.named_parameters()}
    inputs = [(n.target, list(n.outputs[0][0]), n.outputs[0][1])
              for n in g.nodes if n.kind == "input"]
    assert inputs == [("ids", [2, 8], "int64")]
    ops = [n for n in g.nodes if n.kind == "op"]
    base = [n.op.split(".")[1] for n in ops]
    assert base.count("linear") == 3 and base.count("layer_norm") == 2
    for op in ("embedding", "gelu", "dropout", "transpose", "matmul", "softmax", "reshape",
               "mul", "add", "relu"):
        assert op in base, (op, base)
    module_of = {n.name: n.module for n in ops}
    assert module_of["linear"] == "layers.0.fc" and module_of["layer_norm_1"] == "layers.1.ln"
    assert module_of["gelu"] == "layers.0" and module_of["embedding"] == "emb"
    ((value, role, _),) = g.outputs
    out_node = g.nodes[value[0]]
    assert role == "user_output"
    assert list(out_node.outputs[0][0]) == list(model(ids).shape) == [16, 50]
    assert out_node.module == "head"


class _Attention(torch.nn.Module):
    """Causal self-attention: a mask made from constants, split, views."""

    def __init__(self, d=32, heads=4):
        super().__init__()
        self.heads = heads
        self.qkv = torch.nn.Linear(d, 3 * d)
        self.proj = torch.nn.Linear(d, d)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        q = q.view(b, t, self.heads, c // self.heads).transpose(1, 2)
        k = k.view(b, t, self.heads, c // self.heads).transpose(1, 2)
        v = v.view(b, t, self.heads, c // self.heads).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / (c // self.heads) ** 0.5)
        mask = torch.ones(t, t).tril()
        att = att.masked_fill(mask == 0, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).contiguous().view(b, t, c)
        return self.proj(y)


def test_torchscript_traced_and_scripted_agree(examples, tmp_path):
    """A traced module computes shapes through tensors (NumToTensor) and a
    scripted one through ints; both import to the same ops, and the causal
    mask (made from no graph value) is folded into one constant."""
    torch.manual_seed(0)
    model, x = _Attention(), torch.randn(2, 8, 32)
    graphs = {}
    modules = {"script": torch.jit.script(model), "trace": torch.jit.trace(model, (x,))}
    for kind, module in modules.items():
        script, graph_path = tmp_path / f"{kind}.pt", tmp_path / f"{kind}.json"
        torch.jit.save(module, str(script))
        _checked([examples["plan_model"], "--torchscript", str(script), "--input", "f32[2,8,32]",
                  "--save-graph", str(graph_path), "--quiet"], timeout=300)
        graphs[kind] = alpa_torch.load(graph_path).graph
    ops = {k: [(n.op.split(".")[1], list(n.outputs[0][0]), n.module) for n in g.nodes
               if n.kind == "op"] for k, g in graphs.items()}
    assert ops["script"] == ops["trace"]
    assert [o[0] for o in ops["script"]][:2] == ["linear", "split"]
    script = graphs["script"]
    fill = next(n for n in script.nodes if n.op.startswith("aten.masked_fill"))
    mask = script.nodes[fill.inputs[1][0]]
    assert mask.kind == "constant" and list(mask.outputs[0][0]) == [8, 8]


class _Act(torch.nn.Module):
    def forward(self, x):
        return torch.lgamma(x)


class _Unsupported(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(8, 8)
        self.act = _Act()

    def forward(self, x):
        return self.act(self.fc(x)).sum()


def test_torchscript_unsupported_op_is_named(examples, tmp_path):
    script = tmp_path / "bad.pt"
    torch.jit.save(torch.jit.script(_Unsupported()), str(script))
    r = _run([examples["plan_model"], "--torchscript", str(script), "--input", "f32[4,8]"],
             timeout=300)
    assert r.returncode != 0
    assert "'aten::lgamma'" in r.stderr and "in module 'act'" in r.stderr
    assert "not supported" in r.stderr and "alpa_torch.capture" in r.stderr


def test_plan_model_errors(examples, tmp_path):
    r = _run([examples["plan_model"], "--graph", str(tmp_path / "missing.json")])
    assert r.returncode == 1 and "no graph file" in r.stderr
    r = _run([examples["plan_model"], "--mesh", "two"])
    assert r.returncode == 2 and "cannot read mesh 'two'" in r.stderr
    r = _run([examples["plan_model"], "--torchscript", str(tmp_path / "m.pt")])
    assert r.returncode == 2 and "--input" in r.stderr


def test_plan_model_huge_input_plans_on_shapes_only(examples, tmp_path):
    """Issue 11 #9: an example input too large to allocate (64 GiB) no longer
    aborts: the importer runs on meta tensors (relu has no meta kernel in
    LibTorch: the planner's shape rules stand in), the graph keeps the
    shape, and the planner answers."""
    script, graph_path = tmp_path / "mlp.pt", tmp_path / "mlp.json"
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    torch.jit.save(torch.jit.script(model), str(script))
    huge = [examples["plan_model"], "--torchscript", str(script), "--input", "f32[2147483648,8]"]
    r = _checked(huge + ["--memory-budget", "inf", "--save-graph", str(graph_path), "--quiet"])
    g = alpa_torch.load(graph_path).graph
    assert [list(n.outputs[0][0]) for n in g.nodes if n.kind == "input"] == [[2147483648, 8]]
    assert [list(n.outputs[0][0]) for n in g.nodes if n.op.startswith("aten.relu")] == [
        [2147483648, 16]]
    r = _run(huge)  # the default budget (4 GiB) cannot hold it: a clear error
    assert r.returncode == 1 and "Infeasible" in r.stderr and "least memory" in r.stderr


def test_plan_model_bad_flags_are_usage_errors(examples, tmp_path):
    script = tmp_path / "mlp.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(8, 4)), str(script))
    base = [examples["plan_model"], "--torchscript", str(script)]
    for flags, text in [(["--input", "f32[-1,8]"], "dims must be non-negative"),
                        (["--input", "f32[9223372036854775807,8]"], "2^62 bytes"),
                        (["--input", ""], "empty"),
                        (["--input", "f32[2,8]", "--mesh", "0x2"], "cannot read mesh"),
                        (["--input", "f32[2,8]", "--mesh", "1x2x3"], "cannot read mesh"),
                        (["--input", "f32[2,8]", "--mesh", "99999999999x99999999999"], "mesh"),
                        (["--input", "f32[2,8]", "--threads", "0"], "--threads"),
                        (["--input", "f32[2,8]", "--time-limit", "nan"], "--time-limit"),
                        (["--input", "f32[2,8]", "--time-limit", "5x"], "--time-limit"),
                        (["--input", "f32[2,8]", "--memory-budget", "nan"], "memory budget"),
                        (["--input", "f32[2,8]", "--micro-batches", "0"], "--micro-batches")]:
        r = _run(base + flags)
        assert r.returncode == 2 and text in r.stderr, (flags, r.returncode, r.stderr)
    r = _run(base + ["--input", "f32[2,8]", "--json", str(tmp_path / "no" / "dir" / "p.json")])
    assert r.returncode == 1 and "cannot write the plan" in r.stderr


# ---- pipeline-parallel training from C++ ------------------------------------------

def test_train_pipeline(examples):
    r = _run([examples["train_pipeline"]], timeout=400)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "the pipeline matches single-process training" in r.stdout
    assert "(falls)" in r.stdout and "train_pipeline: OK" in r.stdout
    losses = [float(line.split()[4]) for line in r.stdout.splitlines()
              if line.startswith("step")]
    assert len(losses) == 20 and sum(losses[-5:]) < 0.5 * sum(losses[:5])
