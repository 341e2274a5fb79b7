"""parallelize() options and the PyTorch tools that must work on its
parameters unchanged: clip_grad_norm_ on DTensor parameters equals
single-process clipping; ``local_outputs=True`` returns each rank's shard
of the output as the plan lays it out; ``data_parallel_inputs=True`` takes
each rank's slice of the batch. Bucketed data-parallel gradients sum to the
single-process gradients."""
import numpy as np
import torch

from dist_harness import run_ranks


def _mlp(hidden):
    from examples.models import FeedForward
    torch.manual_seed(0)
    return FeedForward(hidden)


def _loss(out):
    target = torch.randn(out.shape, generator=torch.Generator().manual_seed(7))
    return ((out - target) ** 2).mean()


TP = {"fc1.weight": "S0R", "fc2.weight": "RS0"}  # Megatron column | row parallel


def _clip_worker(rank, world):
    import alpa_torch
    from torch.distributed.tensor import DTensor
    x = torch.randn(8, 32, generator=torch.Generator().manual_seed(3))
    pmodel = alpa_torch.parallelize(_mlp(32), (x,), mesh_shape=(1, world), plan_overrides=TP)
    _loss(pmodel(x)).backward()
    norm = torch.nn.utils.clip_grad_norm_(pmodel.parameters(), max_norm=0.05)
    norm = norm.full_tensor() if isinstance(norm, DTensor) else norm
    grads = {}
    for name, p in pmodel.named_parameters():
        g = p.grad.full_tensor() if isinstance(p.grad, DTensor) else p.grad
        grads[name] = g.tolist()
    return float(norm), grads, pmodel.alpa_plan.param_specs


def test_clip_grad_norm_on_sharded_parameters():
    x = torch.randn(8, 32, generator=torch.Generator().manual_seed(3))
    model = _mlp(32)
    _loss(model(x)).backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=0.05)
    for result in run_ranks(_clip_worker, 2, timeout=200):
        got_norm, grads, specs = result
        assert specs["fc1.weight"] == "S0R" and specs["fc2.weight"] == "RS0"
        np.testing.assert_allclose(got_norm, norm.item(), rtol=1e-5)
        for name, p in model.named_parameters():
            np.testing.assert_allclose(np.array(grads[name]), p.grad.numpy(), rtol=1e-5,
                                       atol=1e-7, err_msg=name)


def _local_outputs_worker(rank, world):
    import alpa_torch
    x = torch.randn(8, 32, generator=torch.Generator().manual_seed(3))
    # fc2 row parallel without the final all-reduce would be partial; pin a
    # layout whose output is split by columns: fc2 column parallel
    pins = {"fc1.weight": "RR", "fc2.weight": "S0R"}
    pmodel = alpa_torch.parallelize(_mlp(32), (x,), mesh_shape=(1, world), plan_overrides=pins,
                                    local_outputs=True)
    out = pmodel(x)
    return out.tolist(), pmodel.alpa_plan.stages[0].node_specs


def test_local_outputs_are_each_ranks_shard():
    x = torch.randn(8, 32, generator=torch.Generator().manual_seed(3))
    full = _mlp(32)(x).detach()
    results = run_ranks(_local_outputs_worker, 2, timeout=200)
    pieces = [np.array(out) for out, _ in results]
    assert all(p.shape == (8, 16) for p in pieces), [p.shape for p in pieces]
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), full.numpy(), rtol=1e-5, atol=1e-6)


def _data_parallel_worker(rank, world):
    import alpa_torch
    x = torch.randn(4096, 16, generator=torch.Generator().manual_seed(5))
    pmodel = alpa_torch.parallelize(_mlp(16), (x,), mesh_shape=(1, world),
                                    data_parallel_inputs=True, local_outputs=True)
    mine = x.chunk(world)[rank]
    out = pmodel(mine)
    # the global mean loss from local pieces: each rank's share, summed by
    # the gradient all-reduce
    target = torch.randn(x.shape[0], 16, generator=torch.Generator().manual_seed(7))
    loss = ((out - target.chunk(world)[rank]) ** 2).sum() / out.new_tensor(x.numel())
    loss.backward()
    grads = {n: p.grad.full_tensor().tolist() for n, p in pmodel.named_parameters()}
    program = pmodel._alpa_runner.program.module.code
    return out.tolist(), grads, pmodel.alpa_plan.input_specs if hasattr(
        pmodel.alpa_plan, "input_specs") else pmodel.alpa_plan.stages[0].input_specs, program


def test_data_parallel_inputs_take_each_ranks_slice():
    x = torch.randn(4096, 16, generator=torch.Generator().manual_seed(5))
    model = _mlp(16)
    out = model(x)
    target = torch.randn(x.shape[0], 16, generator=torch.Generator().manual_seed(7))
    ((out - target) ** 2).mean().backward()
    results = run_ranks(_data_parallel_worker, 2, timeout=200)
    for rank, (local_out, grads, input_specs, program) in enumerate(results):
        assert list(input_specs.values())[0].startswith("S0"), input_specs
        np.testing.assert_allclose(np.array(local_out), out.detach().chunk(2)[rank].numpy(),
                                   rtol=1e-5, atol=1e-6)
        for name, p in model.named_parameters():
            np.testing.assert_allclose(np.array(grads[name]), p.grad.numpy(), rtol=1e-4,
                                       atol=1e-7, err_msg=name)
        # data-parallel gradients travel in one bucket, not one per parameter
        assert program.count("grad_all_reduce_bucket(") == 1, program
        assert "grad_all_reduce(" not in program, program
