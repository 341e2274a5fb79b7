"""The model zoo: 16 families as users build them, from their libraries' own
classes (tiny configs, default options such as ``use_cache``, no dropout so
multi-process training can equal single-process training).

``FAMILIES[name]()`` returns ``(model, batch)``: ``batch(step)`` is the
step's positional inputs (the same on every rank). Built offline from the
installed transformers and torch; every factory seeds torch first, so two
calls give equal weights.
"""
from __future__ import annotations

import torch

VOCAB, SEQ, BATCH = 64, 8, 4


def _quiet():
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()


def _ids(step, vocab=VOCAB, shape=(BATCH, SEQ)):
    return torch.randint(1, vocab, shape, generator=torch.Generator().manual_seed(100 + step))


def _causal_lm(config_cls, model_cls, **extra):
    def make():
        _quiet()
        torch.manual_seed(0)
        cfg = config_cls(vocab_size=VOCAB, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4,
                         max_position_embeddings=32, **extra)
        return model_cls(cfg), lambda step: (_ids(step),)
    return make


def llama():
    from transformers import LlamaConfig, LlamaForCausalLM
    return _causal_lm(LlamaConfig, LlamaForCausalLM, num_key_value_heads=2)()


def mistral():
    from transformers import MistralConfig, MistralForCausalLM
    return _causal_lm(MistralConfig, MistralForCausalLM, num_key_value_heads=2,
                      sliding_window=None)()


def qwen2():
    from transformers import Qwen2Config, Qwen2ForCausalLM
    return _causal_lm(Qwen2Config, Qwen2ForCausalLM, num_key_value_heads=2)()


def qwen3():
    from transformers import Qwen3Config, Qwen3ForCausalLM
    return _causal_lm(Qwen3Config, Qwen3ForCausalLM, num_key_value_heads=2, head_dim=8)()


def gpt_neox():
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM
    return _causal_lm(GPTNeoXConfig, GPTNeoXForCausalLM, hidden_dropout=0.0,
                      attention_dropout=0.0)()


def phi():
    from transformers import PhiConfig, PhiForCausalLM
    return _causal_lm(PhiConfig, PhiForCausalLM, resid_pdrop=0.0, embd_pdrop=0.0,
                      attention_dropout=0.0)()


def phi3():
    from transformers import Phi3Config, Phi3ForCausalLM
    return _causal_lm(Phi3Config, Phi3ForCausalLM, num_key_value_heads=2, resid_pdrop=0.0,
                      embd_pdrop=0.0, attention_dropout=0.0, pad_token_id=0)()


def gemma():
    from transformers import GemmaConfig, GemmaForCausalLM
    return _causal_lm(GemmaConfig, GemmaForCausalLM, num_key_value_heads=2, head_dim=8)()


def gemma2():
    from transformers import Gemma2Config, Gemma2ForCausalLM
    return _causal_lm(Gemma2Config, Gemma2ForCausalLM, num_key_value_heads=2, head_dim=8,
                      sliding_window=16)()


def mixtral():
    from transformers import MixtralConfig, MixtralForCausalLM
    return _causal_lm(MixtralConfig, MixtralForCausalLM, num_key_value_heads=2,
                      num_local_experts=4, num_experts_per_tok=2)()


def opt():
    _quiet()
    from transformers import OPTConfig, OPTForCausalLM
    torch.manual_seed(0)
    cfg = OPTConfig(vocab_size=VOCAB, hidden_size=32, ffn_dim=64, num_hidden_layers=2,
                    num_attention_heads=4, max_position_embeddings=32, word_embed_proj_dim=32,
                    dropout=0.0, attention_dropout=0.0, pad_token_id=1)
    # OPT pads with token 1: the batch holds some, so the padding row matters
    return OPTForCausalLM(cfg), lambda step: (_ids(step, vocab=VOCAB) % 8,)


def t5():
    _quiet()
    from transformers import T5Config, T5ForConditionalGeneration
    torch.manual_seed(0)
    cfg = T5Config(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2,
                   num_decoder_layers=2, num_heads=4, dropout_rate=0.0,
                   decoder_start_token_id=0, pad_token_id=0)
    model = T5ForConditionalGeneration(cfg)
    return model, lambda step: (_ids(step), None, _ids(step + 50))


def bert_mlm():
    _quiet()
    from transformers import BertConfig, BertForMaskedLM
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                     num_attention_heads=4, max_position_embeddings=32, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0)
    return BertForMaskedLM(cfg), lambda step: (_ids(step),)


def vit():
    _quiet()
    from transformers import ViTConfig, ViTForImageClassification
    torch.manual_seed(0)
    cfg = ViTConfig(image_size=16, patch_size=4, num_channels=3, hidden_size=32,
                    intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                    num_labels=8, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    images = lambda step: (torch.randn(BATCH, 3, 16, 16,  # noqa: E731
                                       generator=torch.Generator().manual_seed(100 + step)),)
    return ViTForImageClassification(cfg), images


def transformer_encoder():
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(32, 4, dim_feedforward=64, dropout=0.0,
                                             batch_first=True)
    model = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
    return model, lambda step: (torch.randn(BATCH, SEQ, 32,
                                            generator=torch.Generator().manual_seed(100 + step)),)


class CNN(torch.nn.Module):
    """Two conv + BatchNorm blocks and a classifier head. The convolutions
    have no bias, as in ResNets: BatchNorm subtracts the mean, so a bias
    before it has an exact gradient of 0, and AdamW turns the rounding noise
    in that gradient (sharded and whole convolutions add in different
    orders) into steps of up to lr (docs/model_zoo.md)."""

    def __init__(self):
        super().__init__()
        self.block1 = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1, bias=False),
                                          torch.nn.BatchNorm2d(8), torch.nn.ReLU())
        self.block2 = torch.nn.Sequential(torch.nn.Conv2d(8, 8, 3, padding=1, bias=False),
                                          torch.nn.BatchNorm2d(8), torch.nn.ReLU())
        self.head = torch.nn.Linear(8 * 8 * 8, 10)

    def forward(self, x):
        return self.head(self.block2(self.block1(x)).flatten(1))


def cnn_batchnorm():
    torch.manual_seed(0)
    return CNN(), lambda step: (torch.randn(BATCH, 3, 8, 8,
                                            generator=torch.Generator().manual_seed(100 + step)),)


FAMILIES = {
    "llama": llama, "mistral": mistral, "qwen2": qwen2, "qwen3": qwen3, "gpt_neox": gpt_neox,
    "opt": opt, "phi": phi, "phi3": phi3, "gemma": gemma, "gemma2": gemma2, "t5": t5,
    "bert_mlm": bert_mlm, "vit": vit, "mixtral": mixtral,
    "transformer_encoder": transformer_encoder, "cnn_batchnorm": cnn_batchnorm,
}
