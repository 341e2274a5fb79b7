"""Demo: capture a GPT-2 into alpa_torch's C++ graph IR and plan it.

Builds a Hugging Face GPT2LMHeadModel from a small GPT2Config (random
weights, no network), captures it at the ATen level, and prints one row per
layer (ops, parameters, forward FLOPs), checked against PyTorch's own
FlopCounterMode. Then plans the intra-op sharding of the same graph for a
simulated cluster (default: one host of 4 A100-40GB) and prints the
parameter specs and predicted step time. Planning needs no GPU.

    python examples/capture_gpt2.py --layers 4 --hidden 1024 --mesh 1 4 --save gpt2.json
"""
import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

import alpa_torch


def build_gpt2(layers: int, hidden: int, heads: int, vocab: int, seq: int):
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    config = GPT2Config(n_layer=layers, n_embd=hidden, n_head=heads,
                        vocab_size=vocab, n_positions=seq, use_cache=False,
                        bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(config)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--vocab", type=int, default=1024)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--save", help="write the captured graph as JSON here")
    p.add_argument("--mesh", type=int, nargs=2, default=[1, 4], metavar=("N0", "N1"),
                   help="logical mesh to plan for (default 1 4)")
    p.add_argument("--cluster", default="a100-40gb",
                   help=f"simulated hardware preset ({', '.join(alpa_torch.Cluster.preset_names())})")
    args = p.parse_args()

    torch.manual_seed(0)
    model = build_gpt2(args.layers, args.hidden, args.heads, args.vocab, args.seq)
    tokens = torch.randint(0, args.vocab, (args.batch, args.seq))

    start = time.perf_counter()
    captured = alpa_torch.capture(model, (tokens,))
    elapsed = time.perf_counter() - start
    print(f"captured GPT-2 ({args.layers} layers, hidden {args.hidden}, batch "
          f"{args.batch} x seq {args.seq}) in {elapsed:.2f} s\n")
    print(captured.summary())

    from torch.nn.attention import SDPBackend, sdpa_kernel
    # the math attention kernel is made of bmm, which FlopCounterMode counts
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(tokens)
    ours = captured.total_flops(["matmul", "convolution", "attention"])
    theirs = counter.get_total_flops()
    print(f"\nmatmul+attention FLOPs: alpa_torch {ours:,.0f}  "
          f"torch FlopCounterMode {theirs:,}  -> "
          f"{'equal' if ours == theirs else 'DIFFERENT'}")
    if args.save:
        captured.save(args.save)
        print(f"saved graph to {args.save}")

    n0, n1 = args.mesh
    cluster = alpa_torch.Cluster.preset(args.cluster, 1, n0 * n1)
    start = time.perf_counter()
    plan = alpa_torch.plan(captured, mesh_shape=(n0, n1), cluster=cluster)
    elapsed = time.perf_counter() - start
    print(f"\nplanned on {cluster} as mesh ({n0}, {n1}) in {elapsed:.2f} s "
          f"({plan.solver['num_ilp_nodes']} ILP nodes after merging {plan.solver['num_graph_nodes']})")
    layer0 = {k: v for k, v in plan.param_specs.items()
              if k.startswith("transformer.h.0.") and k.endswith("weight")}
    for name, spec in layer0.items():
        print(f"  {name:<38} {spec}")
    print(f"predicted step time {plan.predicted_step_time * 1e3:.3f} ms, "
          f"{plan.memory_per_device / 2**30:.3f} GiB per device, "
          f"{len(plan.collectives())} collectives (plan.explain() lists them)")


if __name__ == "__main__":
    main()
