"""Pipeshard planner speed (Alpa §5: clustering + candidate ILPs + stage DP).

Captures GPT-3-shaped models (GPT-2 architecture, head dim 128, vocabulary
51200, sequence 1024) on the meta device, so no weights are allocated, and
times alpa_torch.plan(..., method="pipeshard") on simulated A100-40GB
clusters:

    6.7B-shaped  32 layers, h = 4096   on 1 x 8
    15B-shaped   48 layers, h = 5120   on 2 x 8
    39B-shaped   48 layers, h = 8192   on 8 x 8   (goal: <= 60 s)

    .venv/bin/python benchmarks/bench_pipeshard_plan.py [--rows 39B] [--memory]

Each row prints the candidate counts (entries of the stage DP's cost table,
what the pruning rules skipped, how many entries were composed from shorter
spans, distinct ILPs solved), the time of each phase, wall and CPU seconds
(the machine may be shared: CPU seconds count only this process), the
predicted step time and the chosen stages, and the ratio of the wall time to
the 60 s goal. The memory budget is unbounded by default, as in
bench_intra_op.py; --memory uses the devices' 40 GiB, where the 39B model
pipelines only with rematerialization (--remat none: a single stage).
"""
import argparse
import math
import sys
import time

sys.path.insert(0, __import__("os").path.dirname(__file__))

import alpa_torch  # noqa: E402
from bench_intra_op import gpt  # noqa: E402

GOAL_SECONDS = 60.0
ROWS = {  # name: (layers, hidden, hosts, micro-batch size, microbatches)
    "6.7B": (32, 4096, 1, 8, 128),
    "15B": (48, 5120, 2, 8, 128),
    "39B": (48, 8192, 8, 8, 128),
}


def describe(plan):
    """'9 x [layers 0..1 on (1, 8) as (4, 2)], ...' run-length encoded."""
    parts = []
    for s in plan.stages:
        parts.append(f"{s.layers[1] - s.layers[0] + 1}L on {tuple(s.submesh)} as "
                     f"{tuple(s.mesh_shape)}{' remat' if s.remat else ''}")
    out, i = [], 0
    while i < len(parts):
        j = i
        while j < len(parts) and parts[j] == parts[i]:
            j += 1
        out.append(f"{j - i} x {parts[i]}" if j - i > 1 else parts[i])
        i = j
    return ", ".join(out)


def run(name, memory, show_progress, remat, precision):
    layers, hidden, hosts, micro_batch, num_micro_batches = ROWS[name]
    model, inputs = gpt(layers, hidden, 1024, micro_batch)
    t0 = time.perf_counter()
    graph = alpa_torch.capture(model, inputs)
    capture_s = time.perf_counter() - t0
    cluster = alpa_torch.Cluster.preset("a100-40gb", hosts, 8)

    def progress(done, total):
        if show_progress:
            print(f"\r  {name}: {done}/{total} ILPs", end="", file=sys.stderr, flush=True)

    wall0, cpu0 = time.perf_counter(), time.process_time()
    plan = alpa_torch.plan(graph, cluster=cluster, method="pipeshard",
                           num_micro_batches=num_micro_batches,
                           memory_budget=None if memory else math.inf, progress=progress,
                           remat=remat, precision=precision)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    if show_progress:
        print(file=sys.stderr)
    s = plan.solver
    print(f"{name}-shaped: {layers} layers, h = {hidden}, micro-batch {micro_batch} x 1024, "
          f"B = {num_micro_batches}, {hosts} x 8 A100-40GB, memory "
          f"{'40 GiB' if memory else 'unbounded'}, remat {remat}, {precision} (capture {capture_s:.1f} s, "
          f"{len(graph.nodes)} nodes)")
    print(f"  L = {s['num_layers']}: {s['num_candidates']} candidates; skipped "
          f"{s['num_pruned_no_room']} no room, {s['num_pruned_imbalance']} imbalanced, "
          f"{s['num_pruned_idle_axes']} idle axis; costed {s['num_costed']} "
          f"({s['num_composed']} composed, {s['num_refined']} refined in "
          f"{s['refinement_rounds']} rounds, max error {s['max_composition_error']:.2g}) with "
          f"{s['num_solved']} ILPs ({s['num_time_limited']} time-limited) over "
          f"{s['num_distinct_stage_graphs']}/{s['num_stage_graphs']} distinct stage graphs")
    print(f"  seconds: clustering {s['clustering_seconds']:.2f}, extraction "
          f"{s['extraction_seconds']:.2f}, ILPs {s['profiling_seconds']:.2f}, DP "
          f"{s['dp_seconds']:.2f}, assembly {s['assembly_seconds']:.2f}; total "
          f"{s['total_seconds']:.2f} (wall {wall:.2f}, CPU {cpu:.2f})")
    print(f"  plan: {len(plan.stages)} stages [{describe(plan)}], predicted "
          f"{plan.predicted_step_time:.4f} s per step")
    print(f"  wall / goal ({GOAL_SECONDS:.0f} s) = {wall / GOAL_SECONDS:.2f}"
          f"{'' if name == '39B' else ' (the goal is set for the 39B row)'}", flush=True)
    return wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    p.add_argument("--memory", action="store_true",
                   help="bound memory by the devices' 40 GiB (default: unbounded)")
    p.add_argument("--progress", action="store_true", help="print ILPs solved to stderr")
    p.add_argument("--remat", default="auto", choices=["auto", "none", "all"],
                   help="rematerialization per stage (default: the planner picks)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                   help="bf16: mixed precision (autocast, fp32 master weights)")
    args = p.parse_args()
    for name in args.rows:
        run(name, args.memory, args.progress, args.remat, args.precision)


if __name__ == "__main__":
    main()
