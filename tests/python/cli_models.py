"""Model factories for the CLI tests (``alpa-torch plan cli_models:NAME``).

Each factory returns what ``alpa-torch plan`` expects,
``(model, example_args)`` or ``(model, example_args, example_kwargs)``,
or, for the error tests, something it must reject.
"""
import torch

from examples.models import mlp


def mlp_factory():
    """A 4-block MLP (blocks.0 .. blocks.3) small enough to plan in a second."""
    torch.manual_seed(0)
    return mlp(d_in=32, hidden=64, d_out=32, num_layers=4), (torch.randn(8, 32),)


class _Scaled(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(16, 16)

    def forward(self, x, scale=1.0):
        return self.fc(x) * scale


def kwargs_factory():
    """The three-element form, with example keyword arguments."""
    torch.manual_seed(0)
    return _Scaled(), (torch.randn(4, 16),), {"scale": 2.0}


def not_a_model():
    """Wrong: the first element is no nn.Module."""
    return "a string", (torch.randn(2, 2),)


def not_a_tuple():
    """Wrong: a bare module."""
    return torch.nn.Linear(2, 2)


def raises():
    raise RuntimeError("the weights file is missing")
