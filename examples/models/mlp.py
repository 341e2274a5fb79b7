"""A plain multi-layer perceptron: the smallest model worth auto-parallelizing.

Used by tests, benchmarks and demos as the simplest export-friendly workload
(only Linear and GELU ops, no buffers, no control flow).
"""
import torch
from torch import nn

__all__ = ["MLP", "FeedForward", "mlp", "example_inputs"]


class MLP(nn.Module):
    """`num_layers` blocks of Linear(., hidden) - GELU - Linear(hidden, d_out).

    The first block reads `d_in` features, later blocks read `d_out`.
    x: [..., d_in] -> [..., d_out]
    """

    def __init__(self, d_in=64, hidden=256, d_out=64, num_layers=2):
        super().__init__()
        if num_layers < 1:
            raise ValueError("num_layers must be >= 1")
        self.blocks = nn.Sequential(*[
            nn.Sequential(
                nn.Linear(d_in if i == 0 else d_out, hidden),
                nn.GELU(),
                nn.Linear(hidden, d_out),
            )
            for i in range(num_layers)
        ])

    def forward(self, x):
        return self.blocks(x)


class FeedForward(nn.Module):
    """Megatron's MLP block: Linear(h, 4h) - GELU - Linear(4h, h), named
    fc1/fc2 (the layer the tensor-parallel tests and benchmarks shard).
    x: [..., h] -> [..., h]
    """

    def __init__(self, h=64):
        super().__init__()
        self.fc1 = nn.Linear(h, 4 * h)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(4 * h, h)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def mlp(d_in=64, hidden=256, d_out=64, num_layers=2):
    """Build an `MLP`; see the class for shapes."""
    return MLP(d_in=d_in, hidden=hidden, d_out=d_out, num_layers=num_layers)


def example_inputs(batch=8, d_in=64):
    """Positional args for `MLP.forward`: (x [batch, d_in],)."""
    return (torch.randn(batch, d_in),)
