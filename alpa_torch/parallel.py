"""parallelize(): plan, shard and run a model across the ranks of a job.

Every rank captures the model; rank 0 plans and broadcasts the plan (so all
ranks run the same plan, bit for bit); each rank rewrites the graph into its
local program, replaces the model's parameters by DTensors laid out as
planned, and swaps in a forward that runs the local program. The returned
module is the same object (its class extended, as FSDP2's fully_shard
does), so FQNs, optimizers, clip_grad_norm_, state_dict() and
torch.distributed.checkpoint work on it unchanged.
"""
from __future__ import annotations

import datetime
import inspect
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist
import torch.fx._pytree as fx_pytree
import torch.utils._pytree as pytree
from torch.distributed.tensor import DTensor, Replicate, Shard

from alpa_torch import health, local_ops
from alpa_torch.api import parse_bytes, plan as make_plan
from alpa_torch.capture import capture, with_added_kwargs
from alpa_torch.distributed import DEFAULT_TIMEOUT, MeshGroups
from alpa_torch.local_params import LocalParameters
from alpa_torch.plan import Plan
from alpa_torch.rewrite import Spec, build_local_program


def parallelize(model: torch.nn.Module, example_args: Any = (),
                example_kwargs: Optional[Dict[str, Any]] = None, *,
                mesh_shape=None, local_outputs: bool = False,
                data_parallel_inputs: bool = False,
                timeout: datetime.timedelta = DEFAULT_TIMEOUT,
                **plan_options) -> torch.nn.Module:
    """Shard `model` across the default process group as Alpa plans it.

    Args:
      model, example_args, example_kwargs: the model and an example batch.
      mesh_shape: logical mesh (n0, n1) with n0·n1 = world size; default
        (1, world size).
      local_outputs: return each rank's shard of the outputs instead of the
        full outputs (the default gathers them, so every rank sees the same).
      data_parallel_inputs: forward() receives this rank's slice of the batch
        (as the plan splits it) instead of the global batch.
      plan_options: passed to alpa_torch.plan (cluster, memory_budget,
        plan_overrides, optimizer, cost_mode, ...).
    Returns the same module object, parallelized; ``module.alpa_plan`` is the plan.

    Every rank must pass the same options (but `timeout` and the planner's
    time and thread limits): a difference raises ValueError on every rank.
    Inputs must have the example's shapes. If a rank dies, hangs or fails
    mid-training, the others raise ``alpa_torch.PeerFailedError`` naming it
    within `timeout` plus a few seconds (alpa_torch/health.py).
    """
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(
            "parallelize() runs under torch.distributed: launch with torchrun (or call "
            "torch.distributed.init_process_group first); alpa_torch.plan() plans without it")
    world = dist.get_world_size()
    shape, error = None, None
    try:
        shape = _job_mesh_shape(mesh_shape, world)
    except (TypeError, ValueError) as e:
        error = e
    agree_on_options(dict(plan_options, mesh_shape=shape or mesh_shape, local_outputs=local_outputs,
                          data_parallel_inputs=data_parallel_inputs), error, timeout)
    if plan_options.get("method", "intra_op") == "pipeshard":
        from alpa_torch.pipeline import parallelize_pipeshard
        return parallelize_pipeshard(model, example_args, example_kwargs, shape, timeout,
                                     plan_options)
    captured = capture(model, example_args, example_kwargs)
    _check_same_graph_everywhere(captured)
    the_plan = _plan_on_rank0(captured, shape, plan_options)
    stage = the_plan.stages[0]
    mesh = MeshGroups(stage.mesh_shape, timeout=timeout)
    program = build_local_program(captured.exported, captured, stage, mesh)
    local_ops.annotate_collectives(program.module)
    _distribute_parameters(model, captured, stage, mesh)
    _install_forward(model, captured, program, mesh, the_plan, local_outputs, data_parallel_inputs)
    return model


def _job_mesh_shape(mesh_shape, world: int) -> Tuple[int, int]:
    shape = tuple(mesh_shape) if mesh_shape is not None else (1, world)
    if len(shape) == 1:
        shape = (1, shape[0])
    if len(shape) != 2:
        raise ValueError(f"mesh_shape must be (n0, n1), got {mesh_shape!r}")
    if shape[0] * shape[1] != world:
        raise ValueError(
            f"mesh_shape {shape} has {shape[0] * shape[1]} devices but the job has {world} "
            f"ranks; launch {shape[0] * shape[1]} processes or pass a mesh whose axes "
            f"multiply to {world}")
    return shape


# ---- options every rank must agree on ------------------------------------------

# Only rank 0 plans, and each rank waits with its own timeout: these may differ.
_PER_RANK_OPTIONS = ("progress", "time_limit_s", "num_threads", "timeout")
_PLAN_DEFAULTS = {name: p.default for name, p in inspect.signature(make_plan).parameters.items()
                  if p.default is not inspect.Parameter.empty}


def agree_on_options(options: Dict[str, Any], local_error: Optional[BaseException] = None,
                     timeout: datetime.timedelta = DEFAULT_TIMEOUT,
                     what: str = "parallelize()") -> None:
    """Checks, in one all_gather_object, that every rank passed the same
    options (rank 0 plans for all, so a rank's own mesh or pins would be
    ignored without a word) and that no rank's arguments were rejected, and
    raises on every rank if not; then starts this rank's heartbeat
    (alpa_torch.health) for the job, named by rank 0."""
    error = None if local_error is None else f"{type(local_error).__name__}: {local_error}"
    mine = {"options": _canonical_options(options), "error": error,
            "process": health.this_process(),
            "job": health.proposed_job() if dist.get_rank() == 0 else None}
    everyone: List[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, mine)
    if local_error is not None:
        raise local_error
    bad = [(r, e["error"]) for r, e in enumerate(everyone) if e["error"]]
    if bad:
        raise ValueError(f"rank {bad[0][0]} rejected its arguments to {what}: {bad[0][1]}"
                         + (f" (and ranks {[r for r, _ in bad[1:]]})" if len(bad) > 1 else ""))
    differences = _differences([e["options"] for e in everyone])
    if differences:
        raise ValueError(
            f"ranks passed different options to {what}, which must be the same on every rank "
            f"(rank 0 plans for all, so the others' would be ignored): " + "; ".join(differences)
            + ". Pass the same options on every rank")
    health.start(everyone[0]["job"], [tuple(e["process"]) for e in everyone],
                 timeout.total_seconds())


def _canonical_options(options: Dict[str, Any]) -> Dict[str, str]:
    given = {k: v for k, v in options.items() if k not in _PER_RANK_OPTIONS}
    full = {k: v for k, v in _PLAN_DEFAULTS.items() if k not in _PER_RANK_OPTIONS}
    full.update(given)
    for name in ("plan_overrides", "layer_boundaries", "stage_meshes"):
        if full.get(name) is None and name in full:
            full[name] = {} if name == "plan_overrides" else ()  # what None means
    if full.get("memory_budget") is not None:
        try:
            full["memory_budget"] = parse_bytes(full["memory_budget"])
        except (TypeError, ValueError):
            pass  # planning rejects it on rank 0
    return {k: _canonical(v) for k, v in sorted(full.items())}


def _canonical(value: Any) -> str:
    """Text equal for equal option values (tuples and lists alike, dicts sorted)."""
    if isinstance(value, datetime.timedelta):
        return f"{value.total_seconds()}s"
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: str(kv[0]))
        return "{" + ", ".join(f"{_canonical(k)}: {_canonical(v)}" for k, v in items) + "}"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(_canonical(v) for v in value) + ")"
    if hasattr(value, "to_json"):
        return value.to_json()
    return repr(value)


def _differences(per_rank: Sequence[Dict[str, str]]) -> List[str]:
    """'name: A on ranks [0, 2], B on rank [1]' for each option that differs."""
    out = []
    for name in sorted({k for options in per_rank for k in options}):
        holders: Dict[str, List[int]] = {}
        for r, options in enumerate(per_rank):
            holders.setdefault(options.get(name, "<not passed>"), []).append(r)
        if len(holders) > 1:
            parts = [f"{_short(v)} on rank{'s' if len(rs) > 1 else ''} {rs}"
                     for v, rs in sorted(holders.items(), key=lambda kv: kv[1])]
            out.append(f"option '{name}' is " + ", ".join(parts))
    return out


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


# ---- planning ------------------------------------------------------------------

def _check_same_graph_everywhere(captured) -> None:
    mine = captured.graph.fingerprint()
    everyone: List[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, (mine, captured.graph.num_nodes))
    if len({f for f, _ in everyone}) != 1:
        odd = [r for r, (f, _) in enumerate(everyone) if f != everyone[0][0]]
        raise ValueError(
            f"ranks captured different graphs (ranks {odd} differ from rank 0): pass the same "
            f"example input shapes and the same model on every rank")


def _plan_on_rank0(captured, shape, options) -> Plan:
    box: List[Any] = [None]
    if dist.get_rank() == 0:
        try:
            p = make_plan(captured, mesh_shape=shape, **options)
            box[0] = ("ok", p.to_json(), p.solver)
        except Exception as e:  # noqa: BLE001 -- re-raised on every rank below
            box[0] = ("error", type(e).__name__, str(e))
    dist.broadcast_object_list(box, src=0)
    if box[0][0] == "error":
        from alpa_torch import errors
        kind = getattr(errors, box[0][1], None) or {"ValueError": ValueError,
                                                     "NotImplementedError": NotImplementedError,
                                                     "TypeError": TypeError}.get(box[0][1], RuntimeError)
        raise kind(f"planning failed on rank 0: {box[0][2]}")
    return Plan(box[0][1], box[0][2])


# ---- parameters ------------------------------------------------------------------

def _placements(spec: Spec, ndim_mesh: int = 2):
    placements = [Replicate(), Replicate()]
    for d, axes in enumerate(spec.dims):
        for a in axes:
            placements[a] = Shard(d)
    return placements


def _block_permute(t: torch.Tensor, spec: Spec, mesh: MeshGroups, inverse: bool = False) -> torch.Tensor:
    """Reorders block-interleaved dims so that a plain Shard of the result
    gives each rank its slice of every block."""
    for d, (axes, block) in enumerate(zip(spec.dims, spec.blocks)):
        if block == 1:
            continue
        n = 1
        for a in axes:
            n *= mesh.shape[a]
        shape = list(t.shape)
        size = shape[d]
        if not inverse:  # [block, n, piece] -> [n, block, piece]
            t = t.reshape(shape[:d] + [block, n, size // (block * n)] + shape[d + 1:])
        else:
            t = t.reshape(shape[:d] + [n, block, size // (block * n)] + shape[d + 1:])
        t = t.transpose(d, d + 1).reshape(shape)
    return t


def sharded_parameter(param: torch.Tensor, spec_text: str, mesh: MeshGroups) -> torch.nn.Parameter:
    """This rank's piece of a whole parameter as a DTensor Parameter laid
    out as `spec_text` (block-interleaved dims permuted, see _block_permute)."""
    spec = Spec.parse(spec_text)
    full = _block_permute(param.detach(), spec, mesh)
    local = local_ops.take_local(full, [(i, c, 1) for i, c, _ in spec.pieces(mesh)])
    dtensor = DTensor.from_local(local.clone(), mesh.device_mesh, _placements(spec),
                                 run_check=False)
    new = torch.nn.Parameter(dtensor, requires_grad=param.requires_grad)
    new._alpa_spec = spec_text  # type: ignore[attr-defined]
    return new


def _distribute_parameters(model, captured, stage, mesh: MeshGroups) -> None:
    specs = stage.param_specs
    for p in model.parameters():  # every rank starts from rank 0's weights
        dist.broadcast(p.data, src=0)
    for b in model.buffers():
        dist.broadcast(b.data, src=0)
    replaced: Dict[int, torch.nn.Parameter] = {}
    for fqn, param in list(model.named_parameters(remove_duplicate=False)):
        owner, _, leaf = fqn.rpartition(".")
        module = model.get_submodule(owner) if owner else model
        if id(param) in replaced:
            setattr(module, leaf, replaced[id(param)])
            continue
        new = sharded_parameter(param, specs[fqn], mesh)
        replaced[id(param)] = new
        setattr(module, leaf, new)
    # Buffers become DTensors too, laid out as the plan reads them, so that
    # in-place updates (BatchNorm running statistics) land in the buffer.
    node_specs = stage.node_specs
    buffer_nodes = {n.target: n.name for n in captured.graph.nodes if n.kind == "buffer"}
    for fqn, buf in list(model.named_buffers()):
        if fqn not in buffer_nodes or buf is None:
            continue
        spec = Spec.parse(node_specs[buffer_nodes[fqn]]["outputs"][0])
        owner, _, leaf = fqn.rpartition(".")
        module = model.get_submodule(owner) if owner else model
        local = local_ops.take_local(buf, [(i, c, 1) for i, c, _ in spec.pieces(mesh)])
        dtensor = DTensor.from_local(local.clone(), mesh.device_mesh, _placements(spec),
                                     run_check=False)
        module._buffers[leaf] = dtensor


# ---- forward ------------------------------------------------------------------

class AlpaParallelModule:
    """Mixin placed before the model's class by parallelize()."""

    def forward(self, *args, **kwargs):
        return self._alpa_runner(args, kwargs)

    def full_state_dict(self) -> Dict[str, torch.Tensor]:
        """Plain tensors equal to the single-process model's state_dict()."""
        return full_state_dict(self, self._alpa_runner.mesh)


def full_state_dict(model: torch.nn.Module, mesh: MeshGroups) -> Dict[str, torch.Tensor]:
    """``model.state_dict()`` with every DTensor gathered whole (and its
    block-interleaved dims put back in order)."""
    out = {}
    for name, value in model.state_dict().items():
        if isinstance(value, DTensor):
            spec_text = getattr(_param_by_name(model, name), "_alpa_spec", None)
            value = whole_tensor(value, spec_text, mesh)
        out[name] = value
    return out


def whole_tensor(value: torch.Tensor, spec_text: Optional[str], mesh: MeshGroups) -> torch.Tensor:
    """A parameter or buffer as the single-process model holds it: a DTensor
    gathered whole, its block-interleaved dims (`spec_text`) put back in order."""
    full = value.full_tensor() if isinstance(value, DTensor) else value.detach()
    if spec_text is not None:
        full = _block_permute(full, Spec.parse(spec_text), mesh, inverse=True)
    return full


def _param_by_name(model, name):
    try:
        return model.get_parameter(name)
    except AttributeError:
        return None


class _Runner:
    def __init__(self, model, captured, program, mesh, the_plan, local_outputs, dp_inputs,
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
        self.constants = dict(getattr(ep, "constants", {}) or {})
        placeholder_target = {s.arg.name: s.target for s in sig.input_specs if hasattr(s.arg, "name")}
        self.buffer_views = [(placeholder_target[name], Spec.parse(spec))
                             for name, spec in program.buffer_views]
        self.plan = the_plan
        self.grad_inputs = {n.name for n in captured.graph.nodes
                            if n.kind == "input" and n.requires_grad}
        self.planned_shapes = _planned_input_shapes(captured, program, mesh, dp_inputs)
        # several programs reading one module's parameters may share leaves
        self.local_params = local_params if local_params is not None else LocalParameters()

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
            if kind == "PARAMETER":
                values.append(self.local_params.local(self.model.get_parameter(target)))
            elif kind == "BUFFER":
                b = self.model.get_buffer(target)
                values.append(b.to_local() if isinstance(b, DTensor) else b)
            elif kind in ("CONSTANT_TENSOR", "CUSTOM_OBJ"):
                values.append(self.constants[target])
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
                    x = _slice_input(x, Spec.parse(spec), self.mesh)
                values.append(x)
        outs = self.program.module(*values)
        for index, target in self.mutations:
            with torch.no_grad():
                b = self.model.get_buffer(target)
                (b.to_local() if isinstance(b, DTensor) else b).copy_(outs[index])
        self._sync_buffer_views()
        results = []
        user_index = [i for i in range(len(outs)) if i not in {m for m, _ in self.mutations}]
        for i in user_index:
            value, spec = outs[i], self.program.output_specs[i]
            if isinstance(value, torch.Tensor) and spec is not None and not self.local_outputs:
                value = _gather_full(value, Spec.parse(spec), self.mesh,
                                     f"the gather of output {i} to every rank")
            results.append(value)
        return pytree.tree_unflatten(results, self.out_spec)


    def _sync_buffer_views(self) -> None:
        sync_buffer_views(self.model, self.buffer_views, self.mesh)


def sync_buffer_views(model: torch.nn.Module, buffer_views: Sequence[Tuple[str, Spec]],
                      mesh: MeshGroups) -> None:
    """Each rank updated its piece of a replicated buffer in place
    (BatchNorm running statistics of a channel-split BatchNorm): gather
    the pieces so every rank holds the whole, updated buffer.
    `buffer_views`: (buffer FQN, the spec of the piece each rank updates)."""
    with torch.no_grad():
        for target, spec in buffer_views:
            buf = model.get_buffer(target)
            full = buf.to_local() if isinstance(buf, DTensor) else buf
            mine = local_ops.view_local(full, spec.pieces(mesh)).clone()
            # .data: autograd saved this buffer (native batch_norm keeps
            # its running stats for backward); our own piece is unchanged,
            # so the write must not bump the version counter.
            whole = _gather_full(mine, spec, mesh, f"the gather of buffer {target!r}")
            full.data.copy_(whole)


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
            pieces = Spec.parse(spec).pieces(mesh)
            taken = tuple(d // count for d, (_, count, _) in zip(shape, pieces))
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


def _slice_input(x: torch.Tensor, spec: Spec, mesh: MeshGroups) -> torch.Tensor:
    """This rank's piece of a global input. With autograd (the input needs a
    gradient) through alpa.shard, whose backward gathers, so the input's
    gradient is complete on every rank; otherwise a plain local slice."""
    if not x.requires_grad:
        return local_ops.take_local(x, spec.pieces(mesh))
    for d, (axes, block) in enumerate(zip(spec.dims, spec.blocks)):
        for a in axes:
            x = local_ops.shard_dim(x, d, block, mesh.group([a]))
    return x


def _gather_full(value: torch.Tensor, spec: Spec, mesh: MeshGroups, node: str = "") -> torch.Tensor:
    """The whole tensor from each rank's piece laid out as `spec`; `node`
    names the gather in a failure."""
    for d, (axes, block) in enumerate(zip(spec.dims, spec.blocks)):
        for a in reversed(axes):
            value = local_ops.gather_dim(value, d, block, mesh.group([a]), node)
    return value


def _install_forward(model, captured, program, mesh, the_plan, local_outputs, dp_inputs):
    cls = model.__class__
    if not issubclass(cls, AlpaParallelModule):
        model.__class__ = type(f"AlpaParallel{cls.__name__}", (AlpaParallelModule, cls), {})
    model._alpa_runner = _Runner(model, captured, program, mesh, the_plan, local_outputs, dp_inputs)
    model.alpa_plan = the_plan
