"""Mixed precision (issue 14): precision="bf16" plans price activations in
the dtypes torch.autocast gives them, and parallelize() runs the step under
autocast with fp32 master weights. On 2 and 4 Gloo processes, 5 AdamW steps
equal the single-process bf16 autocast run within 1e-2 relative (bf16 has 8
bits of mantissa; sharded matmuls sum in another order), the loss falls, and
the weights stay fp32 and agree to within the 5 AdamW steps they took."""
import numpy as np
import pytest
import torch

import alpa_torch
from conftest import MODELS
from dist_harness import run_ranks
from test_parallelize import loss_of
from training import train_steps

STEPS = 5
LR = 1e-3


def train(model, args):
    opt = torch.optim.AdamW(model.parameters(), lr=LR, eps=1e-6)
    losses = []
    for _ in range(STEPS):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(*args)
        loss = loss_of(out)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def _worker(rank, world, name, mesh):
    model, args = MODELS[name]()
    pmodel = alpa_torch.parallelize(model, args, mesh_shape=mesh, precision="bf16")
    losses = train_steps(pmodel, args, loss_of, STEPS,
                         torch.optim.AdamW(pmodel.parameters(), lr=LR, eps=1e-6))
    state = {k: v.detach() for k, v in pmodel.full_state_dict().items()}
    return losses, {k: v.numpy().copy() for k, v in state.items()}, \
        {k: str(v.dtype) for k, v in state.items()}, pmodel.alpa_plan.precision


@pytest.mark.parametrize("name,mesh", [("mlp", (1, 2)), ("gpt2", (1, 2)), ("gpt2", (2, 2))])
def test_bf16_equals_single_process_autocast(name, mesh):
    model, args = MODELS[name]()
    ref_losses = train(model, args)
    ref_state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    assert ref_losses[-1] < ref_losses[0]
    for losses, state, dtypes, precision in run_ranks(_worker, mesh[0] * mesh[1], name, mesh,
                                                      timeout=400):
        assert precision == "bf16"
        np.testing.assert_allclose(losses, ref_losses, rtol=1e-2)
        assert losses[-1] < losses[0]
        for key, value in ref_state.items():
            if value.dtype == np.float32:
                assert dtypes[key] == "torch.float32", key  # fp32 master weights
                # AdamW moves a weight by about LR a step whatever its gradient's
                # size, so a bf16-noise gradient near 0 may move it either way:
                # weights agree to within the steps they took
                np.testing.assert_allclose(state[key], value, rtol=1e-2, atol=LR * STEPS,
                                           err_msg=key)


def test_bf16_plan_prices_activations_in_bf16():
    model, args = MODELS["gpt2"]()
    graph = alpa_torch.capture(model, args)
    kwargs = dict(mesh_shape=(1, 2), cluster="a100-40gb", compare_megatron=False)
    fp32 = alpa_torch.plan(graph, **kwargs)
    bf16 = alpa_torch.plan(graph, precision="bf16", **kwargs)
    assert fp32.precision == "fp32" and bf16.precision == "bf16"
    assert bf16.predicted_step_time < fp32.predicted_step_time  # 16-bit FLOP/s and bytes
    assert bf16.memory_per_device < fp32.memory_per_device  # activations halve, weights stay
    assert "precision bf16" in bf16.explain()
    assert alpa_torch.Plan.from_json(bf16.to_json()).precision == "bf16"
    with pytest.raises(ValueError, match="fp16 needs loss scaling"):
        alpa_torch.plan(graph, precision="fp16", **kwargs)
    with pytest.raises(ValueError, match="precision must be"):
        alpa_torch.plan(graph, precision="int8", **kwargs)


def _pipeline_worker(rank, world, remat):
    from test_pipeline import B, batch, loss_fn, make_model
    pmodel = alpa_torch.parallelize(make_model(), batch(0)[:1], method="pipeshard",
                                    num_micro_batches=B, layer_boundaries=["transformer.h.2"],
                                    stage_meshes=[(1, 2), (1, 2)], precision="bf16", remat=remat)
    opt = torch.optim.AdamW(pmodel.parameters(), lr=LR, eps=1e-6)
    losses = [pmodel.step(*batch(step), loss_fn, optimizer=opt) for step in range(STEPS)]
    return losses, [s.remat for s in pmodel.alpa_plan.stages], pmodel.alpa_plan.precision


@pytest.mark.parametrize("remat", ["none", "all"])
def test_bf16_pipeshard_equals_single_process_autocast(remat):
    from test_pipeline import batch, loss_fn, make_model
    model = make_model()
    opt = torch.optim.AdamW(model.parameters(), lr=LR, eps=1e-6)
    ref = []
    for step in range(STEPS):
        ids, target = batch(step)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = loss_fn(model(ids), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ref.append(loss.item())
    assert ref[-1] < ref[0]
    for losses, remats, precision in run_ranks(_pipeline_worker, 4, remat, timeout=400):
        assert precision == "bf16" and remats == [remat == "all"] * 2
        np.testing.assert_allclose(losses, ref, rtol=1e-2)
