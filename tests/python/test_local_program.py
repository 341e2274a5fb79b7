"""The C++ local programs (csrc/rewrite/, ``_C.build_local_program``) and
the FX programs emitted from them (alpa_torch/emit/program.py): for real
models and meshes, the FX graph runs exactly the collectives, resharding
steps, gradient reductions and buckets the program lists. Plans use Alpa's
cost mode, which splits every matmul, so that tiny models communicate."""
import collections
import re

import pytest
import torch

import alpa_torch
from alpa_torch import _C
from alpa_torch.emit import local_ops
from alpa_torch.emit.program import emit_stage

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


ZOO = ["llama", "mistral", "qwen2", "qwen3", "gpt_neox", "phi", "phi3", "gemma", "gemma2",
       "mixtral", "opt", "t5", "bert_mlm", "vit", "transformer_encoder", "cnn_batchnorm"]
CASES = ([(n, (2, 2)) for n in ZOO] + [(n, (1, 4)) for n in ("llama", "bert_mlm", "mixtral")]
         + [("transformer_encoder", (1, 2)), ("llama", (1, 2))])


def _check_stage(captured, plan, stage: int):
    program = _C.build_local_program(captured.graph, plan.to_json(), stage)
    text = str(program)
    assert _C.LocalProgram.parse(text) == program  # the text reads back
    fx = emit_stage(captured.exported, captured, plan, stage, _Mesh(plan.stages[stage].mesh_shape))
    py, py_buckets = _fx_counts(fx.module)
    cpp, cpp_buckets = _cpp_counts(text)
    assert py_buckets == cpp_buckets, text
    assert py["grad_all_reduce"] == cpp["grad_reduce"], text
    assert py["gather"] + py["all_to_all"] == cpp["all_gather"] + cpp["all_to_all"], text
    assert py["shard"] - (py["gather"] - cpp["all_gather"]) == cpp["slice"] + cpp["reduce_scatter"], text
    assert py["all_reduce"] == cpp["all_reduce"] + cpp["reduce_scatter"] + cpp["partial_outputs"], text
    return cpp


@pytest.mark.parametrize("name,mesh", CASES, ids=[f"{n}-{m[0]}x{m[1]}" for n, m in CASES])
def test_fx_runs_what_the_program_lists(name, mesh):
    model, batch = getattr(zoo_models, name)()
    captured = alpa_torch.capture(model, batch(0))
    plan = alpa_torch.plan(captured, mesh_shape=mesh, cost_mode="alpa")
    cpp = _check_stage(captured, plan, 0)
    assert sum(cpp.values()) > 0  # the plan communicates (Alpa's cost mode splits every matmul)


PIPE_CASES = [("llama", [(1, 2), (1, 2)]), ("cnn_batchnorm", [(1, 2), (1, 2)]),
              ("bert_mlm", [(1, 1), (2, 1), (1, 1)])]


@pytest.mark.parametrize("name,meshes", PIPE_CASES, ids=[n for n, _ in PIPE_CASES])
def test_pipeline_stages_run_what_their_programs_list(name, meshes):
    model, batch = getattr(zoo_models, name)()
    captured = alpa_torch.capture(model, batch(0))
    plan = alpa_torch.plan(captured, mesh_shape=(1, sum(a * b for a, b in meshes)), method="pipeshard",
                           cost_mode="alpa", num_layers=len(meshes), stage_meshes=meshes,
                           num_micro_batches=2)
    assert len(plan.stages) == len(meshes)
    for k in range(len(meshes)):
        program = _C.build_local_program(captured.graph, plan.to_json(), k)
        assert program.sends or k == len(meshes) - 1
        assert program.received or k == 0
        _check_stage(captured, plan, k)


def test_buffers_are_held_whole_so_in_place_updates_land():
    # wide_resnet on (2, 2) once held a BatchNorm running_var as S0 and read
    # it as S01 through a slice (a copy): the in-place update was lost.
    from examples.models import wide_resnet, wide_resnet_example_inputs
    captured = alpa_torch.capture(wide_resnet(), wide_resnet_example_inputs())
    plan = alpa_torch.plan(captured, mesh_shape=(2, 2), cost_mode="alpa")
    program = _C.build_local_program(captured.graph, plan.to_json(), 0)
    buffers = [line.split() for line in str(program).splitlines() if line.startswith("buffer ")]
    assert buffers, str(program)
    for fields in buffers:  # buffer %name "fqn" dtype[shape] SPEC local [...]
        assert fields[4] in ("R", "RR", "RRR", "RRRR", "-"), fields
    viewed = {v.buffer for v in program.buffer_views}
    assert "b_blocks_0_bn1_running_var" in viewed and "b_blocks_0_bn1_running_mean" in viewed
