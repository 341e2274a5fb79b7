"""Pipeshard parallelize(): a plan with pipeline stages, run by the C++
executor.

Every rank captures ONE microbatch of the example, rank 0 plans
(``method="pipeshard"``) and broadcasts the plan, every rank creates the
process groups of every stage's sub-mesh (group creation is collective),
and each rank keeps only its stage: its parameters become DTensors on its
stage's DeviceMesh, the others are dropped from the module, and its slice of
the graph is rewritten into a local FX program. ``pmodel.step(batch, target,
loss_fn)`` then runs one training step through
``alpa_torch._runtime.PipelineExecutor`` (C++): the schedule's forwards and
backwards over microbatches, with cross-mesh resharding of every value that
crosses a stage boundary, gradients accumulated over microbatches.

    rank 0,1: stage 0 (mesh (1, 2))        rank 2,3: stage 1 (mesh (1, 2))
    F0 SEND_F0 F1 SEND_F1 ... B0 SEND_B0   RECV_F0 F0 B0 SEND_B0 ...
"""
from __future__ import annotations

import datetime
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
import torch.distributed as dist
import torch.fx
import torch.fx._pytree as fx_pytree
import torch.utils.checkpoint
import torch.utils._pytree as pytree
from torch.distributed.tensor import DTensor

from alpa_torch.emit import local_ops
from alpa_torch.emit.spec import ShardingSpec, parse_spec, pieces
from alpa_torch.emit.program import emit_stage
from alpa_torch.graph.capture import capture
from alpa_torch.planning.plan_types import Plan
from alpa_torch.runtime import health
from alpa_torch.runtime.agreement import check_same_graph_everywhere, plan_on_rank0
from alpa_torch.runtime.mesh import MeshGroups
from alpa_torch.runtime.parameters import (block_permute, distribute_stage_state, placements,
                                           whole_tensor)
from alpa_torch.runtime.program_io import (STATE_KINDS, ProgramState, gather_full,
                                           placeholder_targets, slice_input, sync_buffer_views,
                                           precision_context, write_buffer)

__all__ = ["parallelize_pipeshard", "PipeshardModule"]


# ---- the parallel module ------------------------------------------------------

class PipeshardModule:
    """Mixin placed before the model's class by a pipeshard parallelize()."""

    def forward(self, *args, **kwargs):
        raise NotImplementedError(
            "a pipeshard-parallelized model trains with pmodel.step(batch, target, loss_fn); "
            "its forward alone is not available (each rank holds one stage)")

    def step(self, batch: Any, target: Any, loss_fn: Callable[[Any, Any], torch.Tensor],
             optimizer: Optional[torch.optim.Optimizer] = None) -> float:
        """One training step over the global `batch` (its dim 0 is split
        into the plan's microbatches): forward, loss_fn(output, target) per
        microbatch, backward, gradients accumulated into ``.grad`` (as
        ``loss.backward()`` would, averaged over microbatches). With an
        `optimizer`, also ``optimizer.step()`` and ``optimizer.zero_grad()``.
        Returns the step's loss (mean over microbatches) on every rank."""
        return self._alpa_pipeline.step(batch, target, loss_fn, optimizer)

    def full_state_dict(self) -> Dict[str, torch.Tensor]:
        """Plain tensors equal to the single-process model's state_dict(),
        on every rank (each stage's tensors are gathered and broadcast)."""
        return self._alpa_pipeline.full_state_dict()


class _Pipeline:
    """This rank's stage of a pipeshard plan: its program (the C++ local
    program of the stage, alpa_torch/emit/program.py), the
    C++ executor that runs the schedule, and the groups of tied parameters."""

    def __init__(self, model, captured, the_plan: Plan, meshes: List[MeshGroups],
                 timeout: datetime.timedelta):
        from alpa_torch import _runtime
        self.model = model
        self.plan = the_plan
        self.rank = dist.get_rank()
        self.stage_index = next(s.index for s in the_plan.stages if self.rank in s.device_ids)
        self.stage = the_plan.stages[self.stage_index]
        self.mesh = meshes[self.stage_index]
        self.meshes = meshes
        self.is_last = self.stage_index == len(the_plan.stages) - 1
        ep = captured.exported
        self.program = emit_stage(ep, captured, the_plan, self.stage_index, self.mesh)
        local_ops.annotate_collectives(self.program.module,
                                       f"alpa pipeline stage {self.stage_index}, ")
        self.planned_shapes = {n.name: tuple(int(d) for d in n.outputs[0][0])
                               for n in captured.graph.nodes if n.kind == "input"}
        sig = ep.graph_signature
        self.kind_of = placeholder_targets(ep)
        self.user_input_index = {}
        for s in sig.input_specs:
            if s.kind.name == "USER_INPUT" and hasattr(s.arg, "name"):
                self.user_input_index[s.arg.name] = len(self.user_input_index)
        self.in_spec = ep.call_spec.in_spec
        self.out_spec = ep.call_spec.out_spec
        self.added_kwargs = captured.added_kwargs  # use_cache=False, as captured
        out_specs = sig.output_specs
        self.output_kinds = [(s.kind.name, s.target) for s in out_specs]
        outputs_node = next(n for n in ep.graph.nodes if n.op == "output")
        self.fx_outputs = list(outputs_node.args[0])
        # p2p and the loss broadcast: every rank, with the pipeline's timeout
        # (the default group's may be far longer)
        self.group = dist.new_group(list(range(dist.get_world_size())), timeout=timeout)
        health.name_group(self.group.group_name, "the pipeline's p2p group over all ranks")
        self.executor = _runtime.PipelineExecutor(
            the_plan.to_json(), self.rank, self.group.group_name,
            timeout_s=timeout.total_seconds(), loss_scale=1.0 / the_plan.num_micro_batches)
        self.shared = _shared_parameters(the_plan)
        self.shared_groups = {}
        for fqn, stages in self.shared:  # collective: every rank, same order
            ranks = sorted(d for s in stages for d in the_plan.stages[s].device_ids)
            self.shared_groups[fqn] = dist.new_group(ranks, timeout=timeout)
            if self.rank in ranks:
                health.name_group(self.shared_groups[fqn].group_name,
                                  f"the tied parameter {fqn!r} of stages {stages}")
        self._micro = None
        self.state = ProgramState(model, ep)
        self.buffer_views = [(self.kind_of[name][1], parse_spec(spec))
                             for name, spec in self.program.buffer_views]

    # -- one step --------------------------------------------------------------
    def step(self, batch, target, loss_fn, optimizer) -> float:
        self.mesh.check_alive()
        B = self.plan.num_micro_batches
        args = batch if isinstance(batch, tuple) else (batch,)
        # one leaf per user input, tensors and constants (use_cache=False) alike
        flat = list(fx_pytree.tree_flatten_spec((args, dict(self.added_kwargs)), self.in_spec))
        for x in flat:
            if isinstance(x, torch.Tensor) and x.shape[0] % B:
                raise ValueError(f"the batch's dim 0 ({x.shape[0]}) does not divide into "
                                 f"{B} microbatches; pass a batch of a multiple of {B}")
        self._check_batch_shapes(flat)
        self._micro = [list(x.chunk(B, 0)) if isinstance(x, torch.Tensor) else [x] * B
                       for x in flat]
        self._targets = _split_target(target, B)
        self._loss_fn = loss_fn
        try:
            losses = self.executor.run(self._forward)
        except Exception as e:
            # the other stages then time out waiting for us: tell them why
            health.report_own_failure(f"rank {self.rank} (pipeline stage {self.stage_index})", e)
            raise
        finally:
            self._micro = None
        # a channel-split BatchNorm updated each rank's piece of its running
        # statistics (over every microbatch): make the buffers whole again
        sync_buffer_views(self.model, self.buffer_views, self.mesh)
        self._sync_shared_gradients()
        loss = torch.tensor([sum(losses) / B if losses else 0.0], dtype=torch.float64)
        last = self.plan.stages[-1].device_ids[0]
        with health.guard("broadcast", self.group, f"the step's loss from rank {last}"):
            dist.broadcast(loss, src=last, group=self.group)
        if optimizer is not None:
            optimizer.step()
            optimizer.zero_grad()
        return float(loss.item())

    def _check_batch_shapes(self, flat: List[torch.Tensor]) -> None:
        B = self.plan.num_micro_batches
        for name, index in self.user_input_index.items():
            planned = self.planned_shapes.get(name)
            if planned is None or index >= len(flat) or not planned:
                continue
            want = (planned[0] * B,) + planned[1:]
            got = tuple(flat[index].shape)
            if got != want:
                raise ValueError(
                    f"input {name!r} has shape {list(got)}, but the plan was made for "
                    f"{list(want)} ({B} microbatches of {list(planned)}, from the example given "
                    f"to parallelize()); the stages' programs and transfers are fixed to those "
                    f"shapes. For the new shape, build the model again and call "
                    f"alpa_torch.parallelize(..., method='pipeshard') with an example of that "
                    f"shape (alpa_torch.plan() shows its plan without running it), or pad the "
                    f"batch to {list(want)}")

    def _forward(self, stage: int, mb: int, inputs: List[torch.Tensor]) -> List[torch.Tensor]:
        values = []
        for kind, key in self.program.arg_plan:
            if kind == "recv":
                values.append(inputs[key])
                continue
            what, target = self.kind_of[key]
            if what in STATE_KINDS:
                values.append(self.state.value(what, target))
            else:
                x = self._micro[self.user_input_index[key]][mb]
                spec = self.program.placeholder_specs.get(key)
                if spec is not None:
                    x = slice_input(x, parse_spec(spec), self.mesh)
                values.append(x)
        with precision_context(self.plan.precision, values):
            if self.stage.remat:
                # Rematerialization: autograd keeps only the stage's inputs and
                # runs the program again (with the forward's RNG state and
                # autocast) when this microbatch's backward reaches it; its
                # collectives replay in the same order on every rank of the
                # stage (they all run the same B action).
                outs = list(torch.utils.checkpoint.checkpoint(self.program.module, *values,
                                                              use_reentrant=False))
            else:
                outs = list(self.program.module(*values))
        n = len(self.stage.outputs)
        sent, produced = outs[:n], outs[n:]
        results: Dict[int, torch.Tensor] = {}
        for i, value, spec in zip(self.stage.graph_outputs, produced, self.program.output_specs):
            results[i] = value
            kind, target = self._graph_output_kind(i)
            if kind == "BUFFER_MUTATION":
                write_buffer(self.model, target, value)
        if not self.is_last:
            return sent
        user = []
        tensor_index = 0
        specs = dict(zip(self.stage.graph_outputs, self.program.output_specs))
        for value, (kind, _) in zip(self.fx_outputs, self.output_kinds):
            if isinstance(value, torch.fx.Node):
                if kind == "USER_OUTPUT":
                    user.append(gather_full(results[tensor_index], parse_spec(specs[tensor_index]),
                                            self.mesh, f"pipeline stage {self.stage_index}: the "
                                            f"gather of output {tensor_index}"))
                tensor_index += 1
            elif kind == "USER_OUTPUT":
                user.append(value)
        output = pytree.tree_unflatten(user, self.out_spec)
        loss = self._loss_fn(output, self._targets[mb])
        if not (isinstance(loss, torch.Tensor) and loss.numel() == 1):
            raise ValueError(f"loss_fn must return a scalar tensor, got {type(loss).__name__}")
        return [loss.reshape(())]

    def _graph_output_kind(self, tensor_index: int) -> Tuple[str, Any]:
        k = -1
        for value, kind in zip(self.fx_outputs, self.output_kinds):
            if isinstance(value, torch.fx.Node):
                k += 1
                if k == tensor_index:
                    return kind
        raise IndexError(tensor_index)

    # -- tied parameters across stages ----------------------------------------
    def _sync_shared_gradients(self) -> None:
        """A parameter read by several stages (tied embeddings) has a copy on
        each; their gradients are summed so the copies stay equal."""
        for fqn, stages in self.shared:
            group = self.shared_groups[fqn]
            if self.stage_index not in stages:
                continue
            p = self.model.get_parameter(fqn)
            spec = parse_spec(self.stage.param_specs[fqn])
            grad = p.grad
            if grad is None:
                full = torch.zeros(p.shape, dtype=p.dtype)
            else:  # our collectives: the pipeline's timeout, failures name the peer
                with torch.no_grad():
                    local_grad = grad.to_local() if isinstance(grad, DTensor) else grad
                    full = gather_full(local_grad, spec, self.mesh,
                                       f"the gather of the tied parameter {fqn!r}'s gradient")
            first = self.rank == self.stage.device_ids[0]
            contribution = full if first else torch.zeros_like(full)
            with health.guard("all_reduce", group,
                              f"the gradient of the tied parameter {fqn!r} after the schedule"):
                dist.all_reduce(contribution, group=group)
            local = local_ops.take_local(block_permute(contribution, spec, self.mesh),
                                         [(i, c, 1) for i, c, _ in pieces(spec, self.mesh)])
            if p.grad is None:
                p.grad = DTensor.from_local(local.contiguous(), self.mesh.device_mesh,
                                            placements(spec), run_check=False)
            else:  # in place: the local leaf accumulates into the same storage
                p.grad.to_local().copy_(local)

    # -- checkpoints -------------------------------------------------------------
    def full_state_dict(self) -> Dict[str, torch.Tensor]:
        out: Dict[str, torch.Tensor] = {}
        for name, meta in self.names:
            if name in self.everywhere:  # no stage reads it: whole on every rank
                value = self.model.get_parameter(name) if meta == "param" else \
                    self.model.get_buffer(name)
                out[name] = value.detach().clone()
                continue
            owner = self.owner_of[name]
            mine = self.stage_index == owner
            if mine:
                value = self.model.get_parameter(name) if meta == "param" else self.model.get_buffer(name)
                full = whole_tensor(value, getattr(value, "_alpa_spec", None), self.mesh)
                full = full.detach().clone()
            else:
                shape, dtype = self.shapes[name]
                full = torch.empty(shape, dtype=dtype)
            dist.broadcast(full, src=self.plan.stages[owner].device_ids[0], group=self.group)
            out[name] = full
        return out


def _shared_parameters(the_plan: Plan) -> List[Tuple[str, List[int]]]:
    holders: Dict[str, List[int]] = {}
    for s in the_plan.stages:
        for fqn in s.param_specs:
            holders.setdefault(fqn, []).append(s.index)
    return sorted((f, st) for f, st in holders.items() if len(st) > 1)


def _split_target(target, B: int) -> List[Any]:
    if isinstance(target, torch.Tensor):
        if target.shape[0] % B:
            raise ValueError(f"the target's dim 0 ({target.shape[0]}) does not divide into {B} "
                             f"microbatches")
        return list(target.chunk(B, 0))
    if target is None:
        return [None] * B
    leaves, spec = pytree.tree_flatten(target)
    parts = [t.chunk(B, 0) if isinstance(t, torch.Tensor) else [t] * B for t in leaves]
    return [pytree.tree_unflatten([p[i] for p in parts], spec) for i in range(B)]


def _microbatch_example(example_args, example_kwargs, B: int):
    def first(x):
        if isinstance(x, torch.Tensor) and x.dim() > 0:
            if x.shape[0] % B:
                raise ValueError(f"the example batch's dim 0 ({x.shape[0]}) does not divide into "
                                 f"num_micro_batches={B}")
            return x.chunk(B, 0)[0]
        return x
    args = example_args if isinstance(example_args, tuple) else (example_args,)
    return pytree.tree_map(first, args), pytree.tree_map(first, dict(example_kwargs or {}))


def parallelize_pipeshard(model: torch.nn.Module, example_args, example_kwargs, shape,
                          timeout: datetime.timedelta, plan_options: Dict[str, Any]):
    B = int(plan_options.get("num_micro_batches", 1))
    micro_args, micro_kwargs = _microbatch_example(example_args, example_kwargs, B)
    captured = capture(model, micro_args, micro_kwargs)
    check_same_graph_everywhere(captured)
    the_plan = plan_on_rank0(captured, shape, dict(plan_options, method="pipeshard"))
    meshes = [MeshGroups(s.mesh_shape, device_ids=s.device_ids, timeout=timeout)
              for s in the_plan.stages]
    pipeline = _Pipeline(model, captured, the_plan, meshes, timeout)
    _record_state(pipeline, model, captured)
    # this stage's parameters and buffers as DTensors on its mesh, the
    # other stages' dropped (those no stage reads stay whole everywhere)
    distribute_stage_state(model, captured, pipeline.stage, pipeline.mesh,
                           drop=set(pipeline.owner_of))
    cls = model.__class__
    if not issubclass(cls, PipeshardModule):
        model.__class__ = type(f"AlpaPipeshard{cls.__name__}", (PipeshardModule, cls), {})
    model._alpa_pipeline = pipeline
    model.alpa_plan = the_plan
    return model


def _record_state(pipeline: _Pipeline, model, captured) -> None:
    """Names, shapes and owning stage of every entry of ``model.state_dict()``
    (so non-persistent buffers are left out, tied parameters listed under
    each name), for full_state_dict() after the other stages' tensors are
    dropped. A buffer no stage reads (Llama's rotary ``inv_freq`` once
    torch.export folded it into a constant) has no owner: every rank keeps
    it whole (``pipeline.everywhere``)."""
    owner: Dict[str, int] = {}
    for s in pipeline.plan.stages:
        for fqn in s.param_specs:
            owner.setdefault(fqn, s.index)
    for s in pipeline.plan.stages:
        members = set(s.node_specs)
        for fqn, node in _buffer_nodes(captured).items():
            if node in members:
                owner.setdefault(fqn, s.index)
    canonical = {id(p): name for name, p in model.named_parameters()}
    params = dict(model.named_parameters(remove_duplicate=False))
    names, shapes, everywhere = [], {}, set()
    for name, value in model.state_dict(keep_vars=True).items():
        shapes[name] = (tuple(value.shape), value.dtype)
        names.append((name, "param" if name in params else "buffer"))
        if name in params and canonical[id(params[name])] in owner:
            owner.setdefault(name, owner[canonical[id(params[name])]])
        elif name not in owner:
            everywhere.add(name)  # no stage reads it (an unused parameter or buffer)
    pipeline.names, pipeline.shapes, pipeline.owner_of = names, shapes, owner
    pipeline.everywhere = everywhere


def _buffer_nodes(captured) -> Dict[str, str]:
    """Buffer FQN -> the graph node that reads it."""
    return {n.target: n.name for n in captured.graph.nodes if n.kind == "buffer"}
