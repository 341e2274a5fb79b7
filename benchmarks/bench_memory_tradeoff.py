"""Memory/time trade-off of the planner's choice as the budget shrinks (issue 14).

One GPT model (GPT-2 architecture on the meta device, as in
bench_intra_op.py; default 24 layers, h 2048, seq 1024, micro-batch 4, 16
microbatches, bf16) on a simulated A100-40GB cluster (default 2 x 4) is
planned with method="pipeshard" at per-device budgets from the unbounded
plan's peak down by a constant factor until no plan fits, once with the
memory levers the planner knows (remat="auto") and once without
(remat="none"). Prints per budget: predicted step time, predicted peak
memory per device (with the microbatches in flight), stages and how many
recompute, and the planning time; writes a PNG of step time and peak memory
against the budget (rendered from SVG by rsvg-convert, Debian librsvg2-bin).

    .venv/bin/python benchmarks/bench_memory_tradeoff.py [--layers 24] [--hidden 2048] \\
        [--cluster 2x4] [--factor 0.8] [--png benchmarks/memory_tradeoff.png]
"""
import argparse
import math
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import alpa_torch  # noqa: E402
from bench_intra_op import gpt  # noqa: E402

GIB = 2.0 ** 30
SERIES = (("auto", "remat auto (levers on)", "#1f77b4"), ("none", "remat none", "#d62728"))


def plan_at(graph, cluster, budget, remat, args):
    """(plan or None, planning seconds)."""
    t0 = time.perf_counter()
    try:
        plan = alpa_torch.plan(graph, cluster=cluster, method="pipeshard",
                               num_micro_batches=args.micro_batches, memory_budget=budget,
                               remat=remat, precision=args.precision)
    except alpa_torch.PlanInfeasibleError:
        plan = None
    return plan, time.perf_counter() - t0


def svg_chart(x0, y0, w, h, title, xlabel, ylabel, series, diagonal=False):
    """One line chart as SVG elements; series: [(label, color, [(x, y)])]."""
    pts = [p for _, _, ps in series for p in ps]
    xmin, xmax = min(p[0] for p in pts), max(p[0] for p in pts)
    ymin, ymax = 0.0, max(p[1] for p in pts) * 1.1
    if diagonal:
        ymax = max(ymax, xmax * 1.05)

    def sx(x):
        return x0 + 60 + (x - xmin) / ((xmax - xmin) or 1) * (w - 80)

    def sy(y):
        return y0 + h - 40 - (y - ymin) / ((ymax - ymin) or 1) * (h - 70)

    out = [f'<text x="{x0 + w / 2}" y="{y0 + 16}" text-anchor="middle" font-size="14">{title}</text>',
           f'<line x1="{sx(xmin)}" y1="{sy(0)}" x2="{sx(xmax)}" y2="{sy(0)}" stroke="black"/>',
           f'<line x1="{sx(xmin)}" y1="{sy(0)}" x2="{sx(xmin)}" y2="{sy(ymax)}" stroke="black"/>',
           f'<text x="{x0 + w / 2}" y="{y0 + h - 5}" text-anchor="middle" font-size="12">{xlabel}</text>',
           f'<text x="{x0 + 14}" y="{y0 + h / 2}" text-anchor="middle" font-size="12" '
           f'transform="rotate(-90 {x0 + 14} {y0 + h / 2})">{ylabel}</text>']
    for k in range(5):
        xv = xmin + (xmax - xmin) * k / 4
        yv = ymin + (ymax - ymin) * k / 4
        out.append(f'<text x="{sx(xv)}" y="{sy(0) + 14}" text-anchor="middle" font-size="10">{xv:.3g}</text>')
        out.append(f'<text x="{sx(xmin) - 4}" y="{sy(yv) + 3}" text-anchor="end" font-size="10">{yv:.3g}</text>')
    if diagonal:
        out.append(f'<line x1="{sx(xmin)}" y1="{sy(xmin)}" x2="{sx(xmax)}" y2="{sy(xmax)}" '
                   f'stroke="gray" stroke-dasharray="4 3"/>')
    for i, (label, color, ps) in enumerate(series):
        ps = sorted(ps)
        if ps:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in ps)
            out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
            out += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{color}"/>' for x, y in ps]
        out.append(f'<text x="{x0 + 70}" y="{y0 + 36 + 14 * i}" font-size="11" fill="{color}">{label}</text>')
    return out


def write_png(rows, path, title):
    charts = []
    for j, (name, ylabel, diagonal) in enumerate((("step", "predicted step time (s)", False),
                                                  ("peak", "predicted peak per device (GiB)", True))):
        series = [(label, color, [(r["budget"] / GIB, r[remat][name]) for r in rows if r[remat]])
                  for remat, label, color in SERIES]
        charts += svg_chart(j * 420, 0, 420, 320, title if j == 0 else "peak memory (dashed: = budget)",
                            "memory budget per device (GiB)", ylabel, series, diagonal)
    svg = ('<svg xmlns="http://www.w3.org/2000/svg" width="840" height="320">'
           '<rect width="840" height="320" fill="white"/>' + "".join(charts) + "</svg>")
    svg_path = os.path.splitext(path)[0] + ".svg"
    with open(svg_path, "w") as f:
        f.write(svg)
    if shutil.which("rsvg-convert") is None:
        print(f"rsvg-convert not found (Debian librsvg2-bin): wrote {svg_path} only")
        return
    subprocess.run(["rsvg-convert", "-o", path, svg_path], check=True)
    os.remove(svg_path)
    print(f"wrote {path}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=24)
    p.add_argument("--hidden", type=int, default=2048)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--micro-batch", type=int, default=4)
    p.add_argument("--micro-batches", type=int, default=16)
    p.add_argument("--cluster", default="2x4", help="hosts x devices per host (A100-40GB)")
    p.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    p.add_argument("--factor", type=float, default=0.8, help="each budget is this x the last")
    p.add_argument("--max-points", type=int, default=12)
    p.add_argument("--png", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                 "memory_tradeoff.png"))
    args = p.parse_args()
    hosts, per_host = (int(x) for x in args.cluster.split("x"))
    model, inputs = gpt(args.layers, args.hidden, args.seq, args.micro_batch)
    graph = alpa_torch.capture(model, inputs)
    cluster = alpa_torch.Cluster.preset("a100-40gb", hosts, per_host)
    print(f"load: {os.getloadavg()[0]:.2f} (1-min average)")
    print(f"GPT {args.layers} layers, h {args.hidden}, seq {args.seq}, micro-batch "
          f"{args.micro_batch} x {args.micro_batches}, {args.precision}, {args.cluster} A100-40GB")
    top, _ = plan_at(graph, cluster, math.inf, "none", args)
    budget = top.memory_per_device
    print(f"{'budget GiB':>10} | {'remat':>5} {'step s':>9} {'peak GiB':>9} {'stages':>6} "
          f"{'remat st':>8} {'plan s':>7}")
    rows = []
    for _ in range(args.max_points):
        row = {"budget": budget}
        for remat, _, _ in SERIES:
            plan, seconds = plan_at(graph, cluster, budget, remat, args)
            row[remat] = None if plan is None else {
                "step": plan.predicted_step_time, "peak": plan.memory_per_device / GIB,
                "stages": len(plan.stages), "remat": sum(s.remat for s in plan.stages)}
            shown = ("no plan fits" if plan is None else
                     f"{plan.predicted_step_time:>9.4f} {plan.memory_per_device / GIB:>9.2f} "
                     f"{len(plan.stages):>6} {row[remat]['remat']:>8}")
            print(f"{budget / GIB:>10.2f} | {remat:>5} {shown} {seconds:>7.1f}", flush=True)
        rows.append(row)
        if row["auto"] is None:
            break
        budget *= args.factor
    write_png(rows, args.png, f"GPT {args.layers}L h{args.hidden}, {args.cluster} A100-40GB, "
                              f"{args.precision}")


if __name__ == "__main__":
    main()
