"""Pipeshard step time vs torch.distributed.pipelining, side by side.

Spawns 4 local CPU processes (Gloo), one pipeline stage each, and in the
same processes trains the same model split at the same block boundaries
with the same schedule, loss (MSE, mean over microbatches) and optimizer
(SGD) by:
  ours:  alpa_torch.parallelize(method="pipeshard", stage_meshes=[(1, 1)] * 4,
         layer_boundaries=[...]) and pmodel.step(batch, target, loss_fn, opt),
         i.e. the C++ PipelineExecutor running rewritten FX stage programs;
  torch: torch.distributed.pipelining.PipelineStage + ScheduleGPipe /
         Schedule1F1B over an nn.Sequential of the same blocks.
The model is a stack of residual MLP blocks x + Linear(4h,h)(GELU(Linear(h,4h)(x))),
so compute dominates. Steps alternate between the systems (ABAB...), each
step fenced by barriers, so machine load hits both alike; the table gives
the median step time after warm-up and ours / torch (goal <= 1.0).

Fairness check: both start from the same weights and see the same batch;
the first two step losses of the two systems must agree within 1e-5 (the
second one also covers gradient scaling and the optimizer update).

Bubble fraction. Theory: with S stages of equal time t per microbatch and B
microbatches, each rank computes B*t within a step of (B+S-1)*t, so every
rank idles (S-1)/(B+S-1) of the step. We measure exactly that quantity per
rank: idle = 1 - busy / T, where T is the wall time of the pipelined step
call on that rank (from a common barrier; optimizer step excluded) and busy
is the union of the intervals of all compute ops on that rank during it
(aten ops and autograd backward nodes, from torch.profiler; communication
ops (c10d::*, gloo) and waits are not busy). The same ruler is applied to
torch.pipelining, so extra idle beyond the theory (p2p latency, framework
overhead between ops, unequal stages) is comparable between the systems.
We prefer this to 1 - B*t/T with t timed in isolation because an isolated t
depends on how many ranks compete for the cores at that moment: with 4
ranks on fewer cores than 4 (the development machine has 2), a stage runs
about twice as fast while the others are in their bubble as in the steady
state, so no single t is right. Caveat: the theory assumes one free core
per stage. On an oversubscribed machine time a rank is descheduled counts
as busy inside an op and as idle between ops, so both systems' fractions
sit above the theory; compare them with each other there, and with the
theory only on a machine with >= 4 free cores. The load average printed
with the table says which case a run was. The profiled steps are separate
from the timed ones (profiling slows ops).

    .venv/bin/python benchmarks/bench_pipeline.py [--steps 15] [--hidden 512]
        [--micro-batches 8] [--blocks 8] [--batch 64]
"""
import argparse
import contextlib
import copy
import datetime
import os
import socket
import statistics
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

STAGES = 4
WARMUP = 3
PROFILE_STEPS = 3
LR = 1e-3


class Block(torch.nn.Module):
    """x + fc2(gelu(fc1(x))), fc1: h -> 4h, fc2: 4h -> h."""

    def __init__(self, h: int):
        super().__init__()
        self.fc1 = torch.nn.Linear(h, 4 * h)
        self.fc2 = torch.nn.Linear(4 * h, h)

    def forward(self, x):
        return x + self.fc2(torch.nn.functional.gelu(self.fc1(x)))


class Stack(torch.nn.Module):
    def __init__(self, h: int, blocks: int):
        super().__init__()
        self.blocks = torch.nn.ModuleList(Block(h) for _ in range(blocks))

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x


def mse(output, target):
    return torch.nn.functional.mse_loss(output, target)


def stage_bounds(blocks: int, stage: int):
    """Blocks [lo, hi) of `stage`: the same split for both systems."""
    per = blocks // STAGES
    return stage * per, (stage + 1) * per


# ---- the two systems: one training step each ---------------------------------

class Ours:
    """alpa_torch pipeshard: plan with manual stages, C++ PipelineExecutor."""

    def __init__(self, model, x, B, schedule):
        import alpa_torch
        blocks = len(model.blocks)
        bounds = [f"blocks.{stage_bounds(blocks, s)[0]}" for s in range(1, STAGES)]
        self.pmodel = alpa_torch.parallelize(
            model, (x,), method="pipeshard", num_micro_batches=B, schedule=schedule,
            layer_boundaries=bounds, stage_meshes=[(1, 1)] * STAGES)
        self.opt = torch.optim.SGD(list(self.pmodel.parameters()), lr=LR)

    def pipelined(self, x, y) -> float:
        """Forward and backward of all microbatches (no optimizer step)."""
        return self.pmodel.step(x, y, mse)

    def update(self):
        self.opt.step()
        self.opt.zero_grad()


class Torch:
    """torch.distributed.pipelining over this rank's slice of the blocks."""

    def __init__(self, model, rank, B, schedule):
        from torch.distributed.pipelining import PipelineStage, Schedule1F1B, ScheduleGPipe
        lo, hi = stage_bounds(len(model.blocks), rank)
        self.module = torch.nn.Sequential(*model.blocks[lo:hi])
        self.rank = rank
        stage = PipelineStage(self.module, rank, STAGES, torch.device("cpu"))
        cls = {"gpipe": ScheduleGPipe, "1f1b": Schedule1F1B}[schedule]
        self.schedule = cls(stage, B, loss_fn=mse)
        self.opt = torch.optim.SGD(self.module.parameters(), lr=LR)

    def pipelined(self, x, y) -> float:
        last = self.rank == STAGES - 1
        losses = [] if last else None
        if self.rank == 0:
            self.schedule.step(x)
        elif last:
            self.schedule.step(target=y, losses=losses)
        else:
            self.schedule.step()
        loss = torch.tensor([sum(l.item() for l in losses) / len(losses) if last else 0.0],
                            dtype=torch.float64)
        dist.broadcast(loss, src=STAGES - 1)
        return float(loss.item())

    def update(self):
        self.opt.step()
        self.opt.zero_grad()


def timed_step(system, x, y):
    dist.barrier()
    t0 = time.perf_counter()
    loss = system.pipelined(x, y)
    system.update()
    dist.barrier()
    return time.perf_counter() - t0, loss


# ---- bubble ---------------------------------------------------------------------

_COMM_MARKERS = ("c10d", "gloo", "nccl", "barrier", "broadcast", "recv", "send", "wait")


def busy_seconds(events, t_begin_us: float, t_end_us: float) -> float:
    """Union length of the compute ops' intervals inside [t_begin, t_end]."""
    spans = []
    for e in events:
        name = e.name
        if not (name.startswith("aten::") or name.startswith("autograd::engine::evaluate_function")):
            continue
        if any(m in name.lower() for m in _COMM_MARKERS):
            continue
        lo, hi = max(e.time_range.start, t_begin_us), min(e.time_range.end, t_end_us)
        if hi > lo:
            spans.append((lo, hi))
    spans.sort()
    total, cur_lo, cur_hi = 0.0, None, None
    for lo, hi in spans:
        if cur_hi is None or lo > cur_hi:
            if cur_hi is not None:
                total += cur_hi - cur_lo
            cur_lo, cur_hi = lo, hi
        else:
            cur_hi = max(cur_hi, hi)
    if cur_hi is not None:
        total += cur_hi - cur_lo
    return total * 1e-6


@contextlib.contextmanager
def _quiet_stderr():
    """Silences the profiler's start/stop lines, which kineto writes to fd 2."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def idle_fraction(system, x, y, steps: int) -> float:
    """Mean over `steps` of 1 - busy / T of the pipelined step on this rank."""
    from torch.profiler import ProfilerActivity, profile, record_function
    fractions = []
    for _ in range(steps):
        dist.barrier()
        with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU]) as prof:
            with record_function("alpa_bench_step"):
                system.pipelined(x, y)
        system.update()
        events = prof.events()
        window = next(e for e in events if e.name == "alpa_bench_step")
        begin, end = window.time_range.start, window.time_range.end
        fractions.append(1.0 - busy_seconds(events, begin, end) / ((end - begin) * 1e-6))
    return statistics.mean(fractions)


# ---- one schedule, both systems -----------------------------------------------------

def run_schedule(rank, schedule, args):
    torch.manual_seed(0)
    reference = Stack(args.hidden, args.blocks)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(args.batch, args.hidden, generator=g)
    y = torch.randn(args.batch, args.hidden, generator=g)
    B = args.micro_batches
    ours = Ours(copy.deepcopy(reference), x, B, schedule)
    theirs = Torch(copy.deepcopy(reference), rank, B, schedule)
    times = {"ours": [], "torch": []}
    losses = {"ours": [], "torch": []}
    for i in range(WARMUP + args.steps):
        for name, system in (("ours", ours), ("torch", theirs)):
            t, loss = timed_step(system, x, y)
            losses[name].append(loss)
            if i >= WARMUP:
                times[name].append(t)
    loss_diff = [abs(a - b) for a, b in zip(losses["ours"][:2], losses["torch"][:2])]
    idle_ours = idle_fraction(ours, x, y, PROFILE_STEPS)
    idle_torch = idle_fraction(theirs, x, y, PROFILE_STEPS)
    return dict(schedule=schedule, ours=statistics.median(times["ours"]),
                torch=statistics.median(times["torch"]), loss0=losses["ours"][0],
                loss_diff=loss_diff, idle_ours=idle_ours, idle_torch=idle_torch)


def worker(rank, world, port, args, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=300))
    rows = [run_schedule(rank, s, args) for s in ("gpipe", "1f1b")]
    # per-rank idle fractions, gathered to rank 0
    gathered = [None] * world
    dist.all_gather_object(gathered, [(r["idle_ours"], r["idle_torch"]) for r in rows])
    if rank == 0:
        for i, r in enumerate(rows):
            r["idle_ours_ranks"] = [g[i][0] for g in gathered]
            r["idle_torch_ranks"] = [g[i][1] for g in gathered]
        out.put(rows)
    dist.destroy_process_group()


def print_table(rows, args):
    S, B = STAGES, args.micro_batches
    theory = (S - 1) / (B + S - 1)
    print(f"{args.blocks} blocks h={args.hidden}, batch {args.batch}, B={B} microbatches, "
          f"{S} stages x 1 CPU process (Gloo), median of {args.steps} steps")
    print(f"{'schedule':<9} {'ours ms':>8} {'torch.pipelining ms':>20} {'ratio':>6} "
          f"{'bubble ours':>12} {'bubble torch':>13} {'theory':>7} {'|dloss| step1,2':>16}")
    for r in rows:
        print(f"{r['schedule']:<9} {r['ours'] * 1e3:>8.1f} {r['torch'] * 1e3:>20.1f} "
              f"{r['ours'] / r['torch']:>6.2f} {statistics.mean(r['idle_ours_ranks']):>12.3f} "
              f"{statistics.mean(r['idle_torch_ranks']):>13.3f} {theory:>7.3f} "
              f"{max(r['loss_diff']):>16.1e}")
    print("bubble = mean over ranks of 1 - busy/T (see docstring); per rank (stage 0..3):")
    for r in rows:
        fmt = lambda v: " ".join(f"{f:.3f}" for f in v)  # noqa: E731
        print(f"  {r['schedule']:<6} ours [{fmt(r['idle_ours_ranks'])}]  "
              f"torch [{fmt(r['idle_torch_ranks'])}]")
    bad = [r for r in rows if max(r["loss_diff"]) > 1e-5]
    if bad:
        raise SystemExit(f"the two systems disagree on the loss (first step {rows[0]['loss0']:.6f}): "
                         f"{[(r['schedule'], r['loss_diff']) for r in bad]}; the comparison is unfair")


def wait_for_rows(out, procs, deadline_s: float):
    """Rank 0's rows; fails fast when a rank dies instead of waiting out the deadline."""
    import queue
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            return out.get(timeout=2)
        except queue.Empty:
            dead = [i for i, pr in enumerate(procs) if pr.exitcode not in (None, 0)]
            if dead:
                raise SystemExit(f"rank(s) {dead} failed (exit codes "
                                 f"{[procs[i].exitcode for i in dead]}); see their errors above")
    raise SystemExit(f"no result within {deadline_s:.0f} s")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--micro-batches", type=int, default=8)
    p.add_argument("--blocks", type=int, default=8)
    p.add_argument("--batch", type=int, default=64)
    args = p.parse_args()
    if args.blocks % STAGES or args.blocks < STAGES:
        p.error(f"--blocks must be a positive multiple of {STAGES} (one equal slice per stage)")
    if args.batch % args.micro_batches:
        p.error(f"--batch ({args.batch}) must be a multiple of --micro-batches ({args.micro_batches})")
    if args.micro_batches < STAGES:
        p.error(f"--micro-batches must be >= {STAGES} (torch's Schedule1F1B requires B >= stages)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    load_before = os.getloadavg()[0]
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(r, STAGES, port, args, out)) for r in range(STAGES)]
    for pr in procs:
        pr.start()
    t0 = time.perf_counter()
    try:
        rows = wait_for_rows(out, procs, deadline_s=900)
    finally:
        for pr in procs:
            pr.join(timeout=60)
            if pr.is_alive():
                pr.terminate()
    print_table(rows, args)
    print(f"(total {time.perf_counter() - t0:.0f} s; load average {load_before:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
