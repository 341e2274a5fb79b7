"""Hugging Face models as a user builds them (issue 12): default configs
(use_cache=True) capture for training, and full_state_dict() of a
rotary-embedding model (Llama: a non-persistent ``inv_freq`` buffer) has
exactly ``model.state_dict()``'s keys and values and loads back strictly,
through parallelize and pipeshard."""
import numpy as np
import pytest
import torch

from dist_harness import run_ranks

VOCAB = 64
STEPS = 2


def llama(layers=2):
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=32, bos_token_id=0, eos_token_id=0,
                      pad_token_id=0)
    assert cfg.use_cache  # as users build it
    return LlamaForCausalLM(cfg)


def gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(0)
    cfg = GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=VOCAB, n_positions=32,
                     bos_token_id=0, eos_token_id=0, resid_pdrop=0.0, embd_pdrop=0.0,
                     attn_pdrop=0.0)
    assert cfg.use_cache
    return GPT2LMHeadModel(cfg)


def batch(step, rows=4):
    g = torch.Generator().manual_seed(10 + step)
    ids = torch.randint(0, VOCAB, (rows, 8), generator=g)
    return ids, torch.roll(ids, -1, 1)


def loss_fn(out, target):
    return torch.nn.functional.cross_entropy(out["logits"].reshape(-1, VOCAB), target.reshape(-1))


def reference(make):
    model = make()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = []
    for step in range(STEPS):
        ids, target = batch(step)
        loss = loss_fn(model(ids), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, {k: v.detach().clone() for k, v in model.state_dict().items()}


def check_state(state, ref_state, label):
    # exactly the keys of model.state_dict(): no non-persistent buffer
    assert list(state) == list(ref_state), (label, set(state) ^ set(ref_state))
    for key, value in ref_state.items():
        np.testing.assert_allclose(state[key], value.numpy(), rtol=1e-5, atol=1e-5,
                                   err_msg=f"{label}: {key}")
    fresh = llama() if "model.layers.0.self_attn.q_proj.weight" in state else gpt2()
    fresh.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)


@pytest.mark.parametrize("make", [gpt2, llama], ids=["gpt2", "llama"])
def test_capture_default_config_for_training(make):
    import alpa_torch
    model = make()
    ids, _ = batch(0)
    captured = alpa_torch.capture(model, (ids,))
    assert captured.added_kwargs == {"use_cache": False}
    the_plan = alpa_torch.plan(captured, mesh_shape=(1, 2))
    assert "use_cache=False" in the_plan.explain() and "use_cache=False" in the_plan.notes[0]
    # the user's own choice is kept
    assert alpa_torch.capture(make(), (ids,), {"use_cache": False}).added_kwargs == {}


def _intra_op_worker(rank, world, name):
    import alpa_torch
    model = {"llama": llama, "gpt2": gpt2}[name]()
    pmodel = alpa_torch.parallelize(model, (batch(0)[0],), mesh_shape=(1, 2))
    opt = torch.optim.SGD(pmodel.parameters(), lr=0.1)
    losses = []
    for step in range(STEPS):
        ids, target = batch(step)
        loss = loss_fn(pmodel(ids), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, {k: v.detach().numpy().copy() for k, v in pmodel.full_state_dict().items()}


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_parallelize_trains_and_state_dict_loads_strictly(name):
    ref_losses, ref_state = reference({"llama": llama, "gpt2": gpt2}[name])
    for rank, (losses, state) in enumerate(run_ranks(_intra_op_worker, 2, name, timeout=300)):
        np.testing.assert_allclose(losses, ref_losses, rtol=1e-5, err_msg=f"rank {rank}")
        check_state(state, ref_state, f"{name} rank {rank}")


def _pipeshard_worker(rank, world):
    import alpa_torch
    model = llama()
    pmodel = alpa_torch.parallelize(model, (batch(0)[0],), method="pipeshard",
                                    num_micro_batches=1, layer_boundaries=["model.layers.1"],
                                    stage_meshes=[(1, 1), (1, 1)])
    opt = torch.optim.SGD(pmodel.parameters(), lr=0.1)
    losses = [pmodel.step(*batch(step), loss_fn, optimizer=opt) for step in range(STEPS)]
    return losses, {k: v.detach().numpy().copy() for k, v in pmodel.full_state_dict().items()}


def test_pipeshard_llama_full_state_dict_loads_strictly():
    ref_losses, ref_state = reference(llama)
    for rank, (losses, state) in enumerate(run_ranks(_pipeshard_worker, 2, timeout=300)):
        np.testing.assert_allclose(losses, ref_losses, rtol=1e-5, err_msg=f"rank {rank}")
        check_state(state, ref_state, f"rank {rank}")
