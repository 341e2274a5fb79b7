"""Layer clustering (Alpa §5.1) through the Python binding, on a captured
model of four equal residual blocks: the automatic L is the block count and
every block's ops land in one layer."""
import pytest
import torch
from torch import nn

import alpa_torch
from alpa_torch import _C


class Block(nn.Module):
    """x + fc2(gelu(fc1(x))): a cut inside the block carries the residual too."""

    def __init__(self, d=32):
        super().__init__()
        self.fc1 = nn.Linear(d, 4 * d)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(4 * d, d)

    def forward(self, x):
        return x + self.fc2(self.act(self.fc1(x)))


class FourBlocks(nn.Module):
    def __init__(self, d=32):
        super().__init__()
        self.blocks = nn.ModuleList([Block(d) for _ in range(4)])

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x


@pytest.fixture(scope="module")
def captured():
    torch.manual_seed(0)
    return alpa_torch.capture(FourBlocks(), (torch.randn(8, 32),))


def block_of(module_path):
    parts = module_path.split(".")
    assert parts[0] == "blocks", module_path
    return int(parts[1])


def test_auto_layer_count_is_the_block_count(captured):
    assert _C.repeated_blocks(captured.graph) == ("blocks", 4)
    assert _C.auto_num_layers(captured.graph) == 4
    assert _C.auto_num_layers(captured.graph, max_layers=3) == 3


def test_each_block_lands_in_one_layer(captured):
    result = _C.cluster_layers(captured.graph)
    assert result["num_layers"] == 4
    layer_of_node = result["layer_of_node"]
    assert len(layer_of_node) == captured.graph.num_nodes
    for node in captured.nodes:
        if node.kind == "op":
            assert layer_of_node[node.id] == block_of(node.module), node
        elif node.kind == "parameter":  # blocks.<i>.fc1.weight goes with block i
            assert layer_of_node[node.id] == block_of(node.target), node
    # Equal blocks: equal FLOPs; each layer reads one [8, 32] fp32 activation.
    flops = result["layer_flops"]
    assert flops == [flops[0]] * 4 and flops[0] > 0
    assert sum(flops) == pytest.approx(captured.total_flops())
    assert result["layer_input_bytes"] == [8 * 32 * 4] * 4
    assert result["max_input_bytes"] == 8 * 32 * 4
    assert result["shared_placeholders"] == {}
    assert result["text"].startswith(f"layer_clustering: 4 layers, {captured.graph.num_nodes} nodes\n")


def test_explicit_layer_count_and_errors(captured):
    two = _C.cluster_layers(captured.graph, num_layers=2, eps=0.0)
    assert two["num_layers"] == 2
    assert two["layer_flops"][0] == two["layer_flops"][1]
    assert two["layer_input_bytes"] == [8 * 32 * 4] * 2
    num_ops = sum(1 for n in captured.nodes if n.kind == "op" and n.flops > 0)
    with pytest.raises(ValueError, match=f"use num_layers <= {num_ops}"):
        _C.cluster_layers(captured.graph, num_layers=num_ops + 1)
    # One layer per op with eps = 0 cannot hold the largest matmul.
    with pytest.raises(alpa_torch.PlanInfeasibleError, match=r"op '.*' .* use num_layers <= "):
        _C.cluster_layers(captured.graph, num_layers=num_ops, eps=0.0)
    with pytest.raises(ValueError, match="eps must be finite and >= 0, got -1"):
        _C.cluster_layers(captured.graph, eps=-1.0)
