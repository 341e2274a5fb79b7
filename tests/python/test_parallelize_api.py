"""parallelize(): pinned specs, checkpoints, and bad input on every rank."""
import datetime
import os

import numpy as np
import pytest
import torch

from dist_harness import run_ranks
from examples.models import FeedForward as MLP
from test_parallelize import loss_of, train




def mlp_case(batch=16, h=32):
    torch.manual_seed(0)
    return MLP(h), (torch.randn(batch, h),)


def _override_worker(rank, world):
    import alpa_torch
    model, args = mlp_case()
    pmodel = alpa_torch.parallelize(model, args, mesh_shape=(1, world),
                                    plan_overrides={"fc1.weight": "S0R", "fc2.weight": "RS0"})
    losses = train(pmodel, args, "sgd")
    return pmodel.alpa_plan.param_specs, losses


def test_pinned_specs_still_train_exactly():
    results = run_ranks(_override_worker, 2)
    model, args = mlp_case()
    ref = train(model, args, "sgd")
    for specs, losses in results:
        assert specs["fc1.weight"] == "S0R" and specs["fc2.weight"] == "RS0"
        np.testing.assert_allclose(losses, ref, rtol=1e-5)


def _steps(model, opt, args, n):
    """n optimizer steps; the loss of each."""
    losses = []
    for _ in range(n):
        loss = loss_of(model(*args))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def _checkpoint_worker(rank, world, path):
    import torch.distributed.checkpoint as dcp
    import alpa_torch
    model, args = mlp_case()
    pmodel = alpa_torch.parallelize(model, args, mesh_shape=(1, world), cost_mode="alpa")
    opt = torch.optim.SGD(pmodel.parameters(), lr=0.05)
    _steps(pmodel, opt, args, 2)
    dcp.save(pmodel.state_dict(), checkpoint_id=path)
    after_save = _steps(pmodel, opt, args, 3)
    fresh, _ = mlp_case()
    torch.manual_seed(99)  # different initial weights: the checkpoint must win
    for p in fresh.parameters():
        torch.nn.init.normal_(p)
    restored = alpa_torch.parallelize(fresh, args, mesh_shape=(1, world), cost_mode="alpa")
    state = restored.state_dict()
    dcp.load(state, checkpoint_id=path)
    restored.load_state_dict(state)
    opt2 = torch.optim.SGD(restored.parameters(), lr=0.05)
    resumed = _steps(restored, opt2, args, 3)
    return after_save, resumed


def test_checkpoint_round_trip_continues_identically(tmp_path):
    for after_save, resumed in run_ranks(_checkpoint_worker, 2, str(tmp_path / "ckpt")):
        np.testing.assert_allclose(resumed, after_save, rtol=1e-6)


def _value_error_of(call) -> str:
    """The ValueError message `call()` raises (or "no error")."""
    try:
        call()
    except ValueError as e:
        return str(e)
    return "no error"


def _mesh_mismatch_worker(rank, world):
    import alpa_torch
    model, args = mlp_case()
    return _value_error_of(lambda: alpa_torch.parallelize(model, args, mesh_shape=(2, 2)))


def test_world_size_must_match_mesh():
    for message in run_ranks(_mesh_mismatch_worker, 2):
        assert "has 4 devices but the job has 2 ranks" in message


def _shape_mismatch_worker(rank, world):
    import alpa_torch
    model, _ = mlp_case()
    args = (torch.randn(16 + 8 * rank, 32),)
    return _value_error_of(lambda: alpa_torch.parallelize(model, args, mesh_shape=(1, world)))


def test_different_example_shapes_are_rejected_on_every_rank():
    for message in run_ranks(_shape_mismatch_worker, 2):
        assert "ranks captured different graphs" in message and "ranks [1]" in message


def _bad_spec_worker(rank, world):
    import alpa_torch
    model, args = mlp_case(h=6)
    return _value_error_of(lambda: alpa_torch.parallelize(
        model, args, mesh_shape=(1, world), plan_overrides={"fc2.weight": "S0R"}))


def test_spec_that_does_not_divide_fails_on_every_rank():
    for message in run_ranks(_bad_spec_worker, 4):
        assert "does not divide" in message and "planning failed on rank 0" in message


def _dying_rank_worker(rank, world):
    import alpa_torch
    model, args = mlp_case()
    pmodel = alpa_torch.parallelize(model, args, mesh_shape=(1, world), cost_mode="alpa",
                                    timeout=datetime.timedelta(seconds=20))
    loss_of(pmodel(*args)).backward()
    if rank == 1:
        os._exit(3)  # dies mid-training
    try:
        for _ in range(3):
            loss_of(pmodel(*args)).backward()
    except Exception as e:  # noqa: BLE001
        return f"{type(e).__name__}: {e}"
    return "no error"


def test_a_dying_rank_fails_the_others_instead_of_hanging():
    import time
    start = time.monotonic()
    results = run_ranks(_dying_rank_worker, 2, timeout=120, allow_missing=True)
    assert results[1] is None  # the rank that died
    assert results[0] != "no error" and "Error" in results[0], results[0]
    assert time.monotonic() - start < 120
