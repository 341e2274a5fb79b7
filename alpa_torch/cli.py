"""The ``alpa-torch`` command line: ``plan``, ``explain`` and ``draw``.

    alpa-torch plan examples.models:mlp_factory --mesh 1x4 -o plan.json
    alpa-torch plan graph.json --method pipeshard --cluster a100-40gb \\
        --hosts 2 --devices-per-host 4 --micro-batches 8 -o plan.json
    alpa-torch explain plan.json
    alpa-torch draw plan.json -o plan.html

Errors the user can fix (a model spec that does not import, a factory that
returns no model, a malformed or foreign plan file, an infeasible memory
budget) print ``alpa-torch: error: ...`` on stderr and exit with status 2,
without a traceback. Anything else is a bug of ours: it keeps its
traceback and exits with status 1. ``python -m alpa_torch`` is the same
command. See docs/cli.md.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import os
import re
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO, Tuple

__all__ = ["PROG", "UserError", "build_parser", "main", "parse_mesh", "load_factory",
           "call_factory", "load_plan", "Progress", "plan_supports_progress", "resolve_cluster",
           "meta_bytes", "explain_text", "cmd_plan", "cmd_explain", "cmd_draw"]

PROG = "alpa-torch"


class UserError(Exception):
    """An error the user can fix; printed without a traceback, exit status 2."""


# ---- argument parsing ----------------------------------------------------------

def parse_mesh(text: str) -> Tuple[int, int]:
    """``"1x4"``, ``"2,4"`` or ``"4"`` (= ``1x4``) -> (n0, n1)."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:[x×,*]\s*(\d+))?\s*", text)
    if not m or int(m.group(1)) < 1 or (m.group(2) is not None and int(m.group(2)) < 1):
        raise argparse.ArgumentTypeError(
            f"cannot read mesh {text!r}; write n0xn1 with positive ints, e.g. 1x4 or 2x8")
    return (1, int(m.group(1))) if m.group(2) is None else (int(m.group(1)), int(m.group(2)))


def _mesh_list(text: str) -> List[Tuple[int, int]]:
    """``"1x2,1x2"`` -> [(1, 2), (1, 2)]."""
    return [parse_mesh(part) for part in text.split(",") if part.strip()]


def _name_list(text: str) -> List[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


class _Parser(argparse.ArgumentParser):
    """Usage errors read ``alpa-torch: error: ...`` (status 2) in every subcommand."""

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(2, f"{PROG}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG, description="Alpa's automatic parallelization planner for PyTorch models.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_plan_parser(sub)
    p = sub.add_parser("explain", help="per-stage layers, devices, specs, collectives, "
                       "time and memory of a saved plan",
                       description="Explain a plan written by 'alpa-torch plan -o' or Plan.save().")
    p.add_argument("plan_file", metavar="PLAN.json")
    _add_graph_option(p)
    p.add_argument("--programs", action="store_true",
                   help="also print each stage's local program (needs --graph): per node the "
                   "resharding steps of its inputs, gradient reductions, partial sums and "
                   "local sizes, as the planner hands them to the runtime")
    p.set_defaults(func=cmd_explain)
    p = sub.add_parser("draw", help="picture of the stages over the devices and their shardings",
                       description="Draw a saved plan as SVG, or as HTML embedding the SVG.")
    p.add_argument("plan_file", metavar="PLAN.json")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="*.svg or *.html (default: PLAN.html next to the plan)")
    _add_graph_option(p)
    p.set_defaults(func=cmd_draw)
    return parser


def _add_graph_option(p) -> None:
    p.add_argument("--graph", metavar="GRAPH.json",
                   help="also check the plan against this captured graph (its fingerprint, "
                   "parameter names, nodes and shapes)")


def _add_plan_parser(sub) -> None:
    import alpa_torch
    p = sub.add_parser(
        "plan", help="plan a model (package.module:factory or a captured graph JSON)",
        description="Plan how to parallelize a model. MODEL is 'package.module:factory' "
        "(factory() returns (model, example_args) or (model, example_args, example_kwargs)), "
        "'path/to/file.py:factory', or a graph JSON saved by alpa_torch.capture(...).save().")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--mesh", type=parse_mesh, metavar="N0xN1",
                   help="logical mesh (intra_op), default 1xN with N the cluster's devices; "
                   "without --hosts/--devices-per-host it also sizes the cluster")
    p.add_argument("--cluster", default="cpu-gloo", choices=alpa_torch.Cluster.preset_names(),
                   help="hardware preset of the simulated cluster (default cpu-gloo)")
    p.add_argument("--hosts", type=_positive_int, help="hosts of the cluster (default 1)")
    p.add_argument("--devices-per-host", type=_positive_int, metavar="M",
                   help="devices per host (default: the mesh's devices, else 8)")
    p.add_argument("--method", default="intra_op", choices=("intra_op", "pipeshard"))
    p.add_argument("--micro-batches", type=_positive_int, default=1, metavar="B",
                   help="pipeline microbatches (pipeshard); MODEL's example is ONE microbatch")
    p.add_argument("--schedule", default="1f1b", choices=("1f1b", "gpipe"))
    p.add_argument("--remat", default="auto", choices=("auto", "none", "all"),
                   help="pipeshard stages that recompute their forward in backward "
                        "(auto: the planner picks where memory binds)")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"),
                   help="bf16: mixed precision (autocast, fp32 master weights)")
    p.add_argument("--memory-budget", metavar="BYTES", help="per device, e.g. 16GiB "
                   "(default: the device memory; 'inf' for none)")
    p.add_argument("--stage-meshes", type=_mesh_list, metavar="1x2,1x2",
                   help="manual stages (pipeshard): one logical mesh per layer")
    p.add_argument("--layer-boundaries", type=_name_list, metavar="FQN,...",
                   help="manual layers (pipeshard): module prefixes that start a layer")
    p.add_argument("--num-layers", type=_positive_int, metavar="L",
                   help="layers of the automatic clustering (pipeshard)")
    p.add_argument("--optimizer", default="adam", help="whose state counts toward memory")
    p.add_argument("--time-limit", type=float, default=60.0, metavar="SECONDS",
                   help="ILP time limit per solve")
    p.add_argument("--memory-gap", type=float, default=0.01, metavar="FRACTION",
                   help="a memory-bound ILP stops once its plan is proven within this fraction "
                        "of the optimum (0: exact)")
    p.add_argument("--threads", type=_positive_int, default=1,
                   help="solver threads / candidate stages solved at once")
    p.add_argument("-o", "--output", metavar="PLAN.json", help="write the plan here "
                   "('-' writes the JSON to stdout instead of the summary)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=cmd_plan)


# ---- loading models, graphs and plans --------------------------------------------

def _where(exc: BaseException) -> str:
    """``file:line`` of the innermost frame of ``exc``'s traceback."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return "" if tb is None else f" at {tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"


def _import_module(module_name: str, spec: str):
    if module_name.endswith(".py"):
        if not os.path.isfile(module_name):
            raise UserError(f"MODEL {spec!r}: no file {module_name!r}")
        name = "_alpa_cli_" + re.sub(r"\W", "_", os.path.splitext(os.path.basename(module_name))[0])
        loader = importlib.util.spec_from_file_location(name, module_name)
        module = importlib.util.module_from_spec(loader)
        sys.modules[name] = module
        loader.loader.exec_module(module)
        return module
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())   # like `python -m`: the current directory imports
    return importlib.import_module(module_name)


def load_factory(spec: str) -> Callable[[], Any]:
    """The callable named by ``package.module:factory`` (or ``file.py:factory``)."""
    module_name, _, attr = spec.rpartition(":")
    if not module_name or not attr:
        raise UserError(f"MODEL {spec!r} is neither a graph JSON file nor "
                        f"'package.module:factory'; e.g. 'mymodels:build_gpt'")
    try:
        module = _import_module(module_name, spec)
    except UserError:
        raise
    except ImportError as e:
        raise UserError(f"cannot import module {module_name!r} (from MODEL {spec!r}): "
                        f"{type(e).__name__}: {e}; run alpa-torch from the directory that "
                        f"holds the package, or add that directory to PYTHONPATH") from None
    except Exception as e:  # the module's own code failed
        raise UserError(f"importing module {module_name!r} (from MODEL {spec!r}) raised "
                        f"{type(e).__name__}: {e}{_where(e)}; fix the module") from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = sorted(n for n in dir(module) if not n.startswith("_")
                           and callable(getattr(module, n)))
            raise UserError(f"module {module_name!r} has no attribute {attr!r}; its callables: "
                            f"{', '.join(names[:20]) or '(none)'}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise UserError(f"{spec!r} is a {type(obj).__name__}, not a callable factory")
    return obj


def call_factory(spec: str) -> Tuple[Any, tuple, Dict[str, Any]]:
    """Runs the factory; returns (model, example_args, example_kwargs)."""
    import torch
    factory = load_factory(spec)
    try:
        result = factory()
    except Exception as e:
        raise UserError(f"factory {spec!r} raised {type(e).__name__}: {e}{_where(e)}") from None
    expected = ("must return (model, example_args) or (model, example_args, example_kwargs) "
                "with model a torch.nn.Module")
    if not isinstance(result, (tuple, list)) or len(result) not in (2, 3):
        raise UserError(f"factory {spec!r} {expected}; it returned {_describe(result)}")
    model, args = result[0], result[1]
    kwargs = result[2] if len(result) == 3 else {}
    if not isinstance(model, torch.nn.Module):
        raise UserError(f"factory {spec!r} {expected}; its model is {_describe(model)}")
    if isinstance(args, torch.Tensor):
        args = (args,)
    if not isinstance(args, (tuple, list)) or not isinstance(kwargs or {}, dict):
        raise UserError(f"factory {spec!r}: example_args must be a tuple (or one tensor) and "
                        f"example_kwargs a dict; got {_describe(args)} and {_describe(kwargs)}")
    return model, tuple(args), dict(kwargs or {})


def _describe(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    return "None" if value is None else f"a {type(value).__module__}.{type(value).__qualname__}"


def load_plan(path: str, graph_path: Optional[str] = None):
    """``Plan.load(path)`` (which validates the plan) with its ValueError as a
    UserError; with ``graph_path``, also checked against that graph."""
    import alpa_torch
    if not os.path.isfile(path):
        raise UserError(f"no plan file {path!r}; write one with 'alpa-torch plan MODEL -o {path}'")
    try:
        plan = alpa_torch.Plan.load(path)
    except ValueError as e:   # UnicodeDecodeError included
        hint = (f"; it is a captured graph: plan it with 'alpa-torch plan {path}'"
                if "'alpa_torch.graph'" in str(e) else "")
        raise UserError(f"cannot read plan {path!r}: {_one_line(e)}{hint}") from None
    except OSError as e:
        raise UserError(f"cannot read plan {path!r}: {e.strerror or e}") from None
    if graph_path is not None:
        if not os.path.isfile(graph_path):
            raise UserError(f"no graph file {graph_path!r}; save one with "
                            f"alpa_torch.capture(model, args).save({graph_path!r})")
        try:
            plan.check_graph(alpa_torch.load(graph_path))
        except ValueError as e:
            raise UserError(f"plan {path!r} does not fit graph {graph_path!r}: "
                            f"{_one_line(e)}") from None
        except OSError as e:
            raise UserError(f"cannot read graph {graph_path!r}: {e.strerror or e}") from None
    return plan


def _one_line(e: BaseException) -> str:
    """The message of ``e`` on one line (error output is one line per error)."""
    return " ".join(str(e).split())


# ---- progress on stderr ----------------------------------------------------------

class Progress:
    """Progress of a long step on ``stream``: a bar when the planner reports
    (done, total) candidate stages, else a spinner with the elapsed time.
    Redraws in place on a terminal; elsewhere prints one line at the end."""

    _SPIN = "|/-\\"

    def __init__(self, stream: TextIO, enabled: bool = True, tty: Optional[bool] = None):
        self.stream = stream
        self.enabled = enabled
        self.tty = stream.isatty() if tty is None else tty
        self.label = ""
        self.done = self.total = 0
        self._lock = threading.Lock()        # guards done/total
        self._draw_lock = threading.Lock()   # guards the stream
        self._start = time.monotonic()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.phases: List[str] = []   # "label seconds" of the ended phases

    def __call__(self, done: int, total: int) -> None:
        """The ``progress=`` callback of ``alpa_torch.plan`` (any thread)."""
        with self._lock:
            self.done, self.total = int(done), int(total)
        self._draw()

    def line(self) -> str:
        elapsed = time.monotonic() - self._start
        with self._lock:
            done, total = self.done, self.total
        if total > 0:
            filled = int(30 * min(done, total) / total)
            return (f"{self.label} [{'#' * filled}{'.' * (30 - filled)}] {done}/{total} "
                    f"candidate stages  {elapsed:.1f} s")
        spin = self._SPIN[int(elapsed * 10) % len(self._SPIN)]
        return f"{self.label} {spin} {elapsed:.1f} s"

    def _draw(self) -> None:
        if self.enabled and self.tty:
            text = self.line()
            with self._draw_lock:   # one writer at a time (spinner and callbacks)
                self.stream.write("\r\x1b[2K" + text)
                self.stream.flush()

    def phase(self, label: str) -> "Progress":
        """Ends the current phase and starts ``label`` (a spinner on a
        terminal until the next phase or ``finish``)."""
        self._end_phase()
        self.label, self.done, self.total = label, 0, 0
        self._start = time.monotonic()
        if self.enabled and self.tty:
            self._stop.clear()
            self._thread = threading.Thread(target=self._spin, daemon=True)
            self._thread.start()
        return self

    def _spin(self) -> None:
        while not self._stop.wait(0.1):
            self._draw()

    def _end_phase(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        if self.label:
            solved = f" ({self.done}/{self.total} candidate stages)" if self.total else ""
            self.phases.append(f"{self.label} {time.monotonic() - self._start:.1f} s{solved}")
            self.label = ""

    def finish(self, quiet: bool = False) -> None:
        """Ends the last phase; unless ``quiet``, prints one line with the
        time of every phase."""
        had_line = self.enabled and self.tty and bool(self.label)
        self._end_phase()
        if not self.enabled:
            return
        if had_line:
            self.stream.write("\r\x1b[2K")
        if not quiet and self.phases:
            self.stream.write(f"{PROG}: {', '.join(self.phases)}\n")
        self.stream.flush()


def plan_supports_progress(plan_fn: Callable) -> bool:
    """Whether ``alpa_torch.plan`` takes ``progress=callable(done, total)``."""
    try:
        return "progress" in inspect.signature(plan_fn).parameters
    except (TypeError, ValueError):
        return False


# ---- plan ------------------------------------------------------------------------

def resolve_cluster(args) -> Tuple[Any, Tuple[int, int]]:
    """The simulated cluster and the logical mesh of ``plan``'s options."""
    import alpa_torch
    mesh = args.mesh
    hosts = args.hosts or 1
    per_host = args.devices_per_host
    if per_host is None:
        if mesh is not None and args.hosts is None and args.method == "pipeshard":
            hosts, per_host = mesh           # as alpa_torch.plan: hosts × devices
        elif mesh is not None:
            if (mesh[0] * mesh[1]) % hosts:
                raise UserError(f"--mesh {mesh[0]}x{mesh[1]} does not divide over "
                                f"--hosts {hosts}; pass --devices-per-host")
            per_host = mesh[0] * mesh[1] // hosts
        else:
            per_host = 8
    cluster = alpa_torch.Cluster.preset(args.cluster, hosts, per_host)
    if mesh is None:
        mesh = (1, hosts * per_host)
    if args.method == "intra_op" and mesh[0] * mesh[1] != hosts * per_host:
        raise UserError(f"--mesh {mesh[0]}x{mesh[1]} has {mesh[0] * mesh[1]} devices but the "
                        f"cluster has {hosts} x {per_host} = {hosts * per_host}; make them "
                        f"agree (--hosts / --devices-per-host)")
    return cluster, mesh


def _plan_options(args, cluster, mesh) -> Dict[str, Any]:
    import math
    budget = None
    if args.memory_budget is not None:
        budget = math.inf if args.memory_budget.strip().lower() in ("inf", "none") \
            else args.memory_budget
    options = dict(cluster=cluster, memory_budget=budget, method=args.method,
                   optimizer=args.optimizer, time_limit_s=args.time_limit,
                   memory_gap=args.memory_gap, precision=args.precision,
                   num_threads=args.threads)
    if args.method == "intra_op":
        options["mesh_shape"] = mesh
        ignored = [flag for flag, value in (("--stage-meshes", args.stage_meshes),
                                            ("--layer-boundaries", args.layer_boundaries),
                                            ("--num-layers", args.num_layers),
                                            ("--remat all", args.remat == "all")) if value]
        if ignored or args.micro_batches != 1:
            raise UserError(f"{', '.join(ignored or ['--micro-batches'])} only apply to "
                            f"--method pipeshard")
    else:
        options.update(num_micro_batches=args.micro_batches, schedule=args.schedule,
                       num_layers=args.num_layers, layer_boundaries=args.layer_boundaries,
                       stage_meshes=args.stage_meshes, remat=args.remat)
    return options


def _load_model(spec: str, progress: Progress):
    """(module or CapturedGraph, example_args, example_kwargs) of MODEL."""
    import alpa_torch
    if os.path.isfile(spec) or spec.lower().endswith(".json"):
        try:
            return alpa_torch.load(spec), (), {}
        except (ValueError, FileNotFoundError) as e:
            raise UserError(str(e)) from None
    progress.phase("building the model")
    model, example_args, example_kwargs = call_factory(spec)
    progress.phase("capturing the model")
    try:
        graph = alpa_torch.capture(model, example_args, example_kwargs)
    except (alpa_torch.CaptureError, TypeError, ValueError, NotImplementedError) as e:
        raise UserError(f"cannot capture the model of {spec!r}: {e}") from None
    return graph, (), {}


def cmd_plan(args, out: TextIO, err: TextIO) -> int:
    import alpa_torch
    cluster, mesh = resolve_cluster(args)
    options = _plan_options(args, cluster, mesh)
    progress = Progress(err, enabled=not args.quiet)
    try:
        graph, _, _ = _load_model(args.model, progress)
        plan_fn = alpa_torch.plan
        if args.method == "pipeshard" and plan_supports_progress(plan_fn):
            options["progress"] = progress   # intra_op solves one ILP: nothing to count
        progress.phase("planning")
        try:
            plan = plan_fn(graph, **options)
        except (ValueError, NotImplementedError, alpa_torch.AlpaError) as e:
            raise UserError(f"cannot plan {args.model!r}: {e}") from None
    except BaseException:
        progress.finish(quiet=True)
        raise
    progress.finish()
    if args.output == "-":
        out.write(plan.to_json(indent=1) + "\n")
        return 0
    if args.output:
        try:
            plan.save(args.output)
        except OSError as e:
            raise UserError(f"cannot write the plan to {args.output!r}: {e.strerror}") from None
        err.write(f"{PROG}: wrote {args.output}\n")
    out.write(explain_text(plan))
    return 0


# ---- explain and draw --------------------------------------------------------------

def meta_bytes(meta: str) -> Optional[int]:
    """Bytes of a value from its meta string: ``"f32[8,64]"`` -> 2048."""
    m = re.fullmatch(r"[a-z]+(\d+)\[([\d, ]*)\]", meta or "")
    if not m:
        return None
    n = int(m.group(1)) // 8
    for dim in filter(None, (d.strip() for d in m.group(2).split(","))):
        n *= int(dim)
    return n


def explain_text(plan) -> str:
    """``Plan.explain()`` plus a one-line-per-stage table and the values
    passed between stages (what the C++ explanation leaves implicit)."""
    from alpa_torch.viz import format_bytes, format_seconds, stage_modules
    lines = [plan.explain().rstrip("\n"), "", "stages at a glance:"]
    rows = [("stage", "layers", "modules", "sub-mesh", "devices", "logical mesh", "time",
             "memory")]
    for s in plan.stages:
        rows.append((str(s.index), f"{s.layers[0]}..{s.layers[1]}",
                     ", ".join(stage_modules(list(s.param_specs))) or "-",
                     f"{s.submesh[0]}x{s.submesh[1]}", str(s.device_ids),
                     f"({s.mesh_shape[0]}, {s.mesh_shape[1]})",
                     format_seconds(s.predicted_time), format_bytes(s.memory_bytes)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    transfers = []
    # Stage k receives, in order, what stage k-1 sends (the plan's contract);
    # a value read further on travels through the stages in between.
    for s, t in zip(plan.stages, plan.stages[1:]):
        for value, got in zip(s.outputs, t.inputs):
            size = meta_bytes(value.get("meta", ""))
            transfers.append(
                f"  stage {s.index} -> stage {t.index}: {value['name']} {value.get('meta', '')}"
                f", spec {value['spec']} -> {got['spec']}"
                + ("" if size is None else f", {format_bytes(size)} per microbatch")
                + (" (its gradient flows back)" if value.get("requires_grad") else ""))
    if len(plan.stages) > 1:
        lines += ["", "values between stages:"] + (transfers or ["  (none)"])
    return "\n".join(lines) + "\n"


def cmd_explain(args, out: TextIO, err: TextIO) -> int:
    if args.programs and args.graph is None:
        raise UserError("--programs needs --graph GRAPH.json: a stage's local program is built "
                        "from the captured graph the plan was made for")
    plan = load_plan(args.plan_file, args.graph)
    out.write(explain_text(plan))
    if args.programs:
        import alpa_torch
        from alpa_torch import _C
        captured = alpa_torch.load(args.graph)
        graph = getattr(captured, "graph", captured)
        for stage in plan.stages:
            try:
                program = _C.build_local_program(graph, plan.to_json(), stage.index)
            except (ValueError, NotImplementedError) as e:
                raise UserError(f"stage {stage.index}: no local program: {_one_line(e)}") from None
            out.write(f"\nlocal program of stage {stage.index}:\n{program}")
    return 0


def cmd_draw(args, out: TextIO, err: TextIO) -> int:
    from alpa_torch import viz
    plan = load_plan(args.plan_file, args.graph)
    path = args.output or os.path.splitext(args.plan_file)[0] + ".html"
    try:
        viz.save_drawing(plan, path, explain_text(plan))
    except ValueError as e:
        raise UserError(str(e)) from None
    except OSError as e:
        raise UserError(f"cannot write {path!r}: {e.strerror}") from None
    err.write(f"{PROG}: wrote {path}\n")
    return 0


# ---- entry point -------------------------------------------------------------------

def main(argv: Optional[Sequence[str]] = None, out: Optional[TextIO] = None,
         err: Optional[TextIO] = None) -> int:
    """Runs ``alpa-torch ARGV``; returns the exit status (0 ok, 2 user error).

    ``out``/``err`` default to sys.stdout/sys.stderr. Usage errors exit
    through argparse (status 2, its own ``alpa-torch: error:`` line)."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:   # --help (0) or a usage error (2), already printed
        return e.code if isinstance(e.code, int) else 2
    try:
        return args.func(args, out, err)
    except UserError as e:
        err.write(f"{PROG}: error: {e}\n")
        return 2
    except KeyboardInterrupt:
        err.write(f"{PROG}: interrupted\n")
        return 130
