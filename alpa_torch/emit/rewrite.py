"""Rewrite: a single-stage plan becomes this rank's local FX program.

Walks the exported (training-IR) graph in order and emits, per node, the
same ATen op on local shards, with:
- resharding where a producer's spec differs from what the consumer's
  strategy reads — exactly the steps the C++ planner costed
  (``_C.plan_reshard``: slices, all-to-alls, gathers);
- ``grad_all_reduce`` on inputs whose gradient the strategy makes partial
  (Megatron's f; data-parallel parameter gradients);
- ``all_reduce`` of partial sums after ops whose contracted dim is split
  (Megatron's g), with addends (bias) added after the sum;
- local sizes for view/reshape/expand/split/factory arguments;
- vocab-parallel embedding and synced BatchNorm where the plan splits them.

    before (global)                     after (rank (0, j) of a (1, 4) mesh)
    %h = linear(%x, %w1, %b1)           %x1 = alpa.grad_all_reduce(%x)
    %y = linear(%h, %w2, %b2)           %h  = linear(%x1, %w1_j, %b1_j)
                                        %y0 = linear(%h, %w2_j)
                                        %y1 = alpa.all_reduce(%y0)
                                        %y  = add(%y1, %b2)
"""
from __future__ import annotations

import math
import operator
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.fx

from alpa_torch import _C
from alpa_torch.emit import local_ops
from alpa_torch.emit import experts as expert_ops
from alpa_torch.emit.spec import MeshCoords, Spec, local_shape
from alpa_torch.graph.capture import schema_arguments
from alpa_torch.graph.experts import EXPERTS_OP

__all__ = ["LocalProgram", "Rewriter", "build_local_program", "bucket_parameter_gradients",
           "BUCKET_BYTES", "local_padding_idx"]


_SIZE_ARGS = {"view": "size", "reshape": "shape", "_unsafe_view": "size", "expand": "size",
              "new_ones": "size", "new_zeros": "size", "new_empty": "size", "new_full": "size",
              "zeros": "size", "ones": "size", "empty": "size", "full": "size",
              "rand": "size", "randn": "size"}
_FACTORIES = {"arange", "zeros", "ones", "full", "empty", "rand", "randn", "scalar_tensor"}


class LocalProgram:
    """The rewritten per-rank GraphModule and what the caller needs to run it:
    which placeholders are parameters/buffers/inputs, and the output specs."""

    def __init__(self, module: torch.fx.GraphModule, placeholder_specs: Dict[str, str],
                 output_specs: List[Optional[str]], output_shapes: List[Optional[List[int]]]):
        self.module = module
        self.placeholder_specs = placeholder_specs
        self.output_specs = output_specs
        self.output_shapes = output_shapes


class Rewriter:
    def __init__(self, exported, captured, stage, mesh: MeshCoords):
        local_ops.load_runtime()
        self.ep = exported
        self.stage = stage
        self.mesh = mesh
        self.mesh_shape = list(mesh.shape)
        self.specs = stage.node_specs
        self.nodes = {n.name: n for n in captured.graph.nodes}
        # tied parameters: an alias placeholder reads its canonical node's spec
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
        self.experts = getattr(captured, "experts", {})
        self.buffers = {s.arg.name for s in exported.graph_signature.input_specs
                        if s.kind.name == "BUFFER" and hasattr(s.arg, "name")}
        self.buffer_views: List[Tuple[str, str]] = []
        self.records: Dict[str, list] = {}
        for c in stage.collectives():
            self.records.setdefault(c.node, []).append(c)
        self.graph = torch.fx.Graph()
        self.env: Dict[torch.fx.Node, torch.fx.Node] = {}
        self.spec_of: Dict[torch.fx.Node, Spec] = {}

    # -- helpers -------------------------------------------------------------
    def call(self, fn, *args, **kwargs) -> torch.fx.Node:
        return self.graph.call_function(fn, tuple(args), kwargs)

    def group(self, axes: Sequence[int]) -> str:
        return self.mesh.group(list(axes))

    def global_shape(self, name: str, index: int = 0) -> List[int]:
        return list(self.nodes[name].outputs[index][0])

    def reshard(self, value: torch.fx.Node, src: Spec, dst: Spec, shape: List[int]) -> torch.fx.Node:
        if src == dst:
            return value
        steps = _C.plan_reshard(src.to_string(), dst.to_string(), shape, self.mesh_shape)
        return local_ops.reshard_steps(self.call, value, steps, src.blocks, dst.blocks, self.group)

    # -- nodes ---------------------------------------------------------------
    def placeholder(self, node):
        new = self.graph.placeholder(node.name)
        new.meta = dict(node.meta)
        self.env[node] = new
        name = self.alias_of.get(node.name, node.name)
        if name in self.specs:
            self.spec_of[node] = Spec.parse(self.specs[name]["outputs"][0])

    def getitem(self, node):
        src, index = node.args
        self.env[node] = self.call(operator.getitem, self.env[src], index)
        self.spec_of[node] = Spec.parse(self.specs[src.name]["outputs"][index])

    def op(self, node):
        name = node.name
        ns = self.specs[name]
        records = self.records.get(name, [])
        grad_reduce = {c.input: c.axes for c in records
                       if c.role in ("input_grad", "parameter_grad")}
        partial_axes = next((c.axes for c in records if c.role == "partial_output"), None)
        sync_axes = next((c.axes for c in records if c.role == "synced_statistics"), None)
        schema = node.target._schema
        position = [0]
        tensor_inputs: List[torch.fx.Node] = []

        def convert(value):
            if isinstance(value, torch.fx.Node):
                pos = position[0]
                position[0] += 1
                want = Spec.parse(ns["inputs"][pos])
                producer = value.args[0] if value.target is operator.getitem else value
                index = value.args[1] if value.target is operator.getitem else 0
                shape = self.global_shape(self.alias_of.get(producer.name, producer.name), index)
                src = self.spec_of[value]
                if (value.op == "placeholder" and value.name in self.buffers and src != want
                        and all(not a for a in src.dims) and all(b == 1 for b in want.blocks)):
                    # a replicated buffer read in pieces: slice views, so that
                    # in-place updates reach the buffer
                    local = self.call(local_ops.view_local, self.env[value], want.pieces(self.mesh))
                    self.buffer_views.append((value.name, want.to_string()))
                else:
                    local = self.reshard(self.env[value], src, want, shape)
                    if writes[0] and local is not self.env[value]:
                        self._refuse_lost_write(node, value, src, want)
                if pos in grad_reduce:
                    local = self.call(torch.ops.alpa.grad_all_reduce, local, self.group(grad_reduce[pos]))
                tensor_inputs.append(local)
                return local
            if isinstance(value, (list, tuple)) and any(isinstance(v, torch.fx.Node) for v in value):
                return type(value)(None if v is None else convert(v) for v in value)
            return value

        args, kwargs = [], {}
        writes = [False]  # the argument being converted is written in place
        for arg, value in schema_arguments(node):
            writes[0] = arg.alias_info is not None and arg.alias_info.is_write
            value = convert(value)
            if arg.kwarg_only:
                kwargs[arg.name] = value
            else:
                args.append(value)
        base = node.target._opname
        out_specs = [Spec.parse(s) for s in ns["outputs"]]
        out_shapes = [list(o[0]) for o in self.nodes[name].outputs]
        self._localize_sizes(base, schema, args, kwargs, out_specs, out_shapes)
        if base == EXPERTS_OP:
            result = self._moe_experts(node, args, ns, partial_axes)
        elif partial_axes is not None and base == "embedding":
            result = self._vocab_parallel_embedding(args, ns, partial_axes, node)
        elif sync_axes is not None and "batch_norm" in base:
            result = self._sync_batch_norm(args, node, sync_axes)
        elif partial_axes is not None:
            target = node.target
            if base in expert_ops.GROUPED_MM and Spec.parse(ns["inputs"][1]).dims[0]:
                # experts split: this rank's rows only (alpa_torch/emit/experts.py)
                piece = Spec.parse(ns["inputs"][1]).pieces(self.mesh)[0][0]
                target, args = expert_ops.grouped_mm_experts, [node.target] + list(args) + [piece]
            result = self._partial_sum_op(target, base, args, kwargs, partial_axes, len(out_specs))
            if _is_mean(base, node):
                # local means summed over the group: divide by the piece count
                pieces = math.prod(self.mesh.shape[a] for a in partial_axes)
                result = self.call(torch.ops.aten.div.Tensor, result, float(pieces))
        else:
            result = self.graph.call_function(node.target, tuple(args), kwargs)
        if base in _FACTORIES and not node.all_input_nodes:
            pieces = out_specs[0].pieces(self.mesh)
            if any(count > 1 for _, count, _ in pieces):
                result = self.call(local_ops.take_local, result, pieces)
        self.env[node] = result
        self.spec_of[node] = out_specs[0]

    def _localize_sizes(self, base, schema, args, kwargs, out_specs, out_shapes):
        names = [a.name for a in schema.arguments]

        def set_arg(key, value):
            i = names.index(key)
            if schema.arguments[i].kwarg_only:
                kwargs[key] = value
            else:
                args[i] = value

        local0 = local_shape(out_shapes[0], out_specs[0], self.mesh) if out_shapes else None
        if base in _SIZE_ARGS and _SIZE_ARGS[base] in names and base not in _FACTORIES:
            set_arg(_SIZE_ARGS[base], local0)
        elif base in ("split", "split_with_sizes") and "dim" in names:
            # every piece has the input's rank, so the output rank normalises `dim`
            dim = args[names.index("dim")] % len(out_shapes[0])
            sizes = [local_shape(s, sp, self.mesh)[dim] for s, sp in zip(out_shapes, out_specs)]
            if base == "split":
                set_arg("split_size", sizes[0])
            else:
                set_arg("split_sizes", sizes)
        elif base == "unflatten" and "sizes" in names:
            # `dim` counts in the INPUT's rank: the output has count - 1 more dims
            count = len(args[names.index("sizes")])
            dim = args[names.index("dim")] % (len(out_shapes[0]) - count + 1)
            set_arg("sizes", local0[dim:dim + count])

    @staticmethod
    def _refuse_lost_write(node, value, src: Spec, want: Spec):
        """An in-place op that would write into a resharded copy: later
        readers of `value` (or of views of it) would miss the write.
        (capture turns the in-place ops nobody can observe into functional
        ones; what is left here writes through views.)"""
        raise NotImplementedError(
            f"node {node.name} ({node.target}) writes in place into {value.name}, which the plan "
            f"lays out as {src.to_string() or 'a scalar'} but the op reads as "
            f"{want.to_string()}: the write would land in a copy and later readers of "
            f"{value.name} (or of its views) would miss it. Fix: write the model without the "
            f"in-place update (e.g. torch.cat or torch.where instead of assigning into a slice); "
            f"alpa_torch makes an in-place update functional by itself when no view of the value "
            f"is read after it")

    def _moe_experts(self, node, args, ns, partial_axes):
        """An experts layer (alpa_torch/emit/experts.py): tokens split on the
        axes that also split the experts are exchanged by all-to-all; experts
        split on other axes leave partial sums."""
        hidden, index, weights, params, path = args
        entry = self.experts.get(path)
        if entry is None:
            raise RuntimeError(
                f"node {node.name} runs the experts module {path!r}, which the captured model "
                f"does not have; capture the model you parallelize")
        expert_spec = Spec.parse(ns["inputs"][3])
        tokens, experts = Spec.parse(ns["inputs"][0]).dims[0], expert_spec.dims[0]
        piece, count, _ = expert_spec.pieces(self.mesh)[0]
        exchange = experts if experts and set(experts) <= set(tokens) else []
        if (experts and not exchange and set(experts) & set(tokens)) or exchange != sorted(exchange):
            raise NotImplementedError(
                f"node {node.name}: experts split over mesh axes {experts} with tokens over "
                f"{tokens}; alpa_torch exchanges tokens over whole expert axes only")
        group = self.group(exchange) if exchange else None

        def moe_experts_local(hidden, index, weights, params):
            return expert_ops.moe_experts_local(entry, hidden, index, weights, params, piece=piece,
                                                count=count, group=group, node=node.name)

        out = self.call(moe_experts_local, hidden, index, weights, params)
        if partial_axes is not None:
            out = self.call(torch.ops.alpa.all_reduce, out, self.group(partial_axes))
        return out

    def _partial_sum_op(self, target, base, args, kwargs, axes, num_outputs):
        g = self.group(axes)
        bias = None
        if base in ("addmm", "baddbmm"):
            bias, args = args[0], args[1:3]
            target = torch.ops.aten.mm.default if base == "addmm" else torch.ops.aten.bmm.default
            kwargs = {}
        elif base == "linear" and len(args) > 2 and args[2] is not None:
            bias, args = args[2], [args[0], args[1], None]
        elif base in ("convolution", "conv2d", "conv1d", "conv3d") and args[2] is not None:
            bias, args = args[2], [args[0], args[1], None] + list(args[3:])
        out = self.graph.call_function(target, tuple(args), kwargs)
        if num_outputs == 1:
            out = self.call(torch.ops.alpa.all_reduce, out, g)
        else:
            parts = [self.call(torch.ops.alpa.all_reduce, self.call(operator.getitem, out, i), g)
                     for i in range(num_outputs)]
            out = self.call(tuple, parts)
        if bias is not None:
            if base.startswith("conv"):
                bias = self.call(_bias_to_rank, bias, out)
            out = self.call(torch.ops.aten.add.Tensor, out, bias)
        return out

    def _vocab_parallel_embedding(self, args, ns, axes, node):
        weight_spec = Spec.parse(ns["inputs"][0])
        index, count, _ = weight_spec.pieces(self.mesh)[0]
        vocab = self.global_shape(self.alias_of.get(node.args[0].name, node.args[0].name))[0]
        padding_idx = local_padding_idx(args[2] if len(args) > 2 else -1, index, vocab // count)
        if len(args) > 3 and args[3]:
            raise NotImplementedError(
                f"embedding node '{node.name}' has scale_grad_by_freq=True and the plan splits its "
                f"table by rows, so no rank sees every index's count; build the nn.Embedding with "
                f"scale_grad_by_freq=False, or pin its weight to a layout that keeps rows whole "
                f"(plan_overrides={{'<weight fqn>': 'RS0'}} or 'RR')")
        return self.call(local_ops.vocab_parallel_embedding, args[0], args[1], index,
                         self.group(axes), padding_idx)

    def _sync_batch_norm(self, args, node, axes):
        x_name = node.args[0].name
        shape = self.global_shape(x_name)
        total = math.prod(shape) // shape[1]
        x, weight, bias, rmean, rvar, training, momentum, eps = args[:8]
        return self.call(local_ops.sync_batch_norm, x, weight, bias, rmean, rvar, training,
                         momentum, eps, self.group(axes), total)

    def finish(self, out_specs, out_shapes) -> LocalProgram:
        """The emitted graph (outputs set) as a LocalProgram: parameter
        gradients bucketed, linted, wrapped in a GraphModule."""
        bucket_parameter_gradients(self.graph, set(self.alias_of))
        self.graph.lint()
        module = torch.fx.GraphModule(torch.nn.Module(), self.graph)
        placeholder_specs = {n.name: s.to_string() for n, s in self.spec_of.items()
                             if n.op == "placeholder"}
        return LocalProgram(module, placeholder_specs, out_specs, out_shapes)

    def build(self) -> LocalProgram:
        outputs: List[Any] = []
        out_specs: List[Optional[str]] = []
        out_shapes: List[Optional[List[int]]] = []
        for node in self.ep.graph.nodes:
            if node.op == "placeholder":
                self.placeholder(node)
            elif node.op == "call_function" and node.target is operator.getitem:
                self.getitem(node)
            elif node.op == "call_function":
                if node.name not in self.specs:
                    continue  # assertion-like ops without outputs: nothing to run
                self.op(node)
            elif node.op == "output":
                for value in node.args[0]:
                    if isinstance(value, torch.fx.Node):
                        outputs.append(self.env[value])
                        producer = value.args[0] if value.target is operator.getitem else value
                        index = value.args[1] if value.target is operator.getitem else 0
                        out_specs.append(self.spec_of[value].to_string())
                        out_shapes.append(self.global_shape(self.alias_of.get(producer.name, producer.name), index))
                    else:
                        outputs.append(value)
                        out_specs.append(None)
                        out_shapes.append(None)
                self.graph.output(tuple(outputs))
        program = self.finish(out_specs, out_shapes)
        # original node name -> (local node name, its spec), for debugging tools
        program.value_map = {n.name: (v.name, self.spec_of[n].to_string())
                             for n, v in self.env.items() if n in self.spec_of}
        # replicated buffers that ops update in pieces: re-gathered after each run
        program.buffer_views = self.buffer_views
        return program


BUCKET_BYTES = 25 * 2**20  # as DDP's default bucket


def bucket_parameter_gradients(graph: torch.fx.Graph, parameters: set) -> None:
    """Fuse the gradient all-reduces of parameters read directly (data
    parallelism: one grad_all_reduce per parameter use) into one
    grad_all_reduce_bucket per group and dtype, at most BUCKET_BYTES each,
    so backward synchronises the group once instead of once per parameter.

        before                              after
        %a = grad_all_reduce(%w1, g)        %b = grad_all_reduce_bucket([%w1, %w2], g)
        %c = grad_all_reduce(%w2, g)        %a = %b[0]; %c = %b[1]
    """
    uses: Dict[Tuple[str, Any], Dict[torch.fx.Node, List[torch.fx.Node]]] = {}
    last_placeholder = None
    for node in graph.nodes:
        if node.op == "placeholder":
            last_placeholder = node
        elif (node.op == "call_function" and node.target is torch.ops.alpa.grad_all_reduce
              and isinstance(node.args[0], torch.fx.Node) and node.args[0].op == "placeholder"
              and node.args[0].name in parameters):
            param, group = node.args
            val = param.meta.get("val")
            key = (group, getattr(val, "dtype", None))
            uses.setdefault(key, {}).setdefault(param, []).append(node)
    if last_placeholder is None:
        return
    anchor = last_placeholder
    for (group, _), by_param in uses.items():
        buckets: List[List[torch.fx.Node]] = [[]]
        size = 0
        for param in by_param:
            val = param.meta.get("val")
            nbytes = val.numel() * val.element_size() if val is not None else 0
            if buckets[-1] and size + nbytes > BUCKET_BYTES:
                buckets.append([])
                size = 0
            buckets[-1].append(param)
            size += nbytes
        for params in buckets:
            with graph.inserting_after(anchor):
                fused = graph.call_function(torch.ops.alpa.grad_all_reduce_bucket, (params, group))
            anchor = fused
            for i, param in enumerate(params):
                with graph.inserting_after(anchor):
                    item = graph.call_function(operator.getitem, (fused, i))
                anchor = item
                for node in by_param[param]:
                    node.replace_all_uses_with(item)
                    graph.erase_node(node)


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


def _is_mean(base: str, node) -> bool:
    """Reductions that average: summing local averages needs a division."""
    if base == "mean":
        return True
    if base in ("cross_entropy_loss", "nll_loss", "nll_loss_forward", "mse_loss", "cross_entropy"):
        schema = node.target._schema
        names = [a.name for a in schema.arguments]
        if "reduction" in names:
            i = names.index("reduction")
            value = node.args[i] if i < len(node.args) else node.kwargs.get(
                "reduction", schema.arguments[i].default_value)
            return value == 1  # Reduction::Mean
    return False


def _bias_to_rank(bias: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return bias.reshape([1, -1] + [1] * (like.dim() - 2))


def build_local_program(exported, captured, stage, mesh: MeshCoords) -> LocalProgram:
    """This rank's program for a single-stage plan."""
    return Rewriter(exported, captured, stage, mesh).build()
