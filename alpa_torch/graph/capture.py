"""Capture: a PyTorch module becomes the planner's ATen-level graph.

We trace with ``torch.export`` (the training IR, so ops such as ``linear``,
``layer_norm`` and ``scaled_dot_product_attention`` stay whole and the
planner sees the structure it shards), then hand the result to C++ in the
versioned JSON form that ``save``/``load`` also use. The C++ side verifies
the graph (topological order, shapes) and computes per-node FLOPs.
"""
from __future__ import annotations

import inspect
import math
import operator
import os
import traceback
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.fx

from alpa_torch import _C
from alpa_torch.errors import CaptureError
from alpa_torch.graph import json_numbers
from alpa_torch.graph.experts import experts_as_ops

__all__ = ["GRAPH_FORMAT", "GRAPH_VERSION", "LayerSummary", "CapturedGraph", "layer_of", "load",
           "capture", "functionalize_safe_inplace", "training_kwargs", "with_added_kwargs",
           "schema_arguments"]

GRAPH_FORMAT = "alpa_torch.graph"
GRAPH_VERSION = 1


@dataclass
class LayerSummary:
    """Ops, parameter elements and forward FLOPs of one layer of a graph."""

    name: str
    num_ops: int
    num_params: int
    flops: float


class CapturedGraph:
    """A captured model: the C++ graph plus what Python needs to run it.

    ``graph`` is the planner's ``alpa_torch._C.Graph``; ``exported`` is the
    ``torch.export.ExportedProgram`` it came from (None after ``load``).
    """

    def __init__(self, graph: "_C.Graph", exported=None):
        self.graph = graph
        self.exported = exported
        # keyword arguments capture added to the forward (use_cache=False):
        # the parallel runners pass them too, plan() explains them in notes
        self.added_kwargs: Dict[str, Any] = {}
        # experts modules captured as one alpa.moe_experts op each:
        # {module path: (module, parameter names)} (alpa_torch/graph/experts.py)
        self.experts: Dict[str, Any] = {}
        self.notes: List[str] = []

    # -- persistence -------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write the versioned JSON form (read back by ``alpa_torch.load``)."""
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.graph.to_json(1))
            f.write("\n")

    def to_json(self) -> str:
        return self.graph.to_json()

    def to_text(self) -> str:
        """Human-readable form, one node per line."""
        return self.graph.to_text()

    # -- queries -----------------------------------------------------------
    @property
    def name(self) -> str:
        return self.graph.name

    @property
    def nodes(self):
        return self.graph.nodes

    def param_fqns(self) -> List[str]:
        """Parameter FQNs, as in ``module.named_parameters()``."""
        return [n.target for n in self.graph.nodes if n.kind == "parameter"]

    def total_flops(self, categories: Optional[Sequence[str]] = None) -> float:
        """Forward FLOPs, optionally only of the given op categories
        (``"matmul"``, ``"convolution"``, ``"attention"``, ...)."""
        return float(sum(n.flops for n in self.graph.nodes
                         if categories is None or n.category in categories))

    def layers(self) -> List[LayerSummary]:
        """Per-layer totals, layers in order of first appearance."""
        order: Dict[str, LayerSummary] = {}

        def entry(name: str) -> LayerSummary:
            if name not in order:
                order[name] = LayerSummary(name, 0, 0, 0.0)
            return order[name]

        for n in self.graph.nodes:
            if n.kind == "parameter":
                numel = 1
                for d in n.outputs[0][0]:
                    numel *= d
                entry(layer_of(n.target.rsplit(".", 1)[0] if "." in n.target else "")).num_params += numel
            elif n.kind == "op":
                s = entry(layer_of(n.module))
                s.num_ops += 1
                s.flops += n.flops
        return list(order.values())

    def summary(self) -> str:
        """A per-layer table: ops, parameters, forward FLOPs."""
        rows = self.layers()
        width = max([len("layer")] + [len(r.name) for r in rows])
        lines = [f"graph {self.name}: {self.graph.num_nodes} nodes, "
                 f"{sum(r.num_params for r in rows):,} parameters, "
                 f"{self.total_flops() / 1e9:.3f} GFLOP forward",
                 f"{'layer':<{width}}  {'ops':>5}  {'params':>12}  {'MFLOP':>12}"]
        for r in rows:
            lines.append(f"{r.name:<{width}}  {r.num_ops:>5}  {r.num_params:>12,}  "
                         f"{r.flops / 1e6:>12.3f}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<CapturedGraph {self.name!r}: {self.graph.num_nodes} nodes>"


def layer_of(module_path: str) -> str:
    """Layer name of a module path: the path up to its first list index
    (``transformer.h.3.attn`` -> ``transformer.h.3``), else the path itself."""
    if not module_path:
        return "(root)"
    parts = module_path.split(".")
    for i, p in enumerate(parts):
        if p.isdigit():
            return ".".join(parts[: i + 1])
    return module_path


def load(path: str | os.PathLike) -> CapturedGraph:
    """Read a graph written by ``CapturedGraph.save`` (verified on load)."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"no graph file at {os.fspath(path)!r}; write one with "
            f"alpa_torch.capture(model, args).save(path)") from None
    if not text.strip():
        raise ValueError(f"graph file {os.fspath(path)!r} is empty; re-save it "
                         f"with alpa_torch.capture(model, args).save(path)")
    try:
        return CapturedGraph(_C.Graph.from_json(text))
    except ValueError as e:
        raise ValueError(f"cannot read graph file {os.fspath(path)!r}: {e}") from None


def capture(module: torch.nn.Module, example_args: Any = (),
            example_kwargs: Optional[Dict[str, Any]] = None, *,
            name: Optional[str] = None) -> CapturedGraph:
    """Capture ``module(*example_args, **example_kwargs)`` as an ATen graph.

    Shapes are those of the example inputs (static). Parameters keep the FQNs
    of ``module.named_parameters()``. Raises ``CaptureError`` naming the
    module/op when the model cannot be traced, and ``TypeError`` for
    arguments of the wrong type.
    """
    args, kwargs = _check_arguments(module, example_args, example_kwargs)
    added = training_kwargs(module, args, kwargs)
    with experts_as_ops(module) as experts:
        exported = _export(module, args, {**kwargs, **added})
    functionalize_safe_inplace(exported.graph)
    doc = _GraphConverter(exported, module, name or type(module).__name__).convert()
    graph = _C.Graph.from_json(json_numbers.dumps(doc), annotate_flops=True)
    captured = CapturedGraph(graph, exported)
    captured.added_kwargs = added
    captured.experts = experts
    if added:
        captured.notes.append(
            f"capture passed use_cache=False to {type(module).__name__}.forward (its default "
            f"builds a key/value cache, which training does not read); the parallel model "
            f"passes it on every call too. Pass use_cache explicitly to decide otherwise")
    return captured


def _aliases_input(target) -> bool:
    """The op returns a view of (or writes into) an input."""
    schema = getattr(target, "_schema", None)
    return schema is not None and any(r.alias_info is not None for r in schema.returns)


def functionalize_safe_inplace(graph: torch.fx.Graph) -> int:
    """Turns in-place ATen ops on intermediate values (``x.div_(s)``) into
    their functional twins (``div``) where no one can see the difference:
    `x` is computed in the graph (not an input or buffer), is not itself a
    view (the write would reach its base), and no other node reads `x` or
    a view of it after the op (torch.export rebinds later reads to the op's
    result). The planner then has the op's rule, and a resharded `x` cannot
    lose the write. Returns how many ops changed."""
    order = {n: i for i, n in enumerate(graph.nodes)}
    changed = 0
    for node in list(graph.nodes):
        target = node.target
        if node.op != "call_function" or not isinstance(target, torch._ops.OpOverload):
            continue
        schema = target._schema
        if not (schema.arguments and schema.arguments[0].alias_info is not None
                and schema.arguments[0].alias_info.is_write and target._opname.endswith("_")):
            continue
        x = node.args[0] if node.args else None
        if not isinstance(x, torch.fx.Node) or x.op != "call_function" or _aliases_input(x.target):
            continue
        if any(u is not node and (order[u] > order[node] or _aliases_input(u.target)) for u in x.users):
            continue
        packet = getattr(torch.ops.aten, target._opname[:-1], None)
        functional = getattr(packet, target._overloadname, None) if packet is not None else None
        if functional is None or functional._schema.is_mutable:
            continue
        node.target = functional
        changed += 1
    return changed


def training_kwargs(module: torch.nn.Module, args: tuple, kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """Keyword arguments to add so that forward computes what training needs:
    ``use_cache=False`` for a forward that takes ``use_cache`` (Hugging Face
    models, whose configs default it to True and whose cache object
    torch.export cannot return) when the caller passed none."""
    try:
        params = inspect.signature(module.forward).parameters
    except (TypeError, ValueError):
        return {}
    names = list(params)
    if "use_cache" not in params or "use_cache" in kwargs:
        return {}
    p = params["use_cache"]
    if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and names.index("use_cache") < len(args):
        return {}  # passed positionally
    return {"use_cache": False}


def with_added_kwargs(kwargs: Dict[str, Any], added: Dict[str, Any]) -> Dict[str, Any]:
    """A call's kwargs with capture's additions where the caller passed none."""
    return {**added, **kwargs} if added else kwargs


# ---- argument checks ---------------------------------------------------------

def _check_arguments(module, example_args, example_kwargs):
    if not isinstance(module, torch.nn.Module):
        raise TypeError(
            f"capture() expects a torch.nn.Module, got {type(module).__name__}; "
            f"wrap a function in an nn.Module whose forward calls it")
    if isinstance(example_args, torch.Tensor):
        example_args = (example_args,)
    if isinstance(example_args, list):
        example_args = tuple(example_args)
    if not isinstance(example_args, tuple):
        raise TypeError(
            f"example_args must be a tuple of the forward's positional arguments "
            f"(or one tensor), got {type(example_args).__name__}")
    if example_kwargs is None:
        example_kwargs = {}
    if not isinstance(example_kwargs, dict):
        raise TypeError(
            f"example_kwargs must be a dict of keyword arguments or None, got "
            f"{type(example_kwargs).__name__}")
    return example_args, example_kwargs


# ---- export ------------------------------------------------------------------

_DATA_DEPENDENT_MARKERS = (
    "data-dependent", "data dependent", "GuardOnDataDependentSymNode",
    "Could not guard on", "Could not extract specialized integer",
)


def _user_frame(exc: BaseException) -> str:
    """Innermost traceback frame outside torch: where the model code failed."""
    best = ""
    for frame in traceback.extract_tb(exc.__traceback__):
        path = frame.filename.replace("\\", "/")
        if "/torch/" in path or "/alpa_torch/" in path or "<" in path:
            continue
        best = f"{frame.filename}:{frame.lineno} ({frame.name}: {frame.line})"
    return best


def _export(module, args, kwargs):
    try:
        return torch.export.export(module, args, kwargs, strict=False)
    except Exception as e:  # noqa: BLE001 -- re-raised with the cause named
        message = str(e)
        first = message.strip().splitlines()[0] if message.strip() else type(e).__name__
        where = _user_frame(e)
        location = f" at {where}" if where else ""
        model = type(module).__name__
        if any(m in message for m in _DATA_DEPENDENT_MARKERS):
            raise CaptureError(
                f"cannot capture {model}: its forward has data-dependent control "
                f"flow{location} (a Python branch or shape that depends on tensor "
                f"values: {first}). Fix: express it with tensor ops (torch.where, "
                f"masking, torch.cond), or make the value a constant of the "
                f"example inputs; or use torch.compile(model, backend='alpa'), "
                f"which plans each graph between breaks.") from e
        if "DynamicCache" in message or "Cache" in message and "pytree" in message:
            raise CaptureError(
                f"cannot capture {model}: its forward returns a key/value cache "
                f"object{location}. Fix: build the model with use_cache=False "
                f"(e.g. GPT2Config(..., use_cache=False)) or pass use_cache=False "
                f"in example_kwargs.") from e
        raise CaptureError(
            f"cannot capture {model} with torch.export{location}: "
            f"{type(e).__name__}: {first}. Fix: make forward traceable by "
            f"torch.export (no data-dependent Python control flow, tensor or "
            f"pytree outputs), or use torch.compile(model, backend='alpa').") from e


# ---- conversion to the versioned JSON form -------------------------------------

def _meta_json(value, where: str) -> Dict[str, Any]:
    if isinstance(value, torch.Tensor):
        shape = []
        for d in value.shape:
            if not isinstance(d, int):
                try:
                    d = int(d)
                except Exception:  # noqa: BLE001
                    raise CaptureError(
                        f"{where} has a symbolic dim {d}; capture uses static "
                        f"shapes: pass example inputs of the real size") from None
            shape.append(d)
        return {"shape": shape, "dtype": str(value.dtype).replace("torch.", "")}
    if value is None:
        return {"shape": [0], "dtype": "float32"}  # absent optional output
    raise CaptureError(f"{where} produces a {type(value).__name__}, not a tensor")


def schema_arguments(node: torch.fx.Node):
    """(schema argument, value) for every argument of an ATen call, in
    schema order, defaults filled in. Capture and rewrite walk the same
    order, so a node's k-th tensor argument is its k-th input in the IR."""
    for i, arg in enumerate(node.target._schema.arguments):
        if not arg.kwarg_only and i < len(node.args):
            value = node.args[i]
        elif arg.name in node.kwargs:
            value = node.kwargs[arg.name]
        elif arg.has_default_value():
            value = arg.default_value
        else:
            value = None
        yield arg, value


def _module_path(node: torch.fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    path = list(stack.values())[-1][0]
    return path if isinstance(path, str) else ""


class _GraphConverter:
    """Walks the exported FX graph and emits the versioned JSON document."""

    def __init__(self, exported, module, name):
        self.ep = exported
        self.module = module
        self.name = name
        self.nodes: List[Dict[str, Any]] = []
        self.refs: Dict[torch.fx.Node, Tuple[int, int]] = {}
        self.names: set = set()
        self.requires_grad = {n: p.requires_grad for n, p in module.named_parameters()}
        # Tied parameters (GPT-2's lm_head.weight is transformer.wte.weight)
        # are lifted twice by torch.export; they become one node named by the
        # FQN that module.named_parameters() reports, the other names listed
        # in its "aliases" attribute.
        self.param_ids = {id(p): n for n, p in module.named_parameters()}
        self.param_nodes: Dict[int, Dict[str, Any]] = {}

    def convert(self) -> Dict[str, Any]:
        specs = {s.arg.name: s for s in self.ep.graph_signature.input_specs
                 if hasattr(s.arg, "name")}
        outputs = []
        for node in self.ep.graph.nodes:
            if node.op == "placeholder":
                self._placeholder(node, specs.get(node.name))
            elif node.op == "call_function":
                self._call(node)
            elif node.op == "output":
                outputs = self._outputs(node)
            else:
                raise CaptureError(f"unexpected FX node kind {node.op!r} ({node.name})")
        return {"format": GRAPH_FORMAT, "version": GRAPH_VERSION, "name": self.name,
                "nodes": self.nodes, "outputs": outputs}

    def _add(self, node, entry) -> int:
        entry["id"] = len(self.nodes)
        entry["name"] = node.name
        entry.setdefault("inputs", [])
        entry.setdefault("attrs", {})
        entry["flops"] = 0.0
        entry.setdefault("module", "")
        entry.setdefault("requires_grad", False)
        self.nodes.append(entry)
        return entry["id"]

    def _placeholder(self, node, spec):
        val = node.meta.get("val")
        if not isinstance(val, torch.Tensor):
            return  # non-tensor inputs are specialized into the graph
        from torch.export.graph_signature import InputKind
        kind, target, grad = "input", node.name, False
        if spec is not None:
            if spec.kind == InputKind.PARAMETER:
                kind, target = "parameter", spec.target
                key = id(self.module.get_parameter(spec.target))
                if key in self.param_nodes:  # a tied alias of a lifted parameter
                    entry = self.param_nodes[key]
                    aliases = entry["attrs"].get("aliases")
                    entry["attrs"]["aliases"] = f"{aliases},{target}" if aliases else target
                    self.refs[node] = (entry["id"], 0)
                    return
                target = self.param_ids.get(key, spec.target)
                grad = self.requires_grad.get(target, True)
            elif spec.kind == InputKind.BUFFER:
                kind, target = "buffer", spec.target
            elif spec.kind == InputKind.CONSTANT_TENSOR:
                kind, target = "constant", spec.target
            elif spec.kind == InputKind.USER_INPUT:
                grad = bool(val.requires_grad)
            else:
                raise CaptureError(
                    f"input {node.name!r} is a {spec.kind.name}, which alpa_torch "
                    f"does not support; remove it from the model's forward")
        entry = {"kind": kind, "target": target,
                 "outputs": [_meta_json(val, node.name)], "requires_grad": grad}
        nid = self._add(node, entry)
        if kind == "parameter":
            self.param_nodes[id(self.module.get_parameter(spec.target))] = entry
        self.refs[node] = (nid, 0)

    def _where(self, node) -> str:
        path = _module_path(node)
        return f"op {node.target} (node {node.name}" + (f", module {path!r})" if path else ")")

    def _call(self, node):
        target = node.target
        if target is operator.getitem:
            src, idx = node.args
            if src not in self.refs:
                raise CaptureError(f"getitem on a non-tensor value in {self._where(node)}")
            self.refs[node] = (self.refs[src][0], int(idx))
            return
        if not isinstance(target, torch._ops.OpOverload):
            raise CaptureError(
                f"cannot capture {self._where(node)}: it is not an ATen op "
                f"(higher-order or Python call). Fix: remove torch.cond/"
                f"checkpoint wrappers or use torch.compile(model, backend='alpa').")
        val = node.meta.get("val")
        if val is None or (isinstance(val, (tuple, list)) and
                           not any(isinstance(v, torch.Tensor) for v in val)):
            if node.users:
                raise CaptureError(f"{self._where(node)} produces no tensor but is used")
            return  # assertion-like op without outputs
        if isinstance(val, (tuple, list)):
            metas = [_meta_json(v, self._where(node)) for v in val]
        elif isinstance(val, torch.Tensor):
            metas = [_meta_json(val, self._where(node))]
        else:
            raise CaptureError(
                f"{self._where(node)} produces a {type(val).__name__} (a value "
                f"computed from tensor data at trace time); alpa_torch needs "
                f"static shapes: avoid .item()/.tolist() on tensors in forward")
        inputs: List[List[int]] = []
        attrs: Dict[str, Any] = {}
        for arg, value in schema_arguments(node):
            attrs[arg.name] = self._attr(value, inputs, node)
        op = f"{target.namespace}.{target._opname}.{target._overloadname}"
        nid = self._add(node, {"kind": "op", "op": op, "inputs": inputs,
                               "attrs": attrs, "outputs": metas,
                               "module": _module_path(node)})
        self.refs[node] = (nid, 0)

    def _tensor(self, value, inputs, node) -> int:
        if value not in self.refs:
            raise CaptureError(
                f"{self._where(node)} takes {value.name}, which is not a tensor "
                f"alpa_torch captured")
        inputs.append(list(self.refs[value]))
        return len(inputs) - 1

    def _attr(self, value, inputs, node):
        if isinstance(value, torch.fx.Node):
            return {"input": self._tensor(value, inputs, node)}
        if isinstance(value, (list, tuple)):
            if any(isinstance(v, torch.fx.Node) for v in value):
                return {"inputs": [-1 if v is None else self._tensor(v, inputs, node)
                                   for v in value]}
            if all(isinstance(v, (bool, int)) for v in value):
                return [int(v) for v in value]
            if all(isinstance(v, (bool, int, float)) for v in value):
                return {"floats": [json_numbers.number_json(float(v)) for v in value]}
            return str(list(value))
        if isinstance(value, float) and not math.isfinite(value):
            return {"float": json_numbers.number_json(value)}  # a bare "NaN" is a string
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, torch.dtype):
            return str(value).replace("torch.", "")
        return str(value)  # device, layout, memory_format

    def _outputs(self, node):
        from torch.export.graph_signature import OutputKind
        values = node.args[0]
        if not isinstance(values, (list, tuple)):
            values = [values]
        specs = self.ep.graph_signature.output_specs
        result = []
        for value, spec in zip(values, specs):
            if not isinstance(value, torch.fx.Node) or value not in self.refs:
                continue  # a non-tensor output (None, a constant)
            ref = list(self.refs[value])
            if spec.kind == OutputKind.USER_OUTPUT:
                result.append({"value": ref, "role": "user_output"})
            elif spec.kind == OutputKind.BUFFER_MUTATION:
                result.append({"value": ref, "role": "buffer_mutation",
                               "target": spec.target})
            else:
                raise CaptureError(
                    f"the model's forward performs a {spec.kind.name} on "
                    f"{spec.target!r}, which alpa_torch does not support; avoid "
                    f"in-place updates of inputs in forward")
        if not result:
            raise CaptureError("the model's forward returns no tensor; return the "
                               "output (or loss) tensor")
        return result
