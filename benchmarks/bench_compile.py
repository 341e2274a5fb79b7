"""torch.compile(model, backend="alpa") step time vs parallelize(), side by side.

Both doors run the same plan through the same rewritten program; what the
compile door adds is Dynamo's guard check per call, putting the parameter
placeholders in and the shards back around each forward, and the gather and
re-slice at graph boundaries. Spawns --world local CPU processes (Gloo;
default 2, one per core) and, in the same processes, times one training
step (forward, backward, SGD step), the two models' steps interleaved:
  B. a Megatron-style MLP block (h=1024, batch 16: tensor parallel);
  G. a Hugging Face GPT-2 (2 layers, hidden 256, seq 64, batch 8).
Prints the ratio compile / parallelize (goal <= 1.05).

    .venv/bin/python benchmarks/bench_compile.py [--steps 20]
"""
import datetime
import os
import sys

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_spmd import bench_args, run_workers, time_side_by_side  # noqa: E402
from examples.models import FeedForward as MLP  # noqa: E402


class Logits(torch.nn.Module):
    """GPT-2 returning its logits (a tensor, for the shared timing loop)."""

    def __init__(self):
        super().__init__()
        from transformers import GPT2Config, GPT2LMHeadModel
        from transformers.utils import logging as hf_logging
        hf_logging.set_verbosity_error()
        cfg = GPT2Config(n_layer=2, n_embd=256, n_head=4, vocab_size=512, n_positions=64,
                         use_cache=False, bos_token_id=0, eos_token_id=0,
                         resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
        self.gpt = GPT2LMHeadModel(cfg)

    def forward(self, ids):
        return self.gpt(ids).logits


def worker(rank, world, port, steps, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=120))
    import warnings
    warnings.simplefilter("ignore")
    import alpa_torch
    rows = []
    cases = [("B  MLP h=1024 batch 16", lambda: MLP(1024), torch.randn(16, 1024)),
             ("G  GPT-2 2x256 seq 64", Logits,
              torch.randint(0, 512, (8, 64), generator=torch.Generator().manual_seed(0)))]
    for name, build, x in cases:
        torch.manual_seed(0)
        pmodel = alpa_torch.parallelize(build(), (x,), mesh_shape=(1, world))
        torch.manual_seed(0)
        compiled = torch.compile(build(), backend="alpa", options={"mesh_shape": (1, world)})
        compile_t, parallel_t = time_side_by_side(compiled, x, pmodel, x, steps)
        rows.append((name, compile_t, parallel_t))
    if rank == 0:
        out.put(rows)
    dist.destroy_process_group()


def main():
    args = bench_args(__doc__)
    rows = run_workers(worker, args.world, args.steps)
    print(f"{'case':<24} {'compile ms':>11} {'parallelize ms':>15} {'ratio':>6}")
    for case, a, b in rows:
        print(f"{case:<24} {a * 1e3:>11.2f} {b * 1e3:>15.2f} {a / b:>6.2f}")


if __name__ == "__main__":
    main()
