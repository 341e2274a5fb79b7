"""LocalParameters: the plain leaf a program reads for a DTensor parameter
keeps ``p.grad`` right under every way PyTorch code touches gradients:
accumulation across backwards, zero_grad() in both forms, a gradient the
user assigns, and two leaves of one parameter (two programs reading it,
as on both sides of a torch.compile graph break)."""
import torch

from dist_harness import run_ranks


def _worker(rank, world):
    from torch.distributed.tensor import DTensor, Replicate, init_device_mesh
    from alpa_torch.runtime.local_params import LocalParameters
    mesh = init_device_mesh("cpu", (1,))
    p = torch.nn.Parameter(DTensor.from_local(torch.zeros(4, 3), mesh, [Replicate()],
                                              run_check=False))
    opt = torch.optim.SGD([p], lr=0.0)  # lr 0: only the gradients matter
    x, y = torch.randn(4, 3), torch.randn(4, 3)
    first, second = LocalParameters(), LocalParameters()

    def backward(*weights):
        loss = sum((leaf.local(p) * w).sum() for leaf, w in weights)
        loss.backward()
        return p.grad.to_local().clone()

    got = {}
    got["first"] = backward((first, x))
    got["accumulated"] = backward((first, x))
    opt.zero_grad(set_to_none=False)
    got["after zeroing"] = backward((first, x))
    opt.zero_grad()
    got["after set_to_none"] = backward((first, x))
    p.grad = DTensor.from_local(torch.ones(4, 3), mesh, [Replicate()], run_check=False)
    got["user assigned"] = backward((first, x))
    for step in range(3):
        opt.zero_grad()
        got[f"two leaves, step {step}"] = backward((first, x), (second, y))
    want = {"first": x, "accumulated": 2 * x, "after zeroing": x, "after set_to_none": x,
            "user assigned": 1 + x}
    for step in range(3):
        want[f"two leaves, step {step}"] = x + y
    return {k: (got[k].tolist(), want[k].tolist()) for k in want}


def test_gradients_follow_the_parameter():
    for case, (got, want) in run_ranks(_worker, 1, timeout=120)[0].items():
        torch.testing.assert_close(torch.tensor(got), torch.tensor(want),
                                   msg=lambda m: f"{case}: {m}")
