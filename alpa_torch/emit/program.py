"""Emit: a stage's local program (decided in C++, ``_C.build_local_program``;
csrc/rewrite/local_program.h) becomes this rank's FX GraphModule.

The emitter walks the exported (training-IR) graph and, node for node,
writes what the program says: each input moved by its resharding steps (or
read as slice views of a buffer), its gradient all-reduced where the program
says so, the op on local shards with its integer arguments made local, and
then the node kind's epilogue (partial sums all-reduced with the addend
after them, a row-split embedding, synced BatchNorm, an experts layer, a
factory's piece). It makes no planning decision and parses no spec: specs
are bound ``_C.ShardingSpec`` objects. What it knows is torch's side of
the contract: which FX node is which graph value, the op schemas (an
in-place write into a moved copy is refused here, since only the schema
says which argument is written), and how each step is run
(alpa_torch/local_ops.py).

    before (global)                     after (rank (0, j) of a (1, 4) mesh)
    %h = linear(%x, %w1, %b1)           %x1 = alpa.grad_all_reduce(%x)
    %y = linear(%h, %w2, %b2)           %h  = linear(%x1, %w1_j, %b1_j)
                                        %y0 = linear(%h, %w2_j)
                                        %y1 = alpa.all_reduce(%y0)
                                        %y  = add(%y1, %b2)
"""
from __future__ import annotations

import operator
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.fx

from alpa_torch import _C
from alpa_torch.emit import experts as expert_ops
from alpa_torch.emit import local_ops
from alpa_torch.emit.local_ops import load_runtime
from alpa_torch.emit.spec import MeshCoords
from alpa_torch.graph.capture import schema_arguments

__all__ = ["EmittedProgram", "emit_stage", "local_padding_idx"]


class EmittedProgram:
    """A stage's GraphModule for this rank and what its runner needs:
    placeholder and output specs (as text), the values' local names, the
    replicated buffers read in pieces, and (pipeline stages) the order of
    the module's arguments."""

    def __init__(self, module: torch.fx.GraphModule, program: _C.LocalProgram,
                 placeholder_specs: Dict[str, str], output_specs: List[Optional[str]],
                 output_shapes: List[Optional[List[int]]]):
        self.module = module
        self.program = program
        self.placeholder_specs = placeholder_specs
        self.output_specs = output_specs
        self.output_shapes = output_shapes
        self.value_map: Dict[str, Tuple[str, str]] = {}
        self.buffer_views: List[Tuple[str, str]] = [(v.buffer, str(v.spec)) for v in program.buffer_views]
        self.arg_plan: List[Tuple[str, Any]] = []


def local_padding_idx(padding_idx: int, index: int, rows: int) -> int:
    """The padding row of a table split by rows, as this rank's row index:
    rank piece `index` holds global rows [index·rows, (index+1)·rows); -1
    (ATen's "no padding") when another rank owns the row or there is none.
    A negative `padding_idx` is ATen's "none" (nn.Embedding has already
    turned a user's negative index into a row number)."""
    if padding_idx is None or padding_idx < 0:
        return -1
    local = padding_idx - index * rows
    return local if 0 <= local < rows else -1


def _bias_to_rank(bias: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return bias.reshape([1, -1] + [1] * (like.dim() - 2))


def _fx_values(graph: torch.fx.Graph) -> Dict[Tuple[str, int], torch.fx.Node]:
    """(producer name, output index) -> the FX node holding that value."""
    out: Dict[Tuple[str, int], torch.fx.Node] = {}
    for node in graph.nodes:
        if node.op == "call_function" and node.target is operator.getitem:
            out[(node.args[0].name, node.args[1])] = node
        elif node.op in ("placeholder", "call_function"):
            out.setdefault((node.name, 0), node)
    return out


def _op(name: str):
    """The ATen overload a program names ("aten.mm.default")."""
    namespace, base, overload = name.split(".")
    return getattr(getattr(getattr(torch.ops, namespace), base), overload)


def _is_int_argument(arg) -> bool:
    return str(arg.type) in ("int", "SymInt")


class _Emitter:
    def __init__(self, exported, captured, program: _C.LocalProgram, mesh: MeshCoords):
        load_runtime()
        self.ep = exported
        self.program = program
        self.mesh = mesh
        self.shape = tuple(mesh.shape)
        self.coord = tuple(mesh.coord)
        self.nodes = {n.name: n for n in program.nodes}
        self.placeholders = {p.value.value.node: p for p in program.placeholders}
        self.experts = getattr(captured, "experts", {})
        # FX placeholder name -> graph node name (tied parameters share one)
        self.alias_of: Dict[str, str] = {}
        by_fqn = {}
        for n in captured.graph.nodes:
            if n.kind == "parameter":
                by_fqn[n.target] = n.name
                for alias in str(n.attrs.get("aliases", "") or "").split(","):
                    if alias:
                        by_fqn[alias] = n.name
        for s in exported.graph_signature.input_specs:
            if s.kind.name == "PARAMETER" and hasattr(s.arg, "name"):
                self.alias_of[s.arg.name] = by_fqn.get(s.target, s.arg.name)
        self.graph = torch.fx.Graph()
        self.env: Dict[torch.fx.Node, torch.fx.Node] = {}
        self.spec_of: Dict[torch.fx.Node, Any] = {}
        # graph parameter -> the placeholders it is read through (tied
        # parameters: several) -> their gradient all-reduces, for the buckets
        self.bucket_uses: Dict[str, Dict[torch.fx.Node, List[torch.fx.Node]]] = {}
        self.fx_placeholders: List[str] = []
        self.bucket_axes = {p: b.axes for b in program.buckets for p in b.parameters}
        self.all_placeholders = True  # single stage: every input of forward

    # -- helpers -------------------------------------------------------------
    def call(self, fn, *args, **kwargs) -> torch.fx.Node:
        return self.graph.call_function(fn, tuple(args), kwargs)

    def group(self, axes: Sequence[int]) -> str:
        return self.mesh.group(list(axes))

    def pieces(self, spec) -> List[Tuple[int, int, int]]:
        return spec.pieces(self.shape, self.coord)

    def move(self, value: torch.fx.Node, move) -> torch.fx.Node:
        steps = [(s.op.name, s.axis, s.from_dim, s.to_dim) for s in move.steps]
        if not steps:
            return value
        return local_ops.reshard_steps(self.call, value, steps, move.from_spec.blocks,
                                       move.to_spec.blocks, self.group)

    # -- nodes ---------------------------------------------------------------
    def placeholder(self, node) -> bool:
        name = self.alias_of.get(node.name, node.name)
        entry = self.placeholders.get(name)
        if entry is None and not self.all_placeholders:
            return False
        new = self.graph.placeholder(node.name)
        new.meta = dict(node.meta)
        self.env[node] = new
        if entry is not None:
            self.spec_of[node] = entry.value.spec
        self.fx_placeholders.append(node.name)
        return True

    def getitem(self, node):
        src, index = node.args
        self.env[node] = self.call(operator.getitem, self.env[src], index)
        self.spec_of[node] = self.nodes[src.name].outputs[index].spec

    def op(self, node, local):
        inputs = iter(local.inputs)
        tensor_args: Dict[str, Any] = {}

        def convert(value, written: bool):
            if isinstance(value, torch.fx.Node):
                entry = next(inputs)
                if entry.buffer_view:
                    out = self.call(local_ops.view_local, self.env[value], self.pieces(entry.move.to_spec))
                else:
                    out = self.move(self.env[value], entry.move)
                    if written and out is not self.env[value]:
                        _refuse_lost_write(node, value, entry.move)
                if entry.grad_reduce:
                    out = self.call(torch.ops.alpa.grad_all_reduce, out, self.group(entry.grad_reduce))
                elif entry.bucketed:
                    placeholder = out
                    axes = self.bucket_axes[entry.value.node]
                    out = self.call(torch.ops.alpa.grad_all_reduce, out, self.group(axes))
                    uses = self.bucket_uses.setdefault(entry.value.node, {})
                    uses.setdefault(placeholder, []).append(out)
                return out
            if isinstance(value, (list, tuple)) and any(isinstance(v, torch.fx.Node) for v in value):
                return type(value)(None if v is None else convert(v, written) for v in value)
            return value

        args, kwargs = [], {}
        local_args = local.args
        for arg, value in schema_arguments(node):
            written = arg.alias_info is not None and arg.alias_info.is_write
            value = convert(value, written)
            if isinstance(value, torch.fx.Node) or (isinstance(value, (list, tuple)) and any(
                    isinstance(v, torch.fx.Node) for v in value)):
                tensor_args[arg.name] = value
            if arg.name in local_args:
                sizes = local_args[arg.name]
                value = sizes[0] if _is_int_argument(arg) else list(sizes)
            if arg.kwarg_only:
                kwargs[arg.name] = value
            else:
                args.append(value)
        kind = local.kind
        K = _C.LocalOpKind
        if kind == K.experts:
            result = self._experts(node, local, args)
        elif kind == K.row_split_embedding:
            result = self._row_split_embedding(node, local, args)
        elif kind == K.synced_batch_norm:
            x, weight, bias, rmean, rvar, training, momentum, eps = args[:8]
            result = self.call(local_ops.sync_batch_norm, x, weight, bias, rmean, rvar, training,
                               momentum, eps, self.group(local.reduce_axes), local.statistics_count)
        elif kind in (K.partial_sum, K.expert_rows):
            result = self._partial_sum(node, local, args, kwargs, tensor_args)
        else:
            result = self.graph.call_function(node.target, tuple(args), kwargs)
            if kind == K.whole_then_slice:
                result = self.call(local_ops.take_local, result, self.pieces(local.outputs[0].spec))
        self.env[node] = result
        self.spec_of[node] = local.outputs[0].spec if local.outputs else None

    def _partial_sum(self, node, local, args, kwargs, tensor_args):
        target = node.target
        addend = None
        if local.addend:
            addend = tensor_args[local.addend]
        if local.kind == _C.LocalOpKind.expert_rows:
            piece = self.pieces(local.inputs[1].move.to_spec)[0][0]
            target, args = expert_ops.grouped_mm_experts, [node.target] + list(args) + [piece]
        elif local.local_op:
            # the local op takes the node's other tensor arguments, in order
            target = _op(local.local_op)
            args = [v for name, v in tensor_args.items() if name != local.addend]
            kwargs = {}
        elif addend is not None:
            names = [a.name for a in node.target._schema.arguments]
            args = list(args)
            args[names.index(local.addend)] = None
        out = self.graph.call_function(target, tuple(args), kwargs)
        g = self.group(local.reduce_axes)
        if len(local.outputs) == 1:
            out = self.call(torch.ops.alpa.all_reduce, out, g)
        else:
            parts = [self.call(torch.ops.alpa.all_reduce, self.call(operator.getitem, out, i), g)
                     for i in range(len(local.outputs))]
            out = self.call(tuple, parts)
        if addend is not None:
            if local.addend_broadcast:
                addend = self.call(_bias_to_rank, addend, out)
            out = self.call(torch.ops.aten.add.Tensor, out, addend)
        if local.mean_divisor != 1:
            out = self.call(torch.ops.aten.div.Tensor, out, float(local.mean_divisor))
        return out

    def _row_split_embedding(self, node, local, args):
        index = self.pieces(local.inputs[0].move.to_spec)[0][0]
        padding_idx = local_padding_idx(args[2] if len(args) > 2 else -1, index, local.rows_per_piece)
        return self.call(local_ops.vocab_parallel_embedding, args[0], args[1], index,
                         self.group(local.reduce_axes), padding_idx)

    def _experts(self, node, local, args):
        hidden, index, weights, params, path = args
        entry = self.experts.get(path)
        if entry is None:
            raise RuntimeError(
                f"node {node.name} runs the experts module {path!r}, which the captured model "
                f"does not have; capture the model you parallelize")
        piece, count, _ = self.pieces(local.inputs[3].move.to_spec)[0]
        group = self.group(local.exchange_axes) if local.exchange_axes else None

        def moe_experts_local(hidden, index, weights, params):
            return expert_ops.moe_experts_local(entry, hidden, index, weights, params, piece=piece,
                                                count=count, group=group, node=node.name)

        out = self.call(moe_experts_local, hidden, index, weights, params)
        if local.reduce_axes:
            out = self.call(torch.ops.alpa.all_reduce, out, self.group(local.reduce_axes))
        return out

    # -- the program -----------------------------------------------------------
    def _fuse_buckets(self) -> None:
        """One grad_all_reduce_bucket per bucket of the program (DDP's
        buckets: backward synchronises the group once per bucket).

            before                              after
            %a = grad_all_reduce(%w1, g)        %b = grad_all_reduce_bucket([%w1, %w2], g)
            %c = grad_all_reduce(%w2, g)        %a = %b[0]; %c = %b[1]
        """
        anchor = None
        for node in self.graph.nodes:
            if node.op == "placeholder":
                anchor = node
        for bucket in self.program.buckets:
            uses = [(ph, nodes) for name in bucket.parameters
                    for ph, nodes in self.bucket_uses.pop(name, {}).items()]
            with self.graph.inserting_after(anchor):
                fused = self.graph.call_function(torch.ops.alpa.grad_all_reduce_bucket,
                                                 ([ph for ph, _ in uses], self.group(bucket.axes)))
            anchor = fused
            for i, (_, nodes) in enumerate(uses):
                with self.graph.inserting_after(anchor):
                    item = self.graph.call_function(operator.getitem, (fused, i))
                anchor = item
                for use in nodes:
                    use.replace_all_uses_with(item)
                    self.graph.erase_node(use)

    def walk(self, skip=()) -> Optional[torch.fx.Node]:
        """Emits every node of the stage; returns the FX output node."""
        output = None
        for node in self.ep.graph.nodes:
            if node in self.env or node in skip:
                continue
            if node.op == "placeholder":
                self.placeholder(node)
            elif node.op == "call_function" and node.target is operator.getitem:
                if node.args[0] in self.env:
                    self.getitem(node)
            elif node.op == "call_function":
                local = self.nodes.get(node.name)
                if local is not None:
                    self.op(node, local)
            elif node.op == "output":
                output = node
        return output

    def finish(self, outputs, out_specs, out_shapes) -> EmittedProgram:
        self.graph.output(tuple(outputs))
        self._fuse_buckets()
        self.graph.lint()
        module = torch.fx.GraphModule(torch.nn.Module(), self.graph)
        placeholder_specs = {n.name: str(s) for n, s in self.spec_of.items() if n.op == "placeholder"}
        emitted = EmittedProgram(module, self.program, placeholder_specs, out_specs, out_shapes)
        emitted.value_map = {n.name: (v.name, str(self.spec_of[n])) for n, v in self.env.items()
                             if self.spec_of.get(n) is not None}
        return emitted

    def build_single(self) -> EmittedProgram:
        output = self.walk()
        outputs, specs, shapes = [], [], []
        tensors = iter(self.program.graph_outputs)
        for value in output.args[0]:
            if isinstance(value, torch.fx.Node):
                entry = next(tensors)
                outputs.append(self.env[value])
                specs.append(str(entry.value.spec))
                shapes.append(list(entry.value.shape))
            else:
                outputs.append(value)
                specs.append(None)
                shapes.append(None)
        return self.finish(outputs, specs, shapes)

    def build_stage(self) -> EmittedProgram:
        """A pipeline stage: received values become leading placeholders;
        the outputs are the values sent to the next stage, then the model
        outputs this stage produces."""
        self.all_placeholders = False  # only the stage's own
        fx_of = _fx_values(self.ep.graph)
        arg_plan: List[Tuple[str, Any]] = []
        for i, v in enumerate(self.program.received):
            ph = self.graph.placeholder(f"recv_{i}")
            node = fx_of[(v.value.node, v.value.index)]
            self.env[node] = ph
            self.spec_of[node] = v.spec
            arg_plan.append(("recv", i))
        output = self.walk()
        arg_plan += [("fx", name) for name in self.fx_placeholders]
        outputs: List[Any] = []
        for send in self.program.sends:
            node = fx_of[(send.value.value.node, send.value.value.index)]
            outputs.append(self.move(self.env[node], send.move))
        tensor_outputs = [v for v in output.args[0] if isinstance(v, torch.fx.Node)]
        specs: List[Optional[str]] = []
        for i, entry in zip(self.program.graph_output_indices, self.program.graph_outputs):
            outputs.append(self.env[tensor_outputs[i]])
            specs.append(str(entry.value.spec))
        emitted = self.finish(outputs, specs, [])
        emitted.arg_plan = arg_plan
        return emitted


def _refuse_lost_write(node, value, move):
    """An in-place op that would write into a moved copy: later readers of
    `value` (or of views of it) would miss the write. (capture turns the
    in-place ops nobody can observe into functional ones; what is left here
    writes through views.)"""
    src, want = str(move.from_spec), str(move.to_spec)
    raise NotImplementedError(
        f"node {node.name} ({node.target}) writes in place into {value.name}, which the plan "
        f"lays out as {src or 'a scalar'} but the op reads as {want}: the write would land in a "
        f"copy and later readers of {value.name} (or of its views) would miss it. Fix: write the "
        f"model without the in-place update (e.g. torch.cat or torch.where instead of assigning "
        f"into a slice); alpa_torch makes an in-place update functional by itself when no view "
        f"of the value is read after it")


def emit_stage(exported, captured, plan, stage: int, mesh: MeshCoords) -> EmittedProgram:
    """This rank's program for stage `stage` of `plan` (alpa_torch.plan.Plan):
    the C++ local program (``_C.build_local_program``) emitted as FX.
    `mesh` gives this rank's mesh shape, coordinate and group names
    (MeshGroups)."""
    program = _C.build_local_program(captured.graph, plan.to_json(), stage)
    emitter = _Emitter(exported, captured, program, mesh)
    if len(plan.stages) > 1:
        return emitter.build_stage()
    return emitter.build_single()
