"""torch.nn blocks through parallelize and pipeshard train exactly as one
process does (issue 12): nn.TransformerEncoder (MultiheadAttention's
unflatten), a vocabulary-split nn.Embedding with padding_idx, a CNN whose
BatchNorm a pipeline stage splits by channel (running statistics)."""
import numpy as np
import pytest
import torch

from dist_harness import run_ranks
from test_parallelize import assert_state_equal, loss_of

STEPS = 3


def _sgd_losses(model, args, steps=STEPS):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = []
    for _ in range(steps):
        loss = loss_of(model(*args))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def _state(model_or_dict):
    items = model_or_dict.items() if isinstance(model_or_dict, dict) else \
        model_or_dict.state_dict().items()
    return {k: v.detach().numpy().copy() for k, v in items}


# ---- nn.TransformerEncoder (defect 6) ---------------------------------------------

def encoder_model():
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(64, 4, dim_feedforward=128, batch_first=True,
                                             dropout=0.0)
    model = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
    return model, (torch.randn(2, 8, 64, generator=torch.Generator().manual_seed(1)),)


def _encoder_worker(rank, world):
    import alpa_torch
    model, args = encoder_model()
    pmodel = alpa_torch.parallelize(model, args, mesh_shape=(1, 2))
    return _sgd_losses(pmodel, args), _state(pmodel.full_state_dict()), pmodel.alpa_plan.param_specs


def test_transformer_encoder_trains_as_one_process():
    # MultiheadAttention unflattens its packed q/k/v projection at dim -1:
    # the local size must be taken at the input's dim, not the output's
    model, args = encoder_model()
    ref_losses, ref_state = _sgd_losses(model, args), _state(model)
    for rank, (losses, state, specs) in enumerate(run_ranks(_encoder_worker, 2, timeout=300)):
        np.testing.assert_allclose(losses, ref_losses, rtol=1e-5, err_msg=f"rank {rank}")
        assert_state_equal(state, ref_state, f"rank {rank}", specs)


# ---- vocabulary-split embedding with padding_idx (defect 2) ------------------------

VOCAB, HIDDEN = 16, 8


class EmbedHead(torch.nn.Module):
    def __init__(self, padding_idx):
        super().__init__()
        self.emb = torch.nn.Embedding(VOCAB, HIDDEN, padding_idx=padding_idx)
        self.head = torch.nn.Linear(HIDDEN, 4)

    def forward(self, ids):
        return self.head(self.emb(ids))


def embed_model(padding_idx):
    torch.manual_seed(0)
    model = EmbedHead(padding_idx)
    with torch.no_grad():  # a padding row that is not zero shows any update
        model.emb.weight.add_(1.0)
    # both shards' rows and the padding index (row 0, row VOCAB-1) in the batch
    ids = torch.tensor([[0, 1, 2, 9, 15, 0], [15, 3, 8, 0, 7, 15]])
    return model, (ids,)


def _embed_worker(rank, world, padding_idx):
    import alpa_torch
    model, args = embed_model(padding_idx)
    pmodel = alpa_torch.parallelize(model, args, mesh_shape=(1, 2),
                                    plan_overrides={"emb.weight": "S0R"})
    specs = pmodel.alpa_plan.param_specs
    assert specs["emb.weight"] == "S0R", specs
    return _sgd_losses(pmodel, args), _state(pmodel.full_state_dict()), specs


@pytest.mark.parametrize("padding_idx", [0, VOCAB - 1, -1], ids=["first", "last", "negative"])
def test_vocab_split_embedding_keeps_padding_row(padding_idx):
    model, args = embed_model(padding_idx)
    pad_row = model.emb.weight[padding_idx].detach().clone()
    ref_losses, ref_state = _sgd_losses(model, args), _state(model)
    # the single-process reference leaves the padding row alone
    np.testing.assert_array_equal(ref_state["emb.weight"][padding_idx], pad_row.numpy())
    results = run_ranks(_embed_worker, 2, padding_idx, timeout=300)
    for rank, (losses, state, specs) in enumerate(results):
        np.testing.assert_allclose(losses, ref_losses, rtol=1e-5, err_msg=f"rank {rank}")
        assert_state_equal(state, ref_state, f"padding_idx {padding_idx} rank {rank}", specs)
