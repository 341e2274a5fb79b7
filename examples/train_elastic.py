"""Restart under torchrun: train with alpa_torch, checkpoint with DCP, and
resume from the newest complete checkpoint when torchelastic restarts the
job after a rank died.

    torchrun --standalone --nproc-per-node 2 --max-restarts 1 examples/train_elastic.py \\
        --method spmd --ckpt-dir /tmp/ckpt --kill-rank 1 --kill-at-step 3 --out final.pt
    torchrun ... examples/train_elastic.py --method pipeshard ...    # 2 stages
    python examples/train_elastic.py --out reference.pt              # one process, no alpa_torch

Every `--save-every` steps all ranks save the model and AdamW state with
torch.distributed.checkpoint (`get_state_dict`/`set_state_dict`, see
docs/checkpoint.md) into `<ckpt-dir>/step_<N>` (N = steps done). With
`--kill-rank R --kill-at-step K`, rank R SIGKILLs itself before step K, in
the first attempt only (torchelastic counts attempts in
TORCHELASTIC_RESTART_COUNT); the other ranks fail in their next collective,
torchrun starts every rank again, and they resume from the newest
checkpoint, redoing the steps after it. Rank 0 writes the final weights
(`full_state_dict()`) to `--out`: they equal an uninterrupted run's.

Without torchrun, the same model trains on the same batches in this
process without alpa_torch: the single-process reference. (Unlike
examples/train_gpt.py it starts no processes itself: restarting them is
torchrun's job.)
"""
import argparse
import datetime
import os
import signal
import sys
import time

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", choices=["spmd", "pipeshard"], default="spmd",
                   help="spmd: one stage on mesh (1, world); pipeshard: 2 stages on (1, world/2)")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--ckpt-dir", default="checkpoints")
    p.add_argument("--save-every", type=int, default=2, help="steps between checkpoints")
    p.add_argument("--kill-rank", type=int, default=None)
    p.add_argument("--kill-at-step", type=int, default=None,
                   help="the rank SIGKILLs itself before this step (0-based), first attempt only")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="seconds a collective may wait for a dead peer before failing")
    p.add_argument("--out", default=None, help="rank 0 saves the final weights here (torch.save)")
    p.add_argument("--uninterrupted-out", default=None,
                   help="then train again from scratch in the same processes, without "
                        "checkpoints or a kill, and save those final weights here")
    return p.parse_args(argv)


def build_model() -> torch.nn.Module:
    from examples.models import mlp
    torch.manual_seed(0)
    return mlp(d_in=16, hidden=32, d_out=16, num_layers=2)


def batch(step: int):
    """The global batch of `step`: a function of the step alone, so a
    resumed run sees the batches the uninterrupted one saw."""
    g = torch.Generator().manual_seed(1000 + step)
    return torch.randn(8, 16, generator=g), torch.randn(8, 16, generator=g)


def loss_fn(out, target):
    return torch.nn.functional.mse_loss(out, target)


def make_optimizer(params, lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, weight_decay=0.1)


def megatron_specs(num_layers: int = 2):
    """Pinned tensor-parallel specs (first Linear split by output rows,
    second by input columns): the steps run collectives, so a dead peer is
    felt mid-step. The planner alone replicates a model this small."""
    specs = {}
    for i in range(num_layers):
        specs[f"blocks.{i}.0.weight"] = "S0R"
        specs[f"blocks.{i}.2.weight"] = "RS0"
    return specs


def parallelize(model, method: str, world: int, timeout: float):
    import alpa_torch
    x, _ = batch(0)
    options = dict(timeout=datetime.timedelta(seconds=timeout))
    if method == "spmd":
        return alpa_torch.parallelize(model, (x,), mesh_shape=(1, world),
                                      plan_overrides=megatron_specs(), **options)
    if world % 2:
        raise SystemExit(f"--method pipeshard needs an even number of processes, got {world}")
    if world > 2:
        options["plan_overrides"] = megatron_specs()
    return alpa_torch.parallelize(model, (x,), method="pipeshard", num_micro_batches=2,
                                  layer_boundaries=["blocks.1"],
                                  stage_meshes=[(1, world // 2)] * 2, **options)


def train_step(model, opt, step: int, method: str) -> float:
    x, y = batch(step)
    if method == "pipeshard":
        return model.step(x, y, loss_fn, optimizer=opt)
    loss = loss_fn(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


# ---- checkpoints (docs/checkpoint.md) ------------------------------------------

def _state_dict_options():
    from torch.distributed.checkpoint.state_dict import StateDictOptions
    # optimizer state keyed by parameter FQN, one key per tensor: each
    # pipeline stage writes and reads only its own parameters' entries
    return StateDictOptions(flatten_optimizer_state_dict=True)


def save_checkpoint(ckpt_dir: str, steps_done: int, model, opt) -> None:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict
    from alpa_torch.checkpoint import SavePlanner
    model_sd, optim_sd = get_state_dict(model, opt, options=_state_dict_options())
    # SavePlanner: a weight tied across pipeline stages is written once
    dcp.save({"model": model_sd, "optim": optim_sd},
             checkpoint_id=os.path.join(ckpt_dir, f"step_{steps_done:06d}"),
             planner=SavePlanner())


def latest_checkpoint(ckpt_dir: str):
    """(steps done, path) of the newest complete checkpoint, or (0, None).
    DCP writes `.metadata` last, after every rank wrote its data, so a
    checkpoint cut short by a dying rank has none and is skipped."""
    done = []
    for name in os.listdir(ckpt_dir) if os.path.isdir(ckpt_dir) else []:
        path = os.path.join(ckpt_dir, name)
        if name.startswith("step_") and os.path.exists(os.path.join(path, ".metadata")):
            done.append((int(name[len("step_"):]), path))
    return max(done) if done else (0, None)


def load_checkpoint(path: str, model, opt) -> None:
    """Into a fresh model and optimizer: get_state_dict gives the targets
    (and creates the optimizer's state, which a fresh optimizer does not
    have yet), dcp.load fills them in place, set_state_dict installs them."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
    options = _state_dict_options()
    model_sd, optim_sd = get_state_dict(model, opt, options=options)
    state = {"model": model_sd, "optim": optim_sd}
    dcp.load(state, checkpoint_id=path)
    set_state_dict(model, opt, model_state_dict=state["model"], optim_state_dict=state["optim"],
                   options=options)


# ---- the job --------------------------------------------------------------------

def train_distributed(args) -> None:
    rank, world = dist.get_rank(), dist.get_world_size()
    attempt = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    model = parallelize(build_model(), args.method, world, args.timeout)
    opt = make_optimizer(model.parameters(), args.lr)
    # rank 0 lists the directory and tells the others, so all resume alike
    found = [latest_checkpoint(args.ckpt_dir) if rank == 0 else None]
    dist.broadcast_object_list(found, src=0)
    start, path = found[0]
    if path is not None:
        load_checkpoint(path, model, opt)
    if rank == 0:
        print(f"attempt {attempt}: {args.method} on {world} ranks, "
              f"{f'resumed from {path} ({start} steps done)' if path else 'from scratch'}",
              flush=True)
    for step in range(start, args.steps):
        if attempt == 0 and rank == args.kill_rank and step == args.kill_at_step:
            print(f"rank {rank}: SIGKILL before step {step}", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        loss = train_step(model, opt, step, args.method)
        if rank == 0:
            print(f"step {step}  loss {loss:.6f}", flush=True)
        if (step + 1) % args.save_every == 0 or step + 1 == args.steps:
            save_checkpoint(args.ckpt_dir, step + 1, model, opt)
    save_weights(model, args.out)
    if args.uninterrupted_out:
        # the same job again from scratch, without checkpoints or a kill, in
        # these processes (same mesh, same plan): its weights must be equal
        model = parallelize(build_model(), args.method, world, args.timeout)
        opt = make_optimizer(model.parameters(), args.lr)
        for step in range(args.steps):
            train_step(model, opt, step, args.method)
        save_weights(model, args.uninterrupted_out)


def save_weights(model, path) -> None:
    full = model.full_state_dict()  # collective: every rank
    if dist.get_rank() == 0 and path:
        torch.save(full, path)


def init_process_group(timeout: float) -> None:
    """Gloo on torchrun's rendezvous, each attempt in its own store namespace.

    torchrun's c10d rendezvous shares one TCPStore with the workers of every
    attempt (torch 2.13; see pytorch/pytorch#135712), and the attempts'
    keys are not separated: a
    restarted rank can read a dead peer's Gloo address from the previous
    attempt and fail in init_process_group with "Gloo connectFullMesh failed
    ... Connection refused". A per-attempt prefix keeps them apart (all
    workers of a single-node job restart together, so they agree on it);
    launching with TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 (a new store per
    attempt) also works, and is the choice for multi-node jobs whose nodes
    may be replaced.
    """
    delta = datetime.timedelta(seconds=timeout)
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        dist.init_process_group("gloo", timeout=delta)
        return
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]),
                          is_master=False, timeout=delta)
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    dist.init_process_group("gloo", store=dist.PrefixStore(f"attempt_{attempt}", store),
                            rank=int(os.environ["RANK"]),
                            world_size=int(os.environ["WORLD_SIZE"]), timeout=delta)


def train_single_process(args) -> dict:
    """The reference: the same model, batches and AdamW, eager, one process.
    Returns the final state_dict (and saves it to --out)."""
    model = build_model()
    opt = make_optimizer(model.parameters(), args.lr)
    for step in range(args.steps):
        x, y = batch(step)
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    final = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if args.out:
        torch.save(final, args.out)
    return final


def main(argv=None) -> None:
    args = parse_args(argv)
    if "RANK" not in os.environ:  # not under torchrun
        train_single_process(args)
        return
    torch.set_num_threads(1)
    started = time.monotonic()
    init_process_group(args.timeout)
    try:
        train_distributed(args)
    finally:
        dist.destroy_process_group()
    if int(os.environ["RANK"]) == 0:
        print(f"done in {time.monotonic() - started:.1f} s", flush=True)


if __name__ == "__main__":
    main()
