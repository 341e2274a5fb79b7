"""parallelize() step time vs hand-written baselines, side by side.

Spawns --world local CPU processes (Gloo; default 2, one per core of the
2-core development machine: with more processes than cores the figure
mostly measures the OS scheduler) and, in the same processes, times one
training step (forward, backward, SGD step) of:
  A. an MLP where data parallelism is optimal: parallelize() vs DDP;
  B. a Megatron MLP block where tensor parallelism is optimal:
     parallelize() vs a hand-written column/row-parallel block using the
     same torch.ops.alpa collectives.
Prints the plan each case got and the ratio (goal <= 1.05).

    .venv/bin/python benchmarks/bench_spmd.py [--steps 20]
"""
import argparse
import datetime
import os
import socket
import sys
import statistics
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from examples.models import FeedForward as MLP  # noqa: E402




class MegatronMLP(torch.nn.Module):
    """Column-parallel fc1, row-parallel fc2 (Y = XA, A = [A_1 … A_p])."""

    def __init__(self, full: MLP, rank: int, world: int, group: str):
        super().__init__()
        w1, b1 = full.fc1.weight.chunk(world, 0)[rank], full.fc1.bias.chunk(world, 0)[rank]
        self.w1 = torch.nn.Parameter(w1.detach().clone())
        self.b1 = torch.nn.Parameter(b1.detach().clone())
        self.w2 = torch.nn.Parameter(full.fc2.weight.chunk(world, 1)[rank].detach().clone())
        self.b2 = torch.nn.Parameter(full.fc2.bias.detach().clone())
        self.group = group

    def forward(self, x):
        x = torch.ops.alpa.grad_all_reduce(x, self.group)           # f
        h = torch.nn.functional.gelu(torch.nn.functional.linear(x, self.w1, self.b1))
        y = torch.ops.alpa.all_reduce(torch.nn.functional.linear(h, self.w2), self.group)  # g
        return y + self.b2


def time_side_by_side(a, xa, b, xb, steps):
    """Median step time of two models, their steps interleaved (a b, b a,
    a b, ...) so that both see the same machine load — on a shared 2-core
    machine load drifts over a run, and timing one model after the other
    would charge the drift to whichever ran second."""
    opts = [torch.optim.SGD(m.parameters(), lr=1e-3) for m in (a, b)]
    times = ([], [])
    for i in range(steps + 3):
        order = ((0, a, xa), (1, b, xb)) if i % 2 == 0 else ((1, b, xb), (0, a, xa))
        for k, model, x in order:  # a b, b a, a b, ...: neither always goes first
            dist.barrier()
            t0 = time.perf_counter()
            loss = model(x).float().pow(2).mean()
            opts[k].zero_grad()
            loss.backward()
            opts[k].step()
            dist.barrier()
            if i >= 3:
                times[k].append(time.perf_counter() - t0)
    return statistics.median(times[0]), statistics.median(times[1])


def worker(rank, world, port, steps, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=120))
    import alpa_torch
    from alpa_torch.emit.local_ops import load_runtime
    load_runtime()
    rows = []
    # A: data parallel is optimal (large batch, small weights)
    torch.manual_seed(0)
    h, batch = 64, 8192
    x = torch.randn(batch, h)
    # as DDP: each rank feeds its slice of the batch and keeps its outputs
    pmodel = alpa_torch.parallelize(MLP(h), (x,), mesh_shape=(1, world),
                                    data_parallel_inputs=True, local_outputs=True)
    torch.manual_seed(0)
    ddp = torch.nn.parallel.DistributedDataParallel(MLP(h))
    alpa_t, ddp_t = time_side_by_side(pmodel, x.chunk(world)[rank], ddp, x.chunk(world)[rank], steps)
    rows.append(("A  MLP h=64 batch 8192", pmodel.alpa_plan.param_specs["fc1.weight"],
                 "DDP", alpa_t, ddp_t))
    # B: tensor parallel is optimal (small batch, large weights)
    torch.manual_seed(0)
    h, batch = 1024, 16
    x = torch.randn(batch, h)
    full = MLP(h)
    pmodel = alpa_torch.parallelize(MLP(h), (x,), mesh_shape=(1, world))
    group = dist.new_group(list(range(world))).group_name
    mega = MegatronMLP(full, rank, world, group)
    alpa_t, mega_t = time_side_by_side(pmodel, x, mega, x, steps)
    rows.append(("B  MLP h=1024 batch 16", pmodel.alpa_plan.param_specs["fc1.weight"],
                 "Megatron TP", alpa_t, mega_t))
    if rank == 0:
        out.put(rows)
    dist.destroy_process_group()


def run_workers(worker, world: int, steps: int):
    """Runs worker(rank, world, port, steps, queue) on `world` local
    processes; returns what rank 0 puts on the queue."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(r, world, port, steps, out))
             for r in range(world)]
    for pr in procs:
        pr.start()
    rows = out.get(timeout=900)
    for pr in procs:
        pr.join()
    return rows


def bench_args(doc: str):
    """--steps (timed steps per side) and --world (processes)."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--world", type=int, default=2)
    return p.parse_args()


def main():
    args = bench_args(__doc__)
    rows = run_workers(worker, args.world, args.steps)
    print(f"{'case':<24} {'fc1 spec':>9} {'baseline':>12} {'alpa ms':>8} {'base ms':>8} {'ratio':>6}")
    for case, spec, base, a, b in rows:
        print(f"{case:<24} {spec:>9} {base:>12} {a * 1e3:>8.2f} {b * 1e3:>8.2f} {a / b:>6.2f}")


if __name__ == "__main__":
    main()
