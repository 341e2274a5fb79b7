"""Shared fixtures: the five reference models of the capture tests, built
small and with fixed seeds so every test sees the same weights."""
import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # for `examples.models`

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _quiet_transformers():
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()


def gpt2_model(layers=2, hidden=64, heads=4, vocab=128, seq=32):
    _quiet_transformers()
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(0)
    # No dropout: multi-process runs must equal single-process training.
    cfg = GPT2Config(n_layer=layers, n_embd=hidden, n_head=heads, vocab_size=vocab,
                     n_positions=seq, use_cache=False, bos_token_id=0, eos_token_id=0,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(cfg), (torch.randint(0, vocab, (2, 16)),)


def bert_model(layers=2, hidden=64, heads=4, vocab=128, seq=32):
    _quiet_transformers()
    from transformers import BertConfig, BertModel
    torch.manual_seed(0)
    cfg = BertConfig(num_hidden_layers=layers, hidden_size=hidden, num_attention_heads=heads,
                     intermediate_size=4 * hidden, vocab_size=vocab,
                     max_position_embeddings=seq, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0)
    return BertModel(cfg), (torch.randint(0, vocab, (2, 16)),)


def mlp_model():
    from examples.models import mlp, mlp_example_inputs
    torch.manual_seed(0)
    return mlp(), mlp_example_inputs()


def wide_resnet_model():
    from examples.models import wide_resnet, wide_resnet_example_inputs
    torch.manual_seed(0)
    return wide_resnet(), wide_resnet_example_inputs()


def moe_model():
    from examples.models import moe_layer, moe_example_inputs
    torch.manual_seed(0)
    return moe_layer(), moe_example_inputs()


MODELS = {
    "mlp": mlp_model,
    "gpt2": gpt2_model,
    "bert": bert_model,
    "wide_resnet": wide_resnet_model,
    "moe": moe_model,
}


@pytest.fixture(params=sorted(MODELS))
def model_case(request):
    model, args = MODELS[request.param]()
    return request.param, model, args


def pytest_terminal_summary(terminalreporter):
    """The model zoo's table (test_model_zoo.py), when it ran."""
    zoo = sys.modules.get("zoo")
    table = getattr(zoo, "LAST_TABLE", None)
    if table:
        terminalreporter.write_sep("=", "model zoo")
        terminalreporter.write_line(table)
