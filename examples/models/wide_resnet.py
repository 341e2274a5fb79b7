"""Wide-ResNet (Zagoruyko & Komodakis, 2016), small by default.

The Alpa paper evaluates on Wide-ResNet; this is a CIFAR-sized version
(32x32 input) for tests, benchmarks and demos. Pre-activation BasicBlocks:
BatchNorm2d - ReLU - Conv3x3, twice, with a 1x1 conv shortcut whenever the
shape changes. Depth d = 6n + 4 gives n blocks in each of 3 stages whose
widths are base_channels * (1, 2, 4) * width.
"""
import torch
from torch import nn

__all__ = ["BasicBlock", "WideResNet", "wide_resnet", "example_inputs"]


class BasicBlock(nn.Module):
    """Pre-activation residual block.

    x: [B, c_in, H, W] -> [B, c_out, H / stride, W / stride]
    """

    def __init__(self, c_in, c_out, stride=1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.relu = nn.ReLU()
        self.shortcut = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)

    def forward(self, x):
        o = self.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(o)
        o = self.conv1(o)
        o = self.conv2(self.relu(self.bn2(o)))
        return o + skip


class WideResNet(nn.Module):
    """WRN-depth-width classifier.

    x: [B, 3, H, W] -> logits [B, num_classes]
    """

    def __init__(self, depth=10, width=2, num_classes=10, base_channels=16):
        super().__init__()
        if depth < 10 or (depth - 4) % 6 != 0:
            raise ValueError("depth must be 6n + 4 with n >= 1 (10, 16, 22, 28, ...)")
        n = (depth - 4) // 6
        widths = [base_channels * m * width for m in (1, 2, 4)]
        self.stem = nn.Conv2d(3, base_channels, 3, padding=1, bias=False)
        blocks, c_in = [], base_channels
        for stage, c_out in enumerate(widths):
            for i in range(n):
                stride = 2 if (stage > 0 and i == 0) else 1
                blocks.append(BasicBlock(c_in, c_out, stride))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(c_in)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x):
        o = self.blocks(self.stem(x))
        o = self.pool(self.relu(self.bn(o)))
        return self.fc(torch.flatten(o, 1))


def wide_resnet(depth=10, width=2, num_classes=10, base_channels=16):
    """Build a `WideResNet` (default WRN-10-2, ~0.3M params, CIFAR input)."""
    return WideResNet(depth=depth, width=width, num_classes=num_classes,
                      base_channels=base_channels)


def example_inputs(batch=4, image_size=32):
    """Positional args for `WideResNet.forward`: (x [batch, 3, size, size],)."""
    return (torch.randn(batch, 3, image_size, image_size),)
