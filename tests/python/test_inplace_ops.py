"""In-place ops on intermediate values: capture makes them functional where
no one can tell (so they get their rule and a resharded input cannot lose
the write), and the rewrite refuses, naming the node, a write that would
land in a resharded copy while a view of the value is read afterwards
(before, that gave silently wrong outputs)."""
import numpy as np
import pytest
import torch

import alpa_torch

from dist_harness import run_ranks  # noqa: E402

PINS = {"fc1.weight": "S0R", "fc1.bias": "S0"}  # fc1's output split by columns


class Rebound(torch.nn.Module):
    """`h.mul_(2)`, then `h` read again: torch.export reads the op's result."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = torch.nn.Linear(16, 32), torch.nn.Linear(32, 16)

    def forward(self, x):
        h = self.fc1(x)
        g = torch.relu(h)
        h.mul_(2)
        return self.fc2(h + g)


class ThroughView(torch.nn.Module):
    """A view of `h` taken before `h.mul_(2)` and read after it."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = torch.nn.Linear(16, 32), torch.nn.Linear(32, 16)

    def forward(self, x):
        h = self.fc1(x)
        v = h.view(8, 32)
        h.mul_(2)
        return self.fc2(v)


def batch():
    return (torch.randn(8, 16, generator=torch.Generator().manual_seed(1)),)


def ops_of(model):
    return [str(n.target) for n in alpa_torch.capture(model, batch()).exported.graph.nodes
            if n.op == "call_function"]


def test_unobservable_inplace_ops_become_functional():
    assert "aten.mul.Tensor" in ops_of(Rebound()) and "aten.mul_.Tensor" not in ops_of(Rebound())
    # a view read after the write sees it: the op stays in place
    assert "aten.mul_.Tensor" in ops_of(ThroughView())
    # an update of a buffer stays in place (it is the module's state)
    bn = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.BatchNorm1d(8))
    assert "aten.add_.Tensor" in ops_of(bn)


def _worker(rank, world, cls):
    torch.manual_seed(0)
    model = cls()
    want = model(*batch()).detach().numpy()
    try:
        pmodel = alpa_torch.parallelize(model, batch(), mesh_shape=(1, 2), plan_overrides=PINS)
    except NotImplementedError as e:
        return "refused", str(e)
    strategy = pmodel.alpa_plan.stages[0].node_specs["mul_"]["strategy"]  # the node keeps its name
    return "ran", (float(np.abs(pmodel(*batch()).detach().numpy() - want).max()), strategy)


def test_functional_update_is_sharded_and_exact():
    for status, (error, strategy) in run_ranks(_worker, 2, Rebound, timeout=120):
        assert status == "ran" and error < 1e-5
        assert strategy == "RS0 = RS0"  # the update follows fc1's column split


def test_write_into_a_resharded_copy_is_refused_on_every_rank():
    for status, message in run_ranks(_worker, 2, ThroughView, timeout=120):
        assert status == "refused"
        assert "node mul_ (aten.mul_.Tensor) writes in place into linear" in message
        assert "the plan lays out as RS0 but the op reads as RR" in message
