"""``torch.compile(model, backend="alpa")``: Alpa's plan for every graph Dynamo captures.

Registered through the ``torch_dynamo_backends`` entry point (setup.py), so
``backend="alpa"`` works without importing alpa_torch first. Options come as
``torch.compile(model, backend="alpa", options={...})``: ``mesh_shape``,
``timeout`` and any option of ``alpa_torch.plan`` (``cost_mode``,
``memory_budget``, ``plan_overrides``, ``optimizer``, ...).

What happens to the model
-------------------------
Dynamo hands the backend an FX graph whose parameters are graph inputs. The
parameters must end up as DTensors (as ``parallelize`` leaves them) so that
the optimizer, ``clip_grad_norm_`` and ``state_dict()`` see the planned
layout, but Dynamo must never trace the model's Python with DTensor
parameters: DTensor rejects plain tensors mixed with DTensors, and its own
sharding rules know nothing of our plan. So the module the parameters
belong to (the *root*) is adopted the first time the backend sees it:

* its class is extended (as ``parallelize`` does) with a ``forward`` that
  Dynamo does not trace. That forward puts, for the duration of the call,
  each parameter's *placeholder* back into the module — the original
  ``nn.Parameter`` object, whose storage is released once its shard exists —
  and calls the original forward compiled by Dynamo with this backend (a
  copy of its code object, so that Dynamo's cache for it is our own);
* outside forward the module holds the DTensor shards: ``parameters()``,
  ``state_dict()`` and ``zero_grad()`` see DTensors, as after ``parallelize``;
* the frame being compiled when the root is adopted is run eagerly once
  (``SkipFrame``), which sends the first call through the new forward too.

Each graph is planned lazily, at its first call with a given signature (the
shapes of its tensor inputs and the values of its integer inputs), because
Dynamo recompiles a graph with symbolic sizes after a shape changes: plans
are cached by (graph fingerprint, mesh, options, pinned specs). Rank 0 plans
and broadcasts, as in ``parallelize``. A parameter read by a second graph
(a graph break inside the model) is pinned there to the layout its first
graph chose. Buffers stay whole on every rank (pinned replicated).

An optimizer built from ``model.parameters()`` before the first call holds
the placeholders; a global optimizer step pre-hook swaps them for their
DTensor shards (and shards any optimizer state already there) on its first
step.
"""
from __future__ import annotations

import copy
import datetime
import functools
import re
import types
import warnings
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.distributed as dist

from alpa_torch.runtime.mesh import DEFAULT_TIMEOUT, MeshGroups

__all__ = ["alpa_backend", "AlpaCompiledModule", "stats"]

# Dynamo's name of where it read a graph input: a frame variable, then
# subscripts and attributes, e.g. L['self']._modules['fc']._parameters['weight'],
# or L['args'][0]._modules['model']... when a decorator (transformers 5 wraps
# many forwards) is the frame being compiled.
_SCOPE = re.compile(r"^(?P<scope>[LG])\['(?P<name>[^']+)'\]")
_ACCESSOR = re.compile(r"\[(?P<index>-?\d+)\]|\['(?P<key>[^']*)'\]|\.(?P<attr>[A-Za-z_]\w*)")
_PLAN_ONLY_OPTIONS = ("cluster", "memory_budget", "cost_mode", "mesh_alpha", "mesh_beta",
                      "plan_overrides", "optimizer", "time_limit_s", "memory_gap",
                      "num_threads", "precision")
_OPTIONS = ("mesh_shape", "timeout") + _PLAN_ONLY_OPTIONS


def alpa_backend(gm: torch.fx.GraphModule, example_inputs: List[Any],
                 options: Optional[Dict[str, Any]] = None):
    """The Dynamo backend. Plans nothing yet: returns a callable that plans
    each signature of ``gm`` at its first call (see the module docstring)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        opts = _check_options(options)
        _warn_graph_breaks()
        if dist.is_available() and dist.is_initialized():
            _mesh_shape(opts)  # a mesh of more than one device is an error
        return _single_process(gm, opts)
    opts = _agreed_options(options)
    broke = _warn_graph_breaks()
    roots = _unadopted_roots(gm, example_inputs)
    states = [_adopt(root, opts) for root in roots]
    if len(states) == 1 and not broke:
        # The graph is the whole frame: it runs sharded now, and the shards
        # go into the module when it returns.
        return _CompiledGraph(gm, opts, states[0], install_shards=True)
    if states:
        # A graph break follows (or several modules): later graphs of this
        # frame would be traced with DTensor parameters. Run the frame
        # eagerly once instead; the next call goes through the adopted forward.
        raise torch._dynamo.exc.SkipFrame("alpa_torch adopted the model's parameters")
    return _CompiledGraph(gm, opts, None)


# ---- options --------------------------------------------------------------------

def _check_options(options) -> Dict[str, Any]:
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise TypeError(f"torch.compile(backend='alpa', options=...) takes a dict, got "
                        f"{type(options).__name__}")
    unknown = sorted(set(options) - set(_OPTIONS))
    if "method" in options and options["method"] != "intra_op":
        raise ValueError(
            "the alpa torch.compile backend plans each Dynamo graph on the whole mesh "
            "(intra-op); for pipeline parallelism use alpa_torch.parallelize(model, ..., "
            "method='pipeshard')")
    unknown = [k for k in unknown if k != "method"]
    if unknown:
        raise ValueError(f"unknown alpa backend option(s) {unknown}; known: {sorted(_OPTIONS)}")
    opts = dict(options)
    opts.pop("method", None)
    if "timeout" in opts and not isinstance(opts["timeout"], datetime.timedelta):
        opts["timeout"] = datetime.timedelta(seconds=float(opts["timeout"]))
    return opts


def _agreed_options(options) -> Dict[str, Any]:
    """The options, checked on every rank and checked to be the same on
    every rank (one all_gather_object per Dynamo compile; rank 0 plans for
    all): a rank's bad or different options raise on every rank."""
    from alpa_torch.runtime.agreement import agree_on_options
    opts, error = {}, None
    try:
        opts = _check_options(options)
        _mesh_shape(opts)
    except (TypeError, ValueError) as e:
        error = e
    agree_on_options(opts, error, opts.get("timeout", DEFAULT_TIMEOUT),
                     what="torch.compile(backend='alpa', options=...)")
    return opts


def _mesh_shape(opts) -> Tuple[int, int]:
    from alpa_torch.planning.planner import parse_mesh_shape
    world = dist.get_world_size()
    n0, n1 = parse_mesh_shape(opts.get("mesh_shape"), None)  # default (1, world)
    if n0 * n1 != world:
        raise ValueError(f"alpa backend option mesh_shape={opts['mesh_shape']!r} does not cover "
                         f"the job's {world} ranks; pass (n0, n1) with n0 * n1 = {world}")
    # the planner reads a one-axis mesh as (n, 1) (specs say S0 on it)
    return (n1, n0) if n0 == 1 else (n0, n1)


_meshes: Dict[Any, MeshGroups] = {}


def _mesh_groups(shape, opts) -> MeshGroups:
    """One set of process groups per (mesh, timeout): creating groups is
    collective, and every graph and module of the job shares them."""
    timeout = opts.get("timeout", DEFAULT_TIMEOUT)
    key = (tuple(shape), timeout)
    if key not in _meshes:
        _meshes[key] = MeshGroups(shape, timeout=timeout)
    return _meshes[key]


# ---- graph breaks ------------------------------------------------------------

_seen_breaks: Dict[str, int] = {}


def _warn_graph_breaks() -> bool:
    """Dynamo counts each graph break by its reason before compiling the
    graph that ends there: name the new ones. True if there was one."""
    from torch._dynamo.utils import counters
    broke = False
    for reason, count in list(counters["graph_break"].items()):
        if _seen_breaks.get(reason, 0) < count:
            _seen_breaks[reason] = count
            broke = True
            first = next((line.strip() for line in str(reason).splitlines() if line.strip()), "")
            warnings.warn(
                f"alpa: graph break ({first}); the graphs on either side are planned "
                f"separately, and values cross the break whole on every rank. Remove the "
                f"break to plan the model as one graph.", stacklevel=2)
    return broke


# ---- one process -------------------------------------------------------------------

_warned_single = False


def _single_process(gm, opts):
    """No process group (or one rank): the graph runs as is; the plan on one
    device shards nothing."""
    global _warned_single
    if not _warned_single:
        _warned_single = True
        warnings.warn("alpa: one process (torch.distributed not initialized or world size 1): "
                      "graphs run unsharded; launch with torchrun to shard them", stacklevel=3)
    return gm.forward


# ---- adoption of the module that owns the parameters -------------------------------

def _unadopted_roots(gm, example_inputs) -> List[torch.nn.Module]:
    """The modules (named by the graph's parameter sources) not yet adopted."""
    try:  # Dynamo internals: the frame being compiled
        from torch._dynamo.symbolic_convert import InstructionTranslator
        tx = InstructionTranslator.current_tx()
        f_locals, f_globals = tx.f_locals, tx.f_globals
    except (ImportError, AttributeError) as e:
        raise RuntimeError(
            f"alpa backend: this torch {torch.__version__} does not expose the frame Dynamo "
            f"is compiling ({e}); alpa_torch is tested with torch 2.13. Use "
            f"alpa_torch.parallelize(model, example_args) instead") from e
    roots: Dict[int, torch.nn.Module] = {}
    unowned: List[str] = []
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    for node, value in zip(placeholders, example_inputs):
        if not isinstance(value, torch.nn.Parameter):
            continue
        root = _root_module(_source_name(node), f_locals, f_globals)
        if root is None:
            unowned.append(_source_name(node) or node.name)
        elif not isinstance(root, AlpaCompiledModule):
            roots[id(root)] = root
    if unowned:
        warnings.warn(
            f"alpa backend: {len(unowned)} parameter(s) of this graph are not read through a "
            f"module of the frame being compiled (first: {unowned[0]}); they are planned as "
            f"inputs and stay whole on every rank, unsharded. Compile the module itself "
            f"(torch.compile(model, backend='alpa')) or use alpa_torch.parallelize(model, args)",
            stacklevel=2)
    return list(roots.values())


def _root_module(source: str, f_locals, f_globals) -> Optional[torch.nn.Module]:
    """The first module on the path `source` names (see _SCOPE), or None."""
    m = _SCOPE.match(source)
    if m is None:
        return None
    scope = f_locals if m.group("scope") == "L" else f_globals
    if m.group("name") not in scope:
        return None
    value, rest = scope[m.group("name")], source[m.end():]
    while not isinstance(value, torch.nn.Module):
        a = _ACCESSOR.match(rest)
        if a is None:
            return None
        rest = rest[a.end():]
        try:
            if a.group("index") is not None:
                value = value[int(a.group("index"))]
            elif a.group("key") is not None:
                value = value[a.group("key")]
            else:
                value = getattr(value, a.group("attr"))
        except (LookupError, TypeError, AttributeError):
            return None
    return value


class AlpaCompiledModule:
    """Mixin placed before the model's class when the alpa backend adopts it."""

    @torch._dynamo.disable
    def forward(self, *args, **kwargs):
        state: _RootState = self._alpa_compile
        state.install_placeholders()
        try:
            return state.compiled_forward(*args, **kwargs)
        finally:
            state.install_shards()

    def full_state_dict(self) -> Dict[str, torch.Tensor]:
        """Plain tensors equal to the single-process model's state_dict()."""
        from alpa_torch.runtime.parameters import full_state_dict
        return full_state_dict(self, self._alpa_compile.mesh)

    @property
    def alpa_plans(self):
        """The plan of each graph (and input signature) run so far, in order."""
        return list(self._alpa_compile.plans)


class _RootState:
    """An adopted module: its parameters, their shards and the compiled forward."""

    def __init__(self, root: torch.nn.Module, opts):
        self.root = root
        self.model_name = type(root).__name__
        self.opts = opts
        self.mesh_shape = _mesh_shape(opts)
        self.mesh = _mesh_groups(self.mesh_shape, opts)
        # placeholder id -> its FQN (tied parameters keep their first name)
        # and every (module, attribute) that holds it
        self.fqns: Dict[int, str] = {}
        self.owners: Dict[int, List[Tuple[torch.nn.Module, str]]] = {}
        for fqn, p in root.named_parameters(remove_duplicate=False):
            owner, _, leaf = fqn.rpartition(".")
            module = root.get_submodule(owner) if owner else root
            self.fqns.setdefault(id(p), fqn)
            self.owners.setdefault(id(p), []).append((module, leaf))
        self.placeholders: Dict[int, torch.nn.Parameter] = {
            id(p): p for p in root.parameters()}
        self.shards: Dict[int, torch.nn.Parameter] = {}  # placeholder id -> DTensor
        self.specs: Dict[str, str] = {}  # fqn -> spec of its shard
        self.plans: List[Any] = []
        self.compiled_forward = None
        from alpa_torch.runtime.local_params import LocalParameters
        self.local_params = LocalParameters()

    def install_placeholders(self) -> None:
        for key in self.shards:
            for module, leaf in self.owners[key]:
                module._parameters[leaf] = self.placeholders[key]

    def install_shards(self) -> None:
        for key, shard in self.shards.items():
            for module, leaf in self.owners[key]:
                module._parameters[leaf] = shard

    def shard(self, placeholder: torch.nn.Parameter, spec: str) -> torch.nn.Parameter:
        from alpa_torch.runtime.parameters import sharded_parameter
        key = id(placeholder)
        if key not in self.shards:
            fqn = self.fqns[key]
            dist.broadcast(placeholder.data, src=0)  # every rank starts from rank 0's weights
            new = sharded_parameter(placeholder, spec, self.mesh)
            new._alpa_mesh = self.mesh
            self.shards[key] = new
            self.specs[fqn] = spec
            placeholder._alpa_shard = new  # for the optimizer hook
            # the placeholder keeps its shape for Dynamo's guards; its memory
            # (and a whole gradient from an eager first step) goes
            placeholder.grad = None
            placeholder.data.untyped_storage().resize_(0)
        return self.shards[key]


def _adopt(root: torch.nn.Module, opts) -> _RootState:
    state = _RootState(root, opts)
    cls = root.__class__
    original = cls.forward
    fresh = types.FunctionType(original.__code__.replace(), original.__globals__,
                               original.__name__, original.__defaults__, original.__closure__)
    fresh.__kwdefaults__ = original.__kwdefaults__
    backend = functools.partial(_inner_backend, state=state)
    # The function itself, not a functools.partial: Dynamo runs a partial
    # through one wrapper whose code every compiled callable shares, so its
    # guards (the bound module's type) would add up across models and hit
    # the recompile limit; `fresh` has code of its own per adopted module.
    compiled = torch.compile(fresh, backend=backend)
    state.compiled_forward = functools.partial(compiled, root)
    root.__class__ = type(f"AlpaCompiled{cls.__name__}", (AlpaCompiledModule, cls),
                          {"forward": _class_forward(original)})
    root._alpa_compile = state
    _register_optimizer_hook()
    return state


def _class_forward(original):
    """AlpaCompiledModule.forward as an entry of the adopted class's own
    ``__dict__``, with the original forward's defaults: the frame being
    compiled while the class changes (``torch.compile(model)`` of a module
    whose forward has defaults, e.g. nn.TransformerEncoder) gets Dynamo
    guards on ``type(model).__dict__['forward'].__defaults__``."""
    forward = torch._dynamo.disable(
        lambda self, *args, **kwargs: AlpaCompiledModule.forward(self, *args, **kwargs))
    functools.update_wrapper(forward, original, assigned=("__module__", "__name__",
                                                          "__qualname__", "__doc__"))
    forward.__defaults__ = original.__defaults__
    return forward


def _inner_backend(gm, example_inputs, state: _RootState):
    _warn_graph_breaks()
    return _CompiledGraph(gm, state.opts, state)


# ---- the optimizer sees the shards ---------------------------------------------

_hook_handle = None


def _register_optimizer_hook() -> None:
    global _hook_handle
    if _hook_handle is None:
        from torch.optim.optimizer import register_optimizer_step_pre_hook
        _hook_handle = register_optimizer_step_pre_hook(_swap_in_shards)


def _swap_in_shards(optimizer, args, kwargs) -> None:
    for group in optimizer.param_groups:
        params = group["params"]
        for i, p in enumerate(params):
            shard = getattr(p, "_alpa_shard", None)
            if shard is None:
                continue
            params[i] = shard
            old = optimizer.state.pop(p, None)
            if old:
                optimizer.state[shard] = {k: _shard_like(v, shard) for k, v in old.items()}


def _shard_like(value, shard):
    """Optimizer state stepped before the first call (whole tensors) laid
    out as the parameter's shard."""
    from alpa_torch.runtime.parameters import sharded_parameter
    if isinstance(value, torch.Tensor) and value.shape == shard.shape and value.dim() > 0:
        return sharded_parameter(value, shard._alpa_spec, shard._alpa_mesh).detach()
    return value


# ---- one graph ---------------------------------------------------------------------

_plan_cache: Dict[Any, Any] = {}
_stats = {"graphs": 0, "programs": 0, "plans": 0}


def stats() -> Dict[str, int]:
    """Counts since the process started: Dynamo graphs run through the
    backend, per-signature programs built, and plans solved (the rest came
    from the plan cache)."""
    return dict(_stats)


class _CompiledGraph:
    """One Dynamo graph: planned and rewritten per signature, at first call."""

    def __init__(self, gm, opts, state: Optional[_RootState],
                 install_shards: bool = False):
        self.gm = gm
        self.install_shards = install_shards
        self.opts = opts
        self.state = state
        self.mesh = state.mesh if state is not None else None
        self.programs: Dict[Any, Any] = {}
        # Read now: Dynamo drops the placeholders' metadata after compiling.
        # Python numbers it passes as 0-d tensors (dynamic=True) are planned
        # as the constants they are at each call, like integer inputs.
        placeholders = _placeholders(gm)
        self.scalars = {i for i, n in enumerate(placeholders) if _is_scalar(n)}
        self.buffers = {i for i, n in enumerate(placeholders) if _is_buffer(n)}

    def __call__(self, *args):
        key = tuple(("value", a.item()) if i in self.scalars
                    else (tuple(a.shape), a.dtype, a.requires_grad) if isinstance(a, torch.Tensor)
                    else ("value", a) for i, a in enumerate(args))
        try:
            program = self.programs.get(key)
            if program is None:
                if not self.programs:
                    _stats["graphs"] += 1
                program = self.programs[key] = self._build(args)
                _stats["programs"] += 1
            runner, user_positions = program
            return runner(tuple(args[i] for i in user_positions), {})
        finally:
            if self.install_shards:  # also after a failure: the shards are the parameters
                self.state.install_shards()

    def _build(self, args):
        from alpa_torch.emit import local_ops
        from alpa_torch.emit.program import emit_stage
        from alpa_torch.graph.capture import capture
        from alpa_torch.runtime.agreement import check_same_graph_everywhere, plan_on_rank0
        from alpa_torch.runtime.spmd import ProgramRunner

        if self.mesh is None:
            self.mesh = _mesh_groups(_mesh_shape(self.opts), self.opts)
        layout = _Layout(self.gm, args, self.state, self.scalars, self.buffers)
        name = self.state.model_name if self.state is not None else "dynamo_graph"
        captured = capture(layout.capture_module(), tuple(args[i] for i in layout.user_positions),
                           name=name)
        check_same_graph_everywhere(captured)
        pins = dict(self.opts.get("plan_overrides") or {})
        if self.state is not None:
            pins.update({fqn: spec for fqn, spec in self.state.specs.items()
                         if fqn in layout.param_fqns})
        for n in captured.graph.nodes:
            rank = len(n.outputs[0][0]) if n.kind == "buffer" else 0
            if rank > 0:
                pins.setdefault(n.name, "R" * rank)
        plan_opts = {k: v for k, v in self.opts.items() if k in _PLAN_ONLY_OPTIONS}
        plan_opts["plan_overrides"] = pins
        cache_key = (captured.graph.fingerprint(), self.mesh.shape,
                     repr(sorted((k, repr(v)) for k, v in plan_opts.items())))
        the_plan = _plan_cache.get(cache_key)
        if the_plan is None:
            the_plan = plan_on_rank0(captured, self.mesh.shape, plan_opts)
            _plan_cache[cache_key] = the_plan
            _stats["plans"] += 1
        stage = the_plan.stages[0]
        if self.state is not None:
            self.state.plans.append(the_plan)
        if tuple(stage.mesh_shape) != tuple(self.mesh.shape):
            raise RuntimeError(f"alpa: the plan's mesh {stage.mesh_shape} is not the job's "
                               f"{self.mesh.shape}")
        view = layout.view_module(stage.param_specs)
        program = emit_stage(captured.exported, captured, the_plan, 0, self.mesh)
        local_ops.annotate_collectives(program.module)
        # one leaf per parameter for all graphs of a module: a weight read on
        # both sides of a graph break accumulates its gradient in one place
        leaves = self.state.local_params if self.state is not None else None
        runner = ProgramRunner(view, captured, program, self.mesh, the_plan, False, False, leaves)
        return runner, layout.user_positions


class _Layout:
    """Which inputs of a Dynamo graph are parameters, buffers, values and
    user tensors, and the module the graph is captured from."""

    def __init__(self, gm, args, state: Optional[_RootState], scalars, buffers):
        self.gm = gm
        self.args = args
        self.state = state
        self.scalars = scalars
        self.kinds: List[Tuple[str, str]] = []  # (kind, fqn) per graph input
        self.user_positions: List[int] = []
        self.param_fqns = set()
        for i, a in enumerate(args):
            fqn = state.fqns.get(id(a)) if state is not None else None
            if i in scalars:
                self.kinds.append(("value", ""))
            elif fqn is not None and isinstance(a, torch.nn.Parameter):
                self.kinds.append(("parameter", fqn))
                self.param_fqns.add(fqn)
            elif isinstance(a, torch.Tensor) and i in buffers:
                self.kinds.append(("buffer", f"_dynamo_buffer_{i}"))
            elif isinstance(a, torch.Tensor):
                self.kinds.append(("input", ""))
                self.user_positions.append(i)
            else:
                self.kinds.append(("value", ""))

    def _tree(self, leaves: Dict[str, Tuple[str, torch.Tensor]]) -> torch.nn.Module:
        root = torch.nn.Module()
        for fqn, (kind, value) in leaves.items():
            owner, _, leaf = fqn.rpartition(".")
            module = root
            for part in owner.split(".") if owner else []:
                if part not in module._modules:
                    module.add_module(part, torch.nn.Module())
                module = module._modules[part]
            if kind == "parameter":
                module._parameters[leaf] = value
            else:
                module._buffers[leaf] = value
        return root

    def capture_module(self) -> torch.nn.Module:
        """forward(*user tensors) calls the graph with stand-ins (of the
        global shapes) for its parameters, the real buffers and the values."""
        leaves: Dict[str, Tuple[str, torch.Tensor]] = {}
        for (kind, fqn), a in zip(self.kinds, self.args):
            if kind == "parameter" and fqn not in leaves:
                stand_in = torch.empty(a.shape, dtype=a.dtype, device=a.device)
                leaves[fqn] = ("parameter", torch.nn.Parameter(stand_in, a.requires_grad))
            elif kind == "buffer":
                leaves[fqn] = ("buffer", a)
        tree = self._tree(leaves)
        kinds, args = self.kinds, self.args
        gm = _with_scalar_values(self.gm, args, self.scalars)

        class _Graph(torch.nn.Module):
            def __init__(self):
                super().__init__()
                for name, child in tree._modules.items():
                    self.add_module(name, child)
                self._parameters.update(tree._parameters)
                self._buffers.update(tree._buffers)

            def forward(self, *user):
                it = iter(user)
                values = []
                for (kind, fqn), a in zip(kinds, args):
                    if kind == "parameter":
                        values.append(self.get_parameter(fqn))
                    elif kind == "buffer":
                        values.append(self.get_buffer(fqn))
                    elif kind == "input":
                        values.append(next(it))
                    else:
                        values.append(a)
                return gm(*values)

        return _Graph()

    def view_module(self, param_specs) -> torch.nn.Module:
        """The parameters as this rank's DTensor shards and the real buffers,
        under the names the captured graph uses."""
        leaves: Dict[str, Tuple[str, torch.Tensor]] = {}
        for (kind, fqn), a in zip(self.kinds, self.args):
            if kind == "parameter" and fqn not in leaves:
                leaves[fqn] = ("parameter", self.state.shard(a, param_specs[fqn]))
            elif kind == "buffer":
                leaves[fqn] = ("buffer", a)
        return self._tree(leaves)


def _with_scalar_values(gm, args, scalars):
    """A copy of `gm` in which each Python number Dynamo passed as a 0-d
    tensor (positions `scalars`) and read back with ``.item()`` is the
    number itself, so that torch.export sees a constant instead of a
    data-dependent value."""
    placeholders = _placeholders(gm)
    items = [(user, args[i].item()) for i, n in enumerate(placeholders) if i in scalars
             for user in n.users if user.op == "call_method" and user.target == "item"]
    if not items:
        return gm
    graph = copy.deepcopy(gm.graph)
    by_name = {n.name: n for n in graph.nodes}
    for item, value in items:
        node = by_name[item.name]
        for user in list(node.users):
            user.args = torch.fx.node.map_arg(user.args, lambda a: value if a is node else a)
            user.kwargs = torch.fx.node.map_arg(user.kwargs, lambda a: value if a is node else a)
        graph.erase_node(node)
    return torch.fx.GraphModule(gm, graph)


def _placeholders(gm) -> List[torch.fx.Node]:
    return [n for n in gm.graph.nodes if n.op == "placeholder"]


def _is_scalar(node) -> bool:
    return bool(getattr(node.meta.get("grapharg"), "pass_arg_as_tensor", False))


def _is_buffer(node) -> bool:
    return "._buffers[" in _source_name(node)


def _source_name(node) -> str:
    """Where Dynamo read a graph input, e.g. ``L['self']._modules['fc']._parameters['weight']``
    (only while the graph is being compiled)."""
    grapharg = node.meta.get("grapharg")
    if grapharg is None:
        return ""
    name = grapharg.source.name
    return (name() if callable(name) else name) or ""
