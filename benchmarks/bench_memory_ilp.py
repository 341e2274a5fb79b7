"""Memory-bound intra-op ILPs: the same instances solved with and without a budget.

For GPT-shaped graphs (the GPT-2 architecture on the meta device, as in
bench_intra_op.py) on A100-40GB meshes, plans once without a memory bound,
then with budgets at fractions of that plan's peak memory per device (a
budget below 1x binds: the unbounded optimum no longer fits). Prints CPU
seconds of each plan (the solve runs in this process), the median of
--repeats interleaved runs with the spread (min-max), the ratio budgeted /
unbudgeted (issue 14's goal: <= 3), and the predicted step times. Budgeted
plans use the planner's default memory_gap (a memory-bound ILP stops once
its plan is proven within that fraction of the optimum); --exact also
solves each budget once with memory_gap=0 (CBC closes the gap: minutes) and
prints that optimum and the gap plan's excess over it.

    .venv/bin/python benchmarks/bench_memory_ilp.py [--layers 4] [--hidden 1024] \\
        [--meshes 2x4] [--fractions 0.95 0.9] [--repeats 3] [--memory-gap 0.005] [--exact]
"""
import argparse
import gc
import json
import math
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import alpa_torch  # noqa: E402
from alpa_torch import _C  # noqa: E402
from benchmarks.bench_intra_op import gpt  # noqa: E402


def solve(graph, cluster_json, mesh, budget, time_limit_s, memory_gap):
    """(CPU seconds, plan doc, solver stats); None for the doc when no plan fits."""
    options = _C.IntraOpOptions(memory_budget=budget, time_limit_s=time_limit_s,
                                memory_gap=memory_gap)
    request = _C.IntraOpRequest(mesh_shape=mesh, options=options)
    t0 = time.process_time()
    try:
        result = _C.plan_intra_op(graph.graph, cluster_json, request)
    except alpa_torch.PlanInfeasibleError:
        return time.process_time() - t0, None, None
    return time.process_time() - t0, json.loads(result["plan_json"]), result["solver"]


def spread(xs):
    return f"{statistics.median(xs):.2f} ({min(xs):.2f}-{max(xs):.2f})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, nargs="+", default=[4])
    p.add_argument("--hidden", type=int, nargs="+", default=[1024])
    p.add_argument("--meshes", nargs="+", default=["2x4"])
    p.add_argument("--fractions", type=float, nargs="+", default=[0.95, 0.9])
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--time-limit", type=float, default=600.0, help="CBC seconds per plan")
    p.add_argument("--memory-gap", type=float, default=_C.IntraOpOptions().memory_gap)
    p.add_argument("--exact", action="store_true",
                   help="also solve each budget with memory_gap=0 once, for its optimum")
    args = p.parse_args()
    print(f"load: {os.getloadavg()[0]:.2f} (1-min average)")
    print(f"memory_gap: {args.memory_gap}")
    print(f"{'hidden':>6} {'layers':>6} {'mesh':>4} {'budget':>7} {'ilp vars':>8} "
          f"{'unbounded s':>18} {'budgeted s':>18} {'ratio':>7} {'status':>10} "
          f"{'step s (unb.)':>13} {'step s (budg.)':>14}")
    for hidden in args.hidden:
        for layers in args.layers:
            model, inputs = gpt(layers, hidden, args.seq, args.batch)
            graph = alpa_torch.capture(model, inputs)
            gc.collect()
            for mesh_text in args.meshes:
                n0, n1 = (int(x) for x in mesh_text.split("x"))
                cluster = alpa_torch.Cluster.preset("a100-40gb", n0, n1).to_json()
                _, free_plan, _ = solve(graph, cluster, (n0, n1), math.inf, args.time_limit, 0.0)
                peak = free_plan["stages"][0]["memory_bytes"]
                free_step = free_plan["stages"][0]["predicted_time"]
                for fraction in args.fractions:
                    unbounded, budgeted = [], []
                    doc = solver = None
                    for _ in range(args.repeats):  # interleaved
                        unbounded.append(solve(graph, cluster, (n0, n1), math.inf,
                                               args.time_limit, args.memory_gap)[0])
                        seconds, doc, solver = solve(graph, cluster, (n0, n1), fraction * peak,
                                                     args.time_limit, args.memory_gap)
                        budgeted.append(seconds)
                    label = f"{fraction:.2f}x"
                    if doc is None:
                        print(f"{hidden:>6} {layers:>6} {mesh_text:>4} {label:>7} no plan fits")
                        continue
                    ratio = statistics.median(budgeted) / statistics.median(unbounded)
                    print(f"{hidden:>6} {layers:>6} {mesh_text:>4} {label:>7} "
                          f"{solver['num_ilp_variables']:>8} {spread(unbounded):>18} "
                          f"{spread(budgeted):>18} {ratio:>7.1f} {solver['status']:>10} "
                          f"{free_step:>13.5f} {doc['stages'][0]['predicted_time']:>14.5f}",
                          flush=True)
                    if args.exact:
                        exact_s, exact_doc, exact_solver = solve(
                            graph, cluster, (n0, n1), fraction * peak, args.time_limit, 0.0)
                        best = exact_doc["stages"][0]["predicted_time"]
                        print(f"{'':>6} {'':>6} {'':>4} {label:>7} exact (memory_gap=0): "
                              f"{exact_s:.2f} s, {exact_solver['status']}, step {best:.6f} s; "
                              f"gap plan is {doc['stages'][0]['predicted_time'] / best - 1:+.3%}",
                              flush=True)


if __name__ == "__main__":
    main()
