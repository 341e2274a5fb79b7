"""The model zoo run: every family of zoo_models.py through every door,
compared with single-process training.

    python tests/python/zoo.py                      # the whole zoo, SGD and AdamW
    python tests/python/zoo.py --families llama,opt --doors "compile 2" --optimizers sgd
    python tests/python/zoo.py --markdown docs/model_zoo.md   # also write the table

A cell is "equal" when every step's loss (rtol 1e-5) and every entry of
``full_state_dict()`` (rtol/atol 1e-5) equal single-process training, and
the state dict loads back into a fresh model with ``strict=True``; else it
says what differed or the error. Pipeshard doors train MICRO_BATCHES
microbatches a step, so their reference accumulates the same microbatches
(BatchNorm normalises each one on its own). One launch per world size runs every
family (process groups and imports are paid once). tests/python/
test_model_zoo.py runs a fast subset in the default test run.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from typing import Dict, List, Tuple

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from zoo_models import FAMILIES  # noqa: E402

STEPS = 3
# door -> (world size, how it is run)
DOORS = {
    "parallelize 1x2": (2, dict(kind="parallelize", mesh=(1, 2))),
    "parallelize 2x2": (4, dict(kind="parallelize", mesh=(2, 2))),
    "pipeshard 2": (2, dict(kind="pipeshard", mesh=(1, 2), stage_meshes=[(1, 1), (1, 1)])),
    "pipeshard 4": (4, dict(kind="pipeshard", mesh=(1, 4), stage_meshes=[(1, 2), (1, 2)])),
    "compile 2": (2, dict(kind="compile", mesh=(1, 2))),
}
OPTIMIZERS = ("sgd", "adamw")
MICRO_BATCHES = 2  # pipeshard doors; compared with microbatched single-process training
LAST_TABLE = ""  # the table of the last run under pytest (conftest prints it)


def make_optimizer(params, kind):
    # AdamW's eps 1e-6 (not 1e-8): Adam divides by sqrt(v), so a weight whose
    # gradient is ~0 turns summation-order rounding (sharded and whole
    # matmuls add in different orders) into whole steps; see docs/model_zoo.md.
    return (torch.optim.SGD(params, lr=0.05) if kind == "sgd"
            else torch.optim.AdamW(params, lr=1e-3, eps=1e-6))


def first_tensor(out) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, dict):
        return next(v for v in out.values() if isinstance(v, torch.Tensor))
    return next(v for v in out if isinstance(v, torch.Tensor))


def target_like(t: torch.Tensor) -> torch.Tensor:
    return torch.randn(t.shape, generator=torch.Generator().manual_seed(1234))


def mse(out, target) -> torch.Tensor:
    """Every output element matters, and the loss stays away from zero."""
    return ((first_tensor(out).float() - target) ** 2).mean()


def loss_target(family: str, batch) -> torch.Tensor:
    """The loss's target, shaped like the output; from a fresh copy of the
    model, so the model trained keeps its state (BatchNorm statistics)."""
    with torch.no_grad():
        return target_like(first_tensor(FAMILIES[family]()[0](*batch(0))))


def reference(family: str, optimizer: str, micro_batches: int = 1):
    """Single-process training. With `micro_batches` > 1, as a pipeline
    trains: each step's batch (and target) cut into that many microbatches
    along dim 0, gradients accumulated, the loss their mean; BatchNorm then
    normalises each microbatch on its own, as in the pipeline."""
    model, batch = FAMILIES[family]()
    target = loss_target(family, batch)
    opt = make_optimizer(model.parameters(), optimizer)
    losses = []
    for step in range(STEPS):
        opt.zero_grad()
        total = 0.0
        for i in range(micro_batches):
            args = tuple(a.chunk(micro_batches)[i] if isinstance(a, torch.Tensor) else a
                         for a in batch(step))
            loss = mse(model(*args), target.chunk(micro_batches)[i]) / micro_batches
            loss.backward()
            total += loss.item()
        opt.step()
        losses.append(total)
    return losses, {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def _train(family: str, door: Dict, optimizer: str):
    import alpa_torch
    model, batch = FAMILIES[family]()
    target = loss_target(family, batch)
    kind, mesh = door["kind"], door["mesh"]
    losses = []
    if kind == "pipeshard":
        pmodel = alpa_torch.parallelize(model, batch(0), method="pipeshard", mesh_shape=mesh,
                                        num_micro_batches=MICRO_BATCHES, num_layers=len(door["stage_meshes"]),
                                        stage_meshes=door["stage_meshes"])
        opt = make_optimizer(pmodel.parameters(), optimizer)
        for step in range(STEPS):
            losses.append(float(pmodel.step(batch(step), target, mse, optimizer=opt)))
    else:
        if kind == "compile":
            # Each cell is a new process state for Dynamo: its caches are per
            # code object, and transformers' forward decorators are one code
            # object for all models, so after 8 models Dynamo's recompile
            # limit would leave the next ones uncompiled (docs/compile.md).
            torch._dynamo.reset()
            pmodel = torch.compile(model, backend="alpa", options={"mesh_shape": mesh})
        else:
            pmodel = alpa_torch.parallelize(model, batch(0), mesh_shape=mesh)
        opt = make_optimizer(model.parameters() if kind == "compile" else pmodel.parameters(),
                             optimizer)
        for step in range(STEPS):
            loss = mse(pmodel(*batch(step)), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    state = {k: v.detach().numpy().copy() for k, v in model.full_state_dict().items()}
    fresh = FAMILIES[family]()[0]
    fresh.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    return losses, state


def _worker(rank, world, cells: List[Tuple[str, str]], optimizers):
    out = {}
    for family, door in cells:
        for optimizer in optimizers:
            start = time.monotonic()
            try:
                out[(family, door, optimizer)] = ("ok", _train(family, DOORS[door][1], optimizer),
                                                  time.monotonic() - start)
            except Exception as e:  # noqa: BLE001 - a cell's failure is its result
                first = (str(e).strip().splitlines() or [""])[0]
                out[(family, door, optimizer)] = ("error", f"{type(e).__name__}: {first}"[:300],
                                                  time.monotonic() - start)
                if os.environ.get("ALPA_ZOO_TRACEBACKS"):
                    traceback.print_exc()
    return out


def compare(result, ref) -> str:
    """'equal' or what differs."""
    status, value, _ = result
    if status != "ok":
        return "error: " + value
    (losses, state), (ref_losses, ref_state) = value, ref
    if not np.allclose(losses, ref_losses, rtol=1e-5, atol=0):
        return f"losses {np.round(losses, 6).tolist()} != {np.round(ref_losses, 6).tolist()}"
    if set(state) != set(ref_state):
        return (f"state keys differ: missing {sorted(set(ref_state) - set(state))[:3]}, "
                f"extra {sorted(set(state) - set(ref_state))[:3]}")
    for k, v in ref_state.items():
        if state[k].shape != v.shape or not np.allclose(state[k], v, rtol=1e-5, atol=1e-5):
            return f"state {k} differs"
    return "equal"


def run(cells: List[Tuple[str, str]], optimizers, timeout=1800) -> Dict[Tuple[str, str, str], str]:
    """(family, door, optimizer) -> 'equal' or what differed, for each
    (family, door) of `cells`."""
    from dist_harness import run_ranks
    by_world: Dict[int, List[Tuple[str, str]]] = {}
    for family, door in cells:
        by_world.setdefault(DOORS[door][0], []).append((family, door))
    results_of = {}
    for world, todo in sorted(by_world.items()):
        results = run_ranks(_worker, world, todo, tuple(optimizers), timeout=timeout)
        for key in results[0]:
            results_of[key] = results
    refs = {}
    verdicts = {}
    for (family, door, optimizer), results in results_of.items():
        b = MICRO_BATCHES if DOORS[door][1]["kind"] == "pipeshard" else 1
        if (family, optimizer, b) not in refs:
            refs[(family, optimizer, b)] = reference(family, optimizer, b)
        verdict = "equal"
        for rank, result in enumerate(results):
            v = compare(result[(family, door, optimizer)], refs[(family, optimizer, b)])
            if v != "equal":
                verdict = f"rank {rank}: {v}"
                break
        verdicts[(family, door, optimizer)] = verdict
    return verdicts


def table(verdicts, families, doors, optimizers) -> str:
    """Markdown: a row per family, a column per door; 'equal' or the failure."""
    lines = ["| model | " + " | ".join(doors) + " |", "|---" * (len(doors) + 1) + "|"]
    for f in families:
        row = []
        for d in doors:
            if (f, d, optimizers[0]) not in verdicts:
                row.append("")
                continue
            vs = {o: verdicts[(f, d, o)] for o in optimizers}
            if all(v == "equal" for v in vs.values()):
                row.append("equal (" + ", ".join(optimizers) + ")")
            else:
                row.append("; ".join(f"{o}: {v}" for o, v in vs.items() if v != "equal")
                           .replace("|", "/"))
        lines.append(f"| {f} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--families", default="all", help="comma-separated names, or all")
    p.add_argument("--doors", default="all", help="comma-separated doors, or all")
    p.add_argument("--optimizers", default=",".join(OPTIMIZERS))
    p.add_argument("--markdown", help="also write the table to this file")
    a = p.parse_args(argv)
    families = list(FAMILIES) if a.families == "all" else a.families.split(",")
    doors = list(DOORS) if a.doors == "all" else a.doors.split(",")
    optimizers = a.optimizers.split(",")
    start = time.monotonic()
    verdicts = run([(f, d) for f in families for d in doors], optimizers)
    text = table(verdicts, families, doors, optimizers)
    print(text)
    print(f"\n{sum(v == 'equal' for v in verdicts.values())} of {len(verdicts)} cells equal "
          f"in {time.monotonic() - start:.0f} s")
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(text + "\n")
    return 0 if all(v == "equal" for v in verdicts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
