"""Intra-op planner speed on GPT-shaped graphs.

For hidden sizes 2048 and 8192 and 12/24/48 layers (GPT-2 architecture built
on the meta device, so no weights are allocated), captures the model once
and plans it on meshes (1, 8), (2, 4) and (8, 8) of A100-40GB hosts, printing
graph size, ILP size after follow-merging, and build/solve/total time.

    .venv/bin/python benchmarks/bench_intra_op.py [--layers 12 24 48] [--hidden 2048 8192]

Memory is left unbounded here so every size plans (a 48-layer h=8192 model
does not fit 8 × 40 GB with Adam); the goal measured is planning time:
48 layers, h = 8192, 8 devices in under 10 s.
"""
import argparse
import gc
import math
import time

import torch

import alpa_torch


def gpt(layers: int, hidden: int, seq: int, batch: int):
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()
    cfg = GPT2Config(n_layer=layers, n_embd=hidden, n_head=hidden // 128, vocab_size=51200,
                     n_positions=seq, use_cache=False, bos_token_id=0, eos_token_id=0)
    with torch.device("meta"):
        model = GPT2LMHeadModel(cfg)
    return model, (torch.randint(0, cfg.vocab_size, (batch, seq), device="meta"),)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, nargs="+", default=[12, 24, 48])
    p.add_argument("--hidden", type=int, nargs="+", default=[2048, 8192])
    p.add_argument("--meshes", nargs="+", default=["1x8", "2x4", "8x8"])
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--batch", type=int, default=64)
    args = p.parse_args()

    print(f"{'hidden':>6} {'layers':>6} {'mesh':>5} {'nodes':>6} {'ilp nodes':>9} "
          f"{'ilp vars':>9} {'capture s':>9} {'plan s':>7} {'solve s':>7} {'status':>8} "
          f"{'pred. step s':>12}")
    for hidden in args.hidden:
        for layers in args.layers:
            model, inputs = gpt(layers, hidden, args.seq, args.batch)
            t0 = time.perf_counter()
            graph = alpa_torch.capture(model, inputs)
            capture_s = time.perf_counter() - t0
            gc.collect()  # capture's garbage: its collection would land in the first plan's time
            for mesh in args.meshes:
                n0, n1 = (int(x) for x in mesh.split("x"))
                hosts = n0 if n0 * n1 > 8 or n0 > 1 else 1
                cluster = alpa_torch.Cluster.preset("a100-40gb", hosts, n0 * n1 // hosts)
                t0 = time.perf_counter()
                plan = alpa_torch.plan(graph, mesh_shape=(n0, n1), cluster=cluster,
                                       memory_budget=math.inf)
                plan_s = time.perf_counter() - t0
                s = plan.solver
                print(f"{hidden:>6} {layers:>6} {mesh:>5} {s['num_graph_nodes']:>6} "
                      f"{s['num_ilp_nodes']:>9} {s['num_ilp_variables']:>9} {capture_s:>9.2f} "
                      f"{plan_s:>7.2f} {s['solve_seconds']:>7.2f} {s['status']:>8} "
                      f"{plan.predicted_step_time:>12.4f}", flush=True)


if __name__ == "__main__":
    main()
