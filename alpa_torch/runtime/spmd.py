"""A whole-mesh (single-stage) plan run by every rank: one SPMD program.

Every rank captures the model; rank 0 plans and broadcasts the plan (so all
ranks run the same plan, bit for bit); each rank rewrites the graph into its
local program, replaces the model's parameters by DTensors laid out as
planned, and swaps in a forward that runs the local program. The returned
module is the same object (its class extended, as FSDP2's fully_shard
does), so FQNs, optimizers, clip_grad_norm_, state_dict() and
torch.distributed.checkpoint work on it unchanged.

A pipeline stage (pipeshard.py) is built by the same pieces: the rewrite
(alpa_torch/emit), the parameters (parameters.py) and the program's inputs
and outputs (program_io.py).
"""
from __future__ import annotations

import datetime
from typing import Any, Dict, Optional, Tuple

import torch
import torch.fx._pytree as fx_pytree
import torch.utils._pytree as pytree

from alpa_torch.emit import local_ops
from alpa_torch.emit.program import EmittedProgram, emit_stage
from alpa_torch.emit.spec import ShardingSpec, parse_spec, pieces
from alpa_torch.graph.capture import capture, with_added_kwargs
from alpa_torch.planning.plan_types import Plan
from alpa_torch.runtime import health
from alpa_torch.runtime.agreement import check_same_graph_everywhere, plan_on_rank0
from alpa_torch.runtime.local_params import LocalParameters
from alpa_torch.runtime.mesh import MeshGroups
from alpa_torch.runtime.parameters import distribute_stage_state, full_state_dict
from alpa_torch.runtime.program_io import (STATE_KINDS, ProgramState, gather_full,
                                           placeholder_targets, slice_input, sync_buffer_views,
                                           precision_context, write_buffer)

__all__ = ["parallelize_spmd", "AlpaParallelModule", "ProgramRunner"]


def parallelize_spmd(model: torch.nn.Module, example_args, example_kwargs, shape: Tuple[int, int],
                     timeout: datetime.timedelta, plan_options: Dict[str, Any],
                     local_outputs: bool, data_parallel_inputs: bool) -> torch.nn.Module:
    """parallelize() for method="intra_op" (options already agreed on)."""
    captured = capture(model, example_args, example_kwargs)
    check_same_graph_everywhere(captured)
    the_plan = plan_on_rank0(captured, shape, plan_options)
    stage = the_plan.stages[0]
    mesh = MeshGroups(stage.mesh_shape, timeout=timeout)
    program = emit_stage(captured.exported, captured, the_plan, 0, mesh)
    local_ops.annotate_collectives(program.module)
    distribute_stage_state(model, captured, stage, mesh)
    cls = model.__class__
    if not issubclass(cls, AlpaParallelModule):
        model.__class__ = type(f"AlpaParallel{cls.__name__}", (AlpaParallelModule, cls), {})
    model._alpa_runner = ProgramRunner(model, captured, program, mesh, the_plan, local_outputs,
                                       data_parallel_inputs)
    model.alpa_plan = the_plan
    return model


class AlpaParallelModule:
    """Mixin placed before the model's class by parallelize()."""

    def forward(self, *args, **kwargs):
        return self._alpa_runner(args, kwargs)

    def full_state_dict(self) -> Dict[str, torch.Tensor]:
        """Plain tensors equal to the single-process model's state_dict()."""
        return full_state_dict(self, self._alpa_runner.mesh)


class ProgramRunner:
    """Runs a whole-mesh local program as the model's forward: binds the
    program's placeholders (the model's state, this rank's piece of each
    input), runs it, copies buffer mutations back and returns the outputs
    whole (or this rank's pieces, with `local_outputs`). `dp_inputs`: the
    caller passes this rank's piece of each input instead of the whole.
    Also the torch.compile backend's runner of each Dynamo graph."""

    def __init__(self, model, captured, program: EmittedProgram, mesh: MeshGroups, the_plan: Plan,
                 local_outputs: bool, dp_inputs: bool,
                 local_params: Optional[LocalParameters] = None):
        ep = captured.exported
        self.model = model
        self.program = program
        self.mesh = mesh
        self.local_outputs = local_outputs
        self.dp_inputs = dp_inputs
        self.in_spec = ep.call_spec.in_spec
        self.out_spec = ep.call_spec.out_spec
        self.added_kwargs = captured.added_kwargs  # use_cache=False, as captured
        sig = ep.graph_signature
        self.kinds = [(s.kind.name, s.target, s.arg.name if hasattr(s.arg, "name") else None)
                      for s in sig.input_specs]
        self.user_output_count = sum(1 for s in sig.output_specs if s.kind.name == "USER_OUTPUT")
        self.mutations = [(i, s.target) for i, s in enumerate(sig.output_specs)
                          if s.kind.name == "BUFFER_MUTATION"]
        targets = placeholder_targets(ep)
        self.buffer_views = [(targets[name][1], parse_spec(spec))
                             for name, spec in program.buffer_views]
        self.plan = the_plan
        self.grad_inputs = {n.name for n in captured.graph.nodes
                            if n.kind == "input" and n.requires_grad}
        self.planned_shapes = _planned_input_shapes(captured, program, mesh, dp_inputs)
        # several programs reading one module's parameters may share leaves
        self.state = ProgramState(model, ep, local_params)

    def __call__(self, args, kwargs):
        self.mesh.check_alive()
        try:
            return self._run(args, kwargs)
        except Exception as e:
            # the others' collectives then time out: tell them it was us
            health.report_own_failure(f"rank {self.mesh.rank}'s forward", e)
            raise

    def _run(self, args, kwargs):
        flat = fx_pytree.tree_flatten_spec((args, with_added_kwargs(kwargs, self.added_kwargs)),
                                           self.in_spec)
        # one leaf per user input, tensors and constants (use_cache=False) alike
        values, user = [], iter(flat)
        for kind, target, arg_name in self.kinds:
            if kind in STATE_KINDS:
                values.append(self.state.value(kind, target))
            elif kind == "USER_INPUT":
                x = next(user)
                if not isinstance(x, torch.Tensor):  # a constant the graph specialised
                    values.append(x)
                    continue
                if x.requires_grad and arg_name not in self.grad_inputs and torch.is_grad_enabled():
                    raise ValueError(
                        f"input {arg_name!r} requires grad, but the example input given to "
                        f"parallelize() did not, so the plan computes no gradient for it; pass "
                        f"an example with requires_grad=True (or detach the input)")
                _check_planned_shape(arg_name, x, self.planned_shapes.get(arg_name), self.dp_inputs)
                spec = self.program.placeholder_specs.get(arg_name)
                if spec is not None and not self.dp_inputs:
                    x = slice_input(x, parse_spec(spec), self.mesh)
                values.append(x)
        with precision_context(self.plan.precision, values):
            outs = self.program.module(*values)
        for index, target in self.mutations:
            write_buffer(self.model, target, outs[index])
        sync_buffer_views(self.model, self.buffer_views, self.mesh)
        results = []
        user_index = [i for i in range(len(outs)) if i not in {m for m, _ in self.mutations}]
        for i in user_index:
            value, spec = outs[i], self.program.output_specs[i]
            if isinstance(value, torch.Tensor) and spec is not None and not self.local_outputs:
                value = gather_full(value, parse_spec(spec), self.mesh,
                                    f"the gather of output {i} to every rank")
            results.append(value)
        return pytree.tree_unflatten(results, self.out_spec)


def _planned_input_shapes(captured, program, mesh: MeshGroups,
                          dp_inputs: bool) -> Dict[str, Tuple[Tuple[int, ...], Tuple[int, ...]]]:
    """Input name -> (the global shape planned for, the shape forward() takes)."""
    out = {}
    for n in captured.graph.nodes:
        if n.kind != "input":
            continue
        shape = tuple(int(d) for d in n.outputs[0][0])
        taken = shape
        spec = program.placeholder_specs.get(n.name)
        if dp_inputs and spec is not None:
            cut = pieces(parse_spec(spec), mesh)
            taken = tuple(d // count for d, (_, count, _) in zip(shape, cut))
        out[n.name] = (shape, taken)
    return out


def _check_planned_shape(name: str, x: torch.Tensor, planned, dp_inputs: bool) -> None:
    if planned is None or tuple(x.shape) == planned[1]:
        return
    shape, taken = planned
    mine = " (this rank's slice of it, as data_parallel_inputs=True takes)" if dp_inputs else ""
    raise ValueError(
        f"input {name!r} has shape {list(x.shape)}, but the plan was made for {list(taken)}{mine}: "
        f"the example given to parallelize() had {list(shape)}, and the sharded program is fixed "
        f"to the shapes it was planned for. For the new shape, build the model again and call "
        f"alpa_torch.parallelize() with an example of that shape (alpa_torch.plan() shows its plan "
        f"without running it), or pad the batch to {list(shape)}; "
        f"torch.compile(model, backend='alpa') plans every new shape by itself")
