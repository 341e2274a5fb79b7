"""The C++ local programs (csrc/rewrite/, ``_C.build_local_program``) against the
FX programs the Python rewrite emits today: for real models and meshes,
the same collectives, resharding steps, gradient reductions and buckets.
(Issue 13 moves the rewrite's decisions into C++; this pins the two
together until the Python emitter reads the C++ program.) Plans use Alpa's
cost mode, which splits every matmul, so that tiny models communicate."""
import collections
import re

import pytest
import torch

import alpa_torch
from alpa_torch import _C, local_ops
from alpa_torch.rewrite import build_local_program

import zoo_models


class _Mesh:
    """A rank's view of the mesh without process groups (the rewrite only
    reads the shape, the coordinate and group names)."""

    def __init__(self, shape, coord=(0, 0)):
        self.shape = tuple(shape)
        self.coord = coord

    def group(self, axes):
        return "g" + "".join(str(a) for a in sorted(a for a in axes if self.shape[a] > 1))


def _fx_counts(module: torch.fx.GraphModule):
    functions = {local_ops.gather_dim: "gather", local_ops.shard_dim: "shard"}
    counts = collections.Counter()
    buckets = []
    for node in module.graph.nodes:
        if node.op != "call_function":
            continue
        op = str(node.target).removesuffix(".default")  # packet or overload
        if op == "alpa.grad_all_reduce_bucket":
            buckets.append(len(node.args[0]))
        elif op in ("alpa.all_reduce", "alpa.grad_all_reduce", "alpa.all_to_all"):
            counts[op.removeprefix("alpa.")] += 1
        elif node.target in functions:
            counts[functions[node.target]] += 1
    return counts, buckets


def _cpp_counts(text: str):
    counts = collections.Counter()
    buckets = []
    for step in re.findall(r"\b(all_reduce|reduce_scatter|slice|all_to_all|all_gather)@", text):
        counts[step] += 1
    for line in text.splitlines():
        if line.startswith("  in ") and " grad_reduce " in line:
            counts["grad_reduce"] += 1
        if line.startswith("bucket "):
            buckets.append(len(line.split()) - 3)
    # outputs of partial-sum nodes: each is all-reduced
    node_outputs = re.findall(r"^node %\S+ = \S+ (partial_sum|expert_rows|experts reduce)[^\n]*\n((?:  [^\n]*\n)*)",
                              text, flags=re.M)
    counts["partial_outputs"] = sum(body.count("  out ") for _, body in node_outputs)
    return counts, buckets


CASES = [("llama", (1, 2)), ("llama", (2, 2)), ("opt", (2, 2)), ("bert_mlm", (1, 4)),
         ("t5", (2, 2)), ("transformer_encoder", (1, 2)), ("cnn_batchnorm", (2, 2)),
         ("mixtral", (1, 4))]


@pytest.mark.parametrize("name,mesh", CASES, ids=[f"{n}-{m[0]}x{m[1]}" for n, m in CASES])
def test_cpp_program_matches_the_python_rewrite(name, mesh):
    model, batch = getattr(zoo_models, name)()
    args = batch(0)
    captured = alpa_torch.capture(model, args)
    plan = alpa_torch.plan(captured, mesh_shape=mesh, cost_mode="alpa")
    program = _C.build_local_program(captured.graph, plan.to_json(), 0)
    text = str(program)
    assert _C.LocalProgram.parse(text) == program
    fx = build_local_program(captured.exported, captured, plan.stages[0], _Mesh(plan.stages[0].mesh_shape))
    py, py_buckets = _fx_counts(fx.module)
    cpp, cpp_buckets = _cpp_counts(text)
    # the plan communicates (Alpa's cost mode splits every matmul)
    assert sum(cpp.values()) > 0, text
    assert py_buckets == cpp_buckets, text
    assert py["grad_all_reduce"] == cpp["grad_reduce"], text
    assert py["gather"] + py["all_to_all"] == cpp["all_gather"] + cpp["all_to_all"], text
    assert py["shard"] - (py["gather"] - cpp["all_gather"]) == cpp["slice"] + cpp["reduce_scatter"], text
    assert py["all_reduce"] == cpp["all_reduce"] + cpp["reduce_scatter"] + cpp["partial_outputs"], text


ZOO = ["llama", "mistral", "qwen2", "qwen3", "gpt_neox", "phi", "phi3", "gemma", "gemma2",
       "mixtral", "opt", "t5", "bert_mlm", "vit", "transformer_encoder", "cnn_batchnorm"]
EMIT_CASES = [(n, (2, 2)) for n in ZOO] + [(n, (1, 4)) for n in ("llama", "bert_mlm", "mixtral")]


@pytest.mark.parametrize("name,mesh", EMIT_CASES, ids=[f"{n}-{m[0]}x{m[1]}" for n, m in EMIT_CASES])
def test_emitter_writes_what_the_python_rewrite_wrote(name, mesh):
    from alpa_torch.emitter import emit_stage
    model, batch = getattr(zoo_models, name)()
    captured = alpa_torch.capture(model, batch(0))
    plan = alpa_torch.plan(captured, mesh_shape=mesh, cost_mode="alpa")
    rank = _Mesh(plan.stages[0].mesh_shape, coord=(1, 0))
    old = build_local_program(captured.exported, captured, plan.stages[0], rank)
    new = emit_stage(captured.exported, captured, plan, 0, rank)
    # the same code, but for the names of the emitting modules' local functions
    assert new.module.code.replace("alpa_torch_emitter_", "alpa_torch_rewrite_") == old.module.code
    assert new.placeholder_specs == old.placeholder_specs
    assert new.output_specs == old.output_specs and new.output_shapes == old.output_shapes
    assert new.buffer_views == old.buffer_views
    assert new.value_map == old.value_map


PIPE_CASES = [("llama", [(1, 2), (1, 2)]), ("cnn_batchnorm", [(1, 2), (1, 2)]),
              ("bert_mlm", [(1, 1), (2, 1), (1, 1)])]


@pytest.mark.parametrize("name,meshes", PIPE_CASES, ids=[n for n, _ in PIPE_CASES])
def test_emitter_writes_pipeline_stages_as_the_python_rewrite_did(name, meshes):
    from alpa_torch.emitter import emit_stage
    from alpa_torch.pipeline import _StageRewriter
    model, batch = getattr(zoo_models, name)()
    captured = alpa_torch.capture(model, batch(0))
    plan = alpa_torch.plan(captured, mesh_shape=(1, sum(a * b for a, b in meshes)), method="pipeshard",
                           cost_mode="alpa", num_layers=len(meshes), stage_meshes=meshes,
                           num_micro_batches=2)
    assert len(plan.stages) == len(meshes)
    for k, stage in enumerate(plan.stages):
        rank = _Mesh(stage.mesh_shape)
        old = _StageRewriter(captured.exported, captured, stage, rank).build()
        new = emit_stage(captured.exported, captured, plan, k, rank)
        assert new.module.code.replace("alpa_torch_emitter_", "alpa_torch_rewrite_") == old.module.code
        assert new.arg_plan == old.arg_plan
        assert new.output_specs == old.output_specs
        assert new.buffer_views == old.buffer_views
