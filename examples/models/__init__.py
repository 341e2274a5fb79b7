"""Small export-friendly models for tests, benchmarks and demos.

Each module has a factory and an `example_inputs(...)` helper returning the
positional args tuple for `forward`; the helpers are re-exported here with a
model prefix (e.g. `mlp_example_inputs`).
"""
from . import mlp as _mlp_mod, moe as _moe_mod, wide_resnet as _wrn_mod
from .mlp import MLP, FeedForward, mlp
from .moe import MoELayer, MoETransformerBlock, moe_block, moe_layer
from .wide_resnet import BasicBlock, WideResNet, wide_resnet

mlp_example_inputs = _mlp_mod.example_inputs
moe_example_inputs = _moe_mod.example_inputs
wide_resnet_example_inputs = _wrn_mod.example_inputs


def mlp_case():
    """(model, example_args): the MLP with its example batch, the form the
    `alpa-torch plan MODULE:FACTORY` command line takes."""
    return mlp(), mlp_example_inputs()

__all__ = [
    "MLP", "FeedForward", "mlp", "mlp_example_inputs", "mlp_case",
    "WideResNet", "BasicBlock", "wide_resnet", "wide_resnet_example_inputs",
    "MoELayer", "MoETransformerBlock", "moe_layer", "moe_block", "moe_example_inputs",
]
