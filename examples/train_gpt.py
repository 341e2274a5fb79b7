"""Main job: plan and train a GPT-2 with alpa_torch on several processes.

By default it starts 4 local CPU processes itself (Gloo over 127.0.0.1);
under torchrun it uses the processes torchrun started (NCCL on GPUs):

    python examples/train_gpt.py                          # 4 CPU processes
    python examples/train_gpt.py --mesh 2 2 --layers 4 --hidden 512 --steps 20
    python examples/train_gpt.py --compile                # torch.compile(backend="alpa")
    torchrun --nproc-per-node 8 examples/train_gpt.py --mesh 1 8 --cluster a100-40gb

Rank 0 prints the plan (per-parameter specs, collectives, predicted step
time) and every step's loss; the model is a Hugging Face GPT2LMHeadModel
built from a config (random weights, no network).
"""
import argparse
import datetime
import os
import socket
import sys
import time

import torch
import torch.distributed as dist


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--vocab", type=int, default=512)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--mesh", type=int, nargs=2, default=[1, 4], metavar=("N0", "N1"))
    p.add_argument("--cluster", default=None,
                   help="hardware to plan for (a100-40gb, h100-80gb, cpu-gloo); "
                        "default: the local CPU processes")
    p.add_argument("--cost-mode", default="seconds", choices=["seconds", "alpa"])
    p.add_argument("--compile", action="store_true",
                   help='torch.compile(model, backend="alpa") instead of alpa_torch.parallelize')
    return p.parse_args(argv)


def build_model(args):
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()
    torch.manual_seed(0)
    cfg = GPT2Config(n_layer=args.layers, n_embd=args.hidden, n_head=args.heads,
                     vocab_size=args.vocab, n_positions=args.seq, use_cache=False,
                     bos_token_id=0, eos_token_id=0,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(cfg)


def train(args) -> None:
    import alpa_torch
    rank = dist.get_rank()
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" \
        else torch.device("cpu")
    model = build_model(args).to(device)
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, args.vocab, (args.batch, args.seq + 1), generator=g).to(device)
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    start = time.perf_counter()
    options = dict(mesh_shape=tuple(args.mesh), cluster=args.cluster, cost_mode=args.cost_mode)
    if args.compile:
        # no alpa_torch import needed: the backend is found by its entry point;
        # each graph is planned and the parameters sharded at the first call
        pmodel = torch.compile(model, backend="alpa", options=options)
    else:
        pmodel = alpa_torch.parallelize(model, (inputs,), **options)
        report_plan(rank, pmodel.alpa_plan, start)
    opt = torch.optim.AdamW(pmodel.parameters(), lr=args.lr)
    for step in range(args.steps):
        t0 = time.perf_counter()
        logits = pmodel(inputs).logits
        if args.compile and step == 0:
            report_plan(rank, model.alpa_plans[0], start)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, args.vocab), targets.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if rank == 0:
            print(f"step {step:3d}  loss {loss.item():.4f}  {time.perf_counter() - t0:.3f} s", flush=True)


def report_plan(rank, plan, start) -> None:
    if rank == 0:
        print(f"planned + sharded in {time.perf_counter() - start:.1f} s on "
              f"{dist.get_world_size()} ranks ({dist.get_backend()})")
        print(plan.explain())


def _worker(rank, world, port, argv):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    dist.init_process_group("gloo", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=120))
    try:
        train(parse_args(argv))
    finally:
        dist.destroy_process_group()


def main() -> None:
    argv = sys.argv[1:]
    args = parse_args(argv)
    if "RANK" in os.environ:  # launched by torchrun
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=120))
        try:
            train(args)
        finally:
            dist.destroy_process_group()
        return
    world = args.mesh[0] * args.mesh[1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    import torch.multiprocessing as mp
    mp.start_processes(_worker, args=(world, port, argv), nprocs=world, start_method="spawn")


if __name__ == "__main__":
    main()
