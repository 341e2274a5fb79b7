"""Stage DP (Alpa §5.2) solve time on synthetic cost tables.

For L = 16, 32, 64 layers on clusters of 1x8, 2x8, 4x8 and 8x8 devices
(sub-meshes from alpa_torch.planning.inter_op.submeshes, 5 logical configs each,
B = 64 microbatches) this builds random-but-realistic tables: a stage's cost
is its layers' work divided by n^0.8 (sublinear scaling) plus a per-config
communication overhead that grows with the device count; ~10% of entries
are infeasible; memory bounds follow a 1F1B model (a stage with s successors
holds s+1 microbatches of activations plus its parameters, which shrink
with more devices). Each table is solved twice: without memory bounds and
with them ("binds" when the bounds change the optimum). Prints one row per
run; "ok" means the C++ solve took <= 1 s.

    python benchmarks/bench_stage_dp.py [--layers 16 32 64] [--seed 0]
"""
from __future__ import annotations

import argparse
import math
import random
import time

from alpa_torch.planning.cluster import Cluster
from alpa_torch.planning.inter_op import stage_dp, submeshes

CONFIGS = 5
MICRO_BATCHES = 64
DEVICE_MEMORY = 40.0  # GB


def build_tables(num_layers, subs, rng):
    """Costs [L][L][M][C] in seconds and 1F1B memory bounds of the same shape."""
    # A 28 GB model (parameters + optimizer state) whatever L is, so that
    # memory binds for long stages on few devices but every table is feasible.
    scale = 16.0 / num_layers
    work = [rng.uniform(0.5, 1.5) for _ in range(num_layers)]            # s on one device
    params = [rng.uniform(0.5, 3.0) * scale for _ in range(num_layers)]  # GB
    acts = [rng.uniform(0.5, 4.0) * scale for _ in range(num_layers)]    # GB per microbatch
    overhead = [[rng.uniform(0.0, 0.02) for _ in range(CONFIGS)] for _ in subs]
    costs, bounds = [], []
    for i in range(num_layers):
        cost_row, bound_row = [], []
        for k in range(num_layers):
            w = sum(work[i:k + 1]) if k >= i else 0.0
            p = sum(params[i:k + 1]) if k >= i else 0.0
            a = sum(acts[i:k + 1]) if k >= i else 0.0
            per_mesh_cost, per_mesh_bound = [], []
            for m, (h, d) in enumerate(subs):
                n = h * d
                c_list, b_list = [], []
                for c in range(CONFIGS):
                    if k < i or rng.random() < 0.10:
                        c_list.append(math.inf)
                        b_list.append(-1)
                        continue
                    comm = overhead[m][c] * math.log2(2 * n) * (k - i + 1) ** 0.5
                    c_list.append(w / n ** 0.8 * rng.uniform(0.9, 1.1) + comm)
                    # Sharding config c splits params over n/(c+1)..n devices.
                    shard = max(1.0, n / (1 + c))
                    free = DEVICE_MEMORY - p / shard
                    per_mb = a / n ** 0.5
                    b_list.append(int(free / per_mb) - 1 if free > 0 else -1)
                per_mesh_cost.append(c_list)
                per_mesh_bound.append(b_list)
            cost_row.append(per_mesh_cost)
            bound_row.append(per_mesh_bound)
        costs.append(cost_row)
        bounds.append(bound_row)
    return costs, bounds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--hosts", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    header = (f"{'L':>3} {'cluster':>7} {'memory':>7} {'solve s':>8} {'call s':>7} "
              f"{'t_max evals':>11} {'stages':>6} {'T* s':>9}  <=1s")
    print(header)
    print("-" * len(header))
    worst = 0.0
    for num_layers in args.layers:
        for hosts in args.hosts:
            rng = random.Random(args.seed * 1000 + num_layers * 10 + hosts)
            subs = submeshes(Cluster.preset("a100-40gb", hosts, 8))
            costs, bounds = build_tables(num_layers, subs, rng)
            unbounded = None
            for label, memory in (("none", None), ("1F1B", bounds)):
                start = time.perf_counter()
                r = stage_dp(costs, subs, MICRO_BATCHES, max_n_succ_stages=memory)
                call = time.perf_counter() - start
                worst = max(worst, r.solve_seconds)
                if memory is None:
                    unbounded = r.total_time
                elif r.total_time > unbounded:
                    label = "binds"
                print(f"{num_layers:>3} {hosts}x8{'':>3} {label:>7} {r.solve_seconds:>8.3f} "
                      f"{call:>7.3f} {r.num_t_max_evaluated:>11} {len(r.stages):>6} "
                      f"{r.total_time:>9.3f}  {'ok' if r.solve_seconds <= 1.0 else 'SLOW'}")
    print(f"\nslowest solve: {worst:.3f} s (solve s = C++ stage_dp; call s adds Python "
          f"validation and flattening of the [L, L, M, {CONFIGS}] table)")


if __name__ == "__main__":
    main()
