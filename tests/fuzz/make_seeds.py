"""Writes the seed inputs of every target into tests/fuzz/seeds/ (committed;
rerun after a change of the graph or plan format).

    python tests/fuzz/make_seeds.py

graph: graphs captured from examples/models and small Hugging Face models
(GPT-2, BERT) with planning options; plan: their SPMD and pipeshard plans;
ilp: small problems (costs, edges, memory, budgets);
stage_dp: small cost tables; torchscript: scripted and traced modules.
"""
from __future__ import annotations

import io
import json
import math
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "python"))

import common  # noqa: E402,F401  (paths, offline Hugging Face)
import torch  # noqa: E402

import alpa_torch  # noqa: E402
from examples.models import mlp, moe_layer, wide_resnet  # noqa: E402

SEEDS = os.path.join(HERE, "seeds")


def write(target: str, name: str, data) -> None:
    os.makedirs(os.path.join(SEEDS, target), exist_ok=True)
    if not isinstance(data, bytes):
        data = (data if isinstance(data, str) else common.dump(data)).encode()
    with open(os.path.join(SEEDS, target, name), "wb") as f:
        f.write(data)


def models():
    from conftest import bert_model, gpt2_model
    from examples.models import moe_example_inputs, wide_resnet_example_inputs
    torch.manual_seed(0)
    yield "mlp", mlp(d_in=16, hidden=32, d_out=16), (torch.randn(4, 16),)
    yield "moe", moe_layer(d_model=16, num_experts=2, ffn=32), moe_example_inputs(
        batch=2, seq=4, d_model=16)
    yield "wrn", wide_resnet(depth=10, width=1, base_channels=4), wide_resnet_example_inputs(
        batch=2, image_size=8)
    yield "gpt2", *gpt2_model(layers=1, hidden=16, heads=2, vocab=32, seq=8)
    yield "bert", *bert_model(layers=1, hidden=16, heads=2, vocab=32, seq=8)


def graph_and_plan_seeds() -> None:
    for name, model, args in models():
        args = tuple(a[..., :8] if a.dtype == torch.long else a for a in args)
        graph = alpa_torch.capture(model, args)
        doc = json.loads(graph.to_json())
        runs = [("intra_op", [1, 2], {}), ("intra_op", [2, 2], {})]
        if name in ("mlp", "gpt2"):
            runs.append(("pipeshard", [1, 2], {"num_micro_batches": 2}))
        for method, mesh, extra in runs:
            options = {"method": method, "mesh": mesh, **extra}
            tag = f"{name}-{method}-{mesh[0]}x{mesh[1]}"
            write("graph", tag + ".json", {"graph": doc, "options": options})
            plan = alpa_torch.plan(graph, mesh_shape=tuple(mesh), method=method,
                                   **{k: v for k, v in extra.items()})
            write("plan", tag + ".json", plan.to_json())
        print("seeded", name, len(graph.to_json()), "bytes of graph JSON")


def ilp_seeds() -> None:
    rng = random.Random(0)
    write("ilp", "two-nodes.json", {"problem": {
        "node_costs": [[1.0, 2.0], [3.0, 0.5]],
        "edges": [{"src": 0, "dst": 1, "costs": [[0.0, 1.0], [1.0, 0.0]]}]}, "choice": [0, 1]})
    for n in range(8):
        k = [rng.randint(1, 3) for _ in range(rng.randint(2, 5))]
        costs = [[round(rng.uniform(0, 10), 3) if rng.random() > 0.1 else math.inf
                  for _ in range(s)] for s in k]
        edges = [{"src": i, "dst": j, "costs": [[round(rng.uniform(0, 5), 3) for _ in range(k[j])]
                                                for _ in range(k[i])]}
                 for i in range(len(k)) for j in range(i + 1, len(k)) if rng.random() < 0.5]
        problem = {"node_costs": costs, "edges": edges}
        if n % 2:
            problem["node_memory"] = [[rng.choice([0.5, 1.0, 2.0, 4.0]) for _ in range(s)]
                                      for s in k]
            problem["liveness"] = [list(range(t, min(len(k), t + 2))) for t in range(len(k))]
            problem["memory_budget"] = rng.choice([2.0, 4.0, 6.0])
        write("ilp", f"random-{n}.json", {"problem": problem, "choice": [0] * len(k)})


def stage_dp_seeds() -> None:
    rng = random.Random(1)
    for n in range(6):
        L, subs = rng.randint(1, 4), [[1, 1], [1, 2]] if n % 2 else [[1, 1], [1, 2], [2, 2]]
        C = rng.randint(1, 2)
        costs = [[[[round(rng.uniform(0.1, 4) * (k - i + 1) / (s[0] * s[1]), 4) for _ in range(C)]
                   for s in subs] for k in range(L)] for i in range(L)]
        doc = {"costs": costs, "submeshes": subs, "B": rng.randint(1, 4)}
        if n % 3 == 0:
            doc["bounds"] = [[[[rng.choice([-1, 0, 1, 3, None]) for _ in range(C)] for _ in subs]
                              for _ in range(L)] for _ in range(L)]
        if n == 4:
            doc["max_num_stages"], doc["numpy"] = 2, True
        write("stage_dp", f"table-{n}.json", doc)


def torchscript_seeds() -> None:
    from test_cpp_api import _Attention, _TinyLM

    def save(module, inputs):
        out = io.BytesIO()
        torch.jit.save(module, out, _extra_files={"fuzz_inputs": "\n".join(inputs)})
        return out.getvalue()

    torch.manual_seed(0)
    small = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4))
    write("torchscript", "mlp-script.pt", save(torch.jit.script(small), ["f32[2,8]"]))
    write("torchscript", "lm-script.pt", save(torch.jit.script(_TinyLM().eval()), ["i64[2,8]"]))
    x = torch.randn(2, 8, 32)
    for kind, module in (("script", torch.jit.script(_Attention())),
                         ("trace", torch.jit.trace(_Attention(), (x,)))):
        write("torchscript", f"attention-{kind}.pt", save(module, ["f32[2,8,32]"]))
    nn = torch.nn
    conv = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    traced = torch.jit.trace(conv, (torch.randn(2, 3, 8, 8),))
    write("torchscript", "conv-trace.pt", save(traced, ["f32[2,3,8,8]"]))


if __name__ == "__main__":
    graph_and_plan_seeds()
    ilp_seeds()
    stage_dp_seeds()
    torchscript_seeds()
