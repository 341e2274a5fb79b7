"""Pipeshard parallelize() on 4 Gloo processes: HF GPT-2 (4 layers) as
2 stages x mesh (1, 2) and as 4 stages x 1 device, B = 4 microbatches,
GPipe and 1F1B, gives the per-step losses and the final weights of
single-process training (fp32, 1e-5 relative); the same with stages on
sub-meshes of different sizes and with different shardings on the two
sides of a boundary (cross-mesh resharding). Plus the errors a user can
cause, each on every rank within the timeout."""
import datetime

import numpy as np
import pytest
import torch

from conftest import gpt2_model
from dist_harness import run_ranks

STEPS = 5
B = 4
VOCAB = 128


def make_model():
    model, _ = gpt2_model(layers=4, hidden=32, heads=4, vocab=VOCAB)
    return model


def batch(step):
    g = torch.Generator().manual_seed(100 + step)
    ids = torch.randint(0, VOCAB, (8, 16), generator=g)
    return ids, torch.roll(ids, -1, 1)


def loss_fn(out, target):
    logits = out["logits"] if isinstance(out, dict) else out[0]
    return torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), target.reshape(-1))


def reference():
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = []
    for step in range(STEPS):
        ids, target = batch(step)
        loss = loss_fn(model(ids), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def _train_worker(rank, world, options):
    import alpa_torch
    out = {}
    for schedule in ("gpipe", "1f1b"):
        model = make_model()
        pmodel = alpa_torch.parallelize(model, batch(0)[:1], method="pipeshard",
                                        num_micro_batches=B, schedule=schedule, **options)
        opt = torch.optim.SGD(pmodel.parameters(), lr=0.1)
        losses = [pmodel.step(*batch(step), loss_fn, optimizer=opt) for step in range(STEPS)]
        state = {k: v.numpy().copy() for k, v in pmodel.full_state_dict().items()}
        plan = pmodel.alpa_plan
        stages = [(s.device_ids, s.mesh_shape, [v["spec"] for v in s.inputs],
                   [v["spec"] for v in s.outputs], s.remat) for s in plan.stages]
        out[schedule] = (losses, state, stages, pmodel._alpa_pipeline.executor.actions_text())
    return out


@pytest.fixture(scope="module")
def expected():
    return reference()


def _check(result, expected):
    ref_losses, ref_state = expected
    for schedule, (losses, state, _, _) in result.items():
        np.testing.assert_allclose(losses, ref_losses, rtol=1e-5, err_msg=schedule)
        assert set(state) == set(ref_state)
        for name, value in ref_state.items():
            np.testing.assert_allclose(state[name], value, rtol=1e-5, atol=1e-5,
                                       err_msg=f"{schedule}: {name}")


CASES = {
    "2 stages x (1, 2)": dict(layer_boundaries=["transformer.h.2"], stage_meshes=[(1, 2), (1, 2)]),
    "4 stages x 1 device": dict(layer_boundaries=["transformer.h.1", "transformer.h.2",
                                                  "transformer.h.3"],
                                stage_meshes=[(1, 1)] * 4),
    # sub-meshes of different sizes: 1 + 1 + 2 devices
    "1 + 1 + 2 devices": dict(layer_boundaries=["transformer.h.1", "transformer.h.2"],
                              stage_meshes=[(1, 1), (1, 1), (1, 2)]),
    # the same sub-mesh size but different shardings across the boundary:
    # the second stage is pinned to Megatron tensor parallelism
    "data | tensor parallel": dict(
        layer_boundaries=["transformer.h.2"], stage_meshes=[(1, 2), (1, 2)],
        plan_overrides={"transformer.h.2.mlp.c_fc.weight": "RS0",
                        "transformer.h.2.mlp.c_proj.weight": "S0R",
                        "transformer.h.3.mlp.c_fc.weight": "RS0",
                        "transformer.h.3.mlp.c_proj.weight": "S0R"}),
}
# rematerialization: every stage runs its forward again in backward,
# Megatron's all-reduces (stage 1) replayed inside the recompute
CASES["remat, data | tensor parallel"] = dict(CASES["data | tensor parallel"], remat="all")


@pytest.mark.parametrize("case", list(CASES))
def test_pipeline_equals_single_process(case, expected):
    results = run_ranks(_train_worker, 4, CASES[case], timeout=400)
    for result in results:
        _check(result, expected)
    losses, _, stages, actions = results[0]["1f1b"]
    if case == "1 + 1 + 2 devices":
        assert [len(d) for d, _, _, _, _ in stages] == [1, 1, 2]
    if case == "data | tensor parallel":
        # the boundary value leaves stage 0 in one layout and enters stage 1
        # in another, so the executor reshards across the meshes
        assert stages[0][3] != stages[1][2], stages
    assert [s[4] for s in stages] == [case.startswith("remat")] * len(stages)
    if case == "4 stages x 1 device":
        # rank 0 runs stage 0's 1F1B list: 3 warm-up forwards, then 1F1B
        assert actions.startswith("F0 SEND_F0 F1 SEND_F1 F2 SEND_F2 F3 SEND_F3 RECV_B0 B0")


def _error_worker(rank, world, what):
    import alpa_torch
    model = make_model()
    ids, target = batch(0)
    kwargs = dict(method="pipeshard", num_micro_batches=B, layer_boundaries=["transformer.h.2"],
                  stage_meshes=[(1, 2), (1, 2)], timeout=datetime.timedelta(seconds=10))
    if what == "devices":
        kwargs["stage_meshes"] = [(1, 2), (1, 1)]
    try:
        pmodel = alpa_torch.parallelize(model, (ids,), **kwargs)
        if what == "batch":
            pmodel.step(ids[:6], target[:6], loss_fn)
        elif what == "forward":
            pmodel(ids)
        elif what == "loss":
            def bad_loss(out, t):
                if rank == 3:
                    raise RuntimeError("loss exploded on rank 3")
                return loss_fn(out, t)
            pmodel.step(ids, target, bad_loss)
    except Exception as e:  # noqa: BLE001 -- reported to the test
        return type(e).__name__, str(e)
    return None


@pytest.mark.parametrize("what,kind,text", [
    ("devices", "ValueError", "every device must belong to exactly one stage"),
    ("batch", "ValueError", "does not divide into 4 microbatches"),
    ("forward", "NotImplementedError", "pmodel.step"),
])
def test_pipeline_user_errors(what, kind, text):
    for result in run_ranks(_error_worker, 4, what, timeout=200):
        assert result is not None and result[0] == kind and text in result[1], result


def test_failing_stage_ends_every_rank_with_an_error():
    results = run_ranks(_error_worker, 4, "loss", timeout=200)
    assert "loss exploded on rank 3" in results[3][1]
    # the other ranks stop at a timed-out receive or collective instead of
    # hanging; the first stage's ranks wait for gradients from the last
    assert results[2] is not None
    for r in (0, 1):
        assert results[r] is not None and "alpa pipeline" in results[r][1], results[r]
