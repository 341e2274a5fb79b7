"""Restart under torchrun: examples/train_elastic.py on 2 Gloo processes
under `torchrun --standalone --max-restarts 1`. Rank 1 SIGKILLs itself
before step 3 in the first attempt (after the checkpoint of step 2);
torchelastic restarts both ranks, they resume from that checkpoint, redo
step 2 and finish. The final weights equal, bit for bit, those of an
uninterrupted run in the same processes (same mesh, same plan: the same
floating-point operations in the same order), and, to rounding, those of
single-process eager training (1e-6: the sharded runs sum partial matmul
products and microbatch gradients in another order; measured ≤ 6e-8).

Every torchrun runs in its own session under a wall-clock limit; on
expiry the whole session (agent and workers) is killed."""
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT

EXAMPLE = os.path.join(ROOT, "examples", "train_elastic.py")
WALL_LIMIT_S = 150  # per torchrun job; a passing job takes ~20 s on 2 idle cores
GROUP_TIMEOUT_S = 20  # a survivor blocked on the dead rank fails within this


def torchrun():
    exe = os.path.join(os.path.dirname(sys.executable), "torchrun")
    return [exe] if os.path.exists(exe) else [sys.executable, "-m", "torch.distributed.run"]


def run_bounded(cmd, env, limit_s):
    """(returncode, output) of `cmd`; its whole session dies at `limit_s`."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, cwd=ROOT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=limit_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"torchrun did not end within {limit_s} s:\n{out[-6000:]}")
    return proc.returncode, out


@pytest.fixture(scope="module")
def single_process():
    from examples import train_elastic
    return train_elastic.train_single_process(train_elastic.parse_args([]))


@pytest.mark.parametrize("method", ["spmd", "pipeshard"])
def test_killed_rank_restarts_and_resumes(method, tmp_path, single_process):
    final, uninterrupted = tmp_path / "final.pt", tmp_path / "uninterrupted.pt"
    cmd = torchrun() + [
        "--standalone", "--nproc-per-node", "2", "--max-restarts", "1", "--monitor-interval", "0.1",
        EXAMPLE, "--method", method, "--steps", "6", "--save-every", "2",
        "--ckpt-dir", str(tmp_path / "ckpt"), "--kill-rank", "1", "--kill-at-step", "3",
        "--timeout", str(GROUP_TIMEOUT_S), "--out", str(final),
        "--uninterrupted-out", str(uninterrupted)]
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    rc, out = run_bounded(cmd, env, WALL_LIMIT_S)
    assert rc == 0, out[-6000:]
    assert "rank 1: SIGKILL before step 3" in out, out[-6000:]
    assert "attempt 0: " in out and "from scratch" in out, out[-6000:]
    assert f"attempt 1: {method} on 2 ranks, resumed from" in out, out[-6000:]
    assert "step_000002 (2 steps done)" in out, out[-6000:]
    assert "attempt 2" not in out

    resumed, reference = torch.load(final), torch.load(uninterrupted)
    assert set(resumed) == set(reference) == set(single_process)
    for name in reference:
        assert torch.equal(resumed[name], reference[name]), name
        np.testing.assert_allclose(resumed[name].numpy(), single_process[name].numpy(),
                                   rtol=1e-5, atol=1e-6, err_msg=name)
