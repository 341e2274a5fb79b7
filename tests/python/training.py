"""The training loop the multi-process tests share: a few optimizer steps
on one batch, the loss of each."""
from typing import Callable, List, Optional

import torch


def train_steps(model: torch.nn.Module, args, loss_fn: Callable, steps: int,
                optimizer: Optional[torch.optim.Optimizer] = None, lr: float = 0.05) -> List[float]:
    """`steps` steps of `optimizer` (default SGD at `lr`) on `model(*args)`."""
    opt = optimizer if optimizer is not None else torch.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = loss_fn(model(*args))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses
