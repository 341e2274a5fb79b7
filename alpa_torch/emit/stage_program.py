"""The local program of one pipeline stage: the single-stage rewrite
(alpa_torch/emit/rewrite.py) applied to the nodes the stage runs.

The walk differs from a whole graph's in its ends only: each value the
previous stage sends becomes a leading placeholder (``recv_i``), only the
stage's own placeholders and nodes are emitted, and the outputs are the
values sent to the next stage (resharded to the plan's layout for the
transfer), then the model outputs this stage produces.

    stage k of a plan             its program
    %a = ... (stage k-1)          recv_0 (the plan's layout of %a)
    %b = linear(%a, %w)           %b = linear(recv_0, %w_j)
    %c = relu(%b)  -> stage k+1   output (reshard(%c), model outputs here)
"""
from __future__ import annotations

import operator
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.fx

from alpa_torch.emit.rewrite import LocalProgram, Rewriter
from alpa_torch.emit.spec import MeshCoords, Spec

__all__ = ["build_stage_program"]


class _StageRewriter(Rewriter):
    """The local program of one pipeline stage: received values become
    leading placeholders; the outputs are the values sent to the next stage
    (in the plan's layout), then the model outputs this stage produces."""

    def build(self) -> LocalProgram:
        stage = self.stage
        members = set(stage.node_specs)
        fx_of = _fx_values(self.ep.graph)
        arg_plan: List[Tuple[str, Any]] = []
        for i, v in enumerate(stage.inputs):
            ph = self.graph.placeholder(f"recv_{i}")
            node = fx_of[(v["producer"], v["index"])]
            self.env[node] = ph
            self.spec_of[node] = Spec.parse(v["spec"])
            arg_plan.append(("recv", i))
        output_node = None
        for node in self.ep.graph.nodes:
            if node in self.env:
                continue
            if node.op == "placeholder":
                if self.alias_of.get(node.name, node.name) in members:
                    self.placeholder(node)
                    arg_plan.append(("fx", node.name))
            elif node.op == "call_function" and node.target is operator.getitem:
                if node.args[0] in self.env:
                    self.getitem(node)
            elif node.op == "call_function":
                if node.name in members:
                    self.op(node)
            elif node.op == "output":
                output_node = node
        outputs: List[Any] = []
        for v in stage.outputs:
            node = fx_of[(v["producer"], v["index"])]
            want = Spec.parse(v["spec"])
            shape = self.global_shape(v["producer"], v["index"])
            outputs.append(self.reshard(self.env[node], self.spec_of[node], want, shape))
        tensor_outputs = [v for v in output_node.args[0] if isinstance(v, torch.fx.Node)]
        out_specs: List[Optional[str]] = []
        for i in stage.graph_outputs:
            value = tensor_outputs[i]
            outputs.append(self.env[value])
            out_specs.append(self.spec_of[value].to_string())
        self.graph.output(tuple(outputs))
        program = self.finish(out_specs, [])
        program.arg_plan = arg_plan
        program.buffer_views = self.buffer_views
        return program


def _fx_values(graph: torch.fx.Graph) -> Dict[Tuple[str, int], torch.fx.Node]:
    """(producer name, output index) -> the FX node holding that value."""
    out: Dict[Tuple[str, int], torch.fx.Node] = {}
    for node in graph.nodes:
        if node.op == "call_function" and node.target is operator.getitem:
            out[(node.args[0].name, node.args[1])] = node
        elif node.op in ("placeholder", "call_function"):
            out.setdefault((node.name, 0), node)
    return out


def build_stage_program(exported, captured, stage, mesh: MeshCoords) -> LocalProgram:
    """This rank's program for `stage` of a pipeshard plan. Besides the
    LocalProgram fields it has ``arg_plan``: per placeholder, ``("recv", i)``
    (the i-th received value) or ``("fx", name)`` (the exported program's
    placeholder `name`), and ``buffer_views`` (see Rewriter)."""
    return _StageRewriter(exported, captured, stage, mesh).build()
