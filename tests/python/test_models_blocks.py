"""torch.nn blocks through parallelize and pipeshard train exactly as one
process does (issue 12): nn.TransformerEncoder (MultiheadAttention's
unflatten), a vocabulary-split nn.Embedding with padding_idx, a CNN whose
BatchNorm a pipeline stage splits by channel (running statistics)."""
import numpy as np
import pytest
import torch

from dist_harness import run_ranks
from training import train_steps
from test_parallelize import assert_state_equal, loss_of

STEPS = 3


def _sgd_losses(model, args, steps=STEPS):
    return train_steps(model, args, loss_of, steps, lr=0.1)


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


PADDING = {"first": 0, "last (second shard)": VOCAB - 1, "negative": -1}


def _embed_worker(rank, world):
    import alpa_torch
    out = {}
    for label, padding_idx in PADDING.items():  # one launch for every case
        model, args = embed_model(padding_idx)
        pmodel = alpa_torch.parallelize(model, args, mesh_shape=(1, 2),
                                        plan_overrides={"emb.weight": "S0R"})
        specs = pmodel.alpa_plan.param_specs
        assert specs["emb.weight"] == "S0R", specs
        out[label] = (_sgd_losses(pmodel, args), _state(pmodel.full_state_dict()), specs)
    return out


def test_vocab_split_embedding_keeps_padding_row():
    results = run_ranks(_embed_worker, 2, timeout=300)
    for label, padding_idx in PADDING.items():
        model, args = embed_model(padding_idx)
        pad_row = model.emb.weight[padding_idx].detach().clone()
        ref_losses, ref_state = _sgd_losses(model, args), _state(model)
        # the single-process reference leaves the padding row alone
        np.testing.assert_array_equal(ref_state["emb.weight"][padding_idx], pad_row.numpy())
        for rank, result in enumerate(results):
            losses, state, specs = result[label]
            np.testing.assert_allclose(losses, ref_losses, rtol=1e-5,
                                       err_msg=f"padding_idx {label} rank {rank}")
            assert_state_equal(state, ref_state, f"padding_idx {label} rank {rank}", specs)


# ---- a pipeline stage that splits BatchNorm by channel (defect 3) ------------------

class ConvNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = torch.nn.Sequential(*[torch.nn.Sequential(
            torch.nn.Conv2d(3 if i == 0 else 8, 8, 3, padding=1, bias=False),
            torch.nn.BatchNorm2d(8), torch.nn.ReLU()) for i in range(2)])
        self.head = torch.nn.Linear(8, 4)

    def forward(self, x):
        return self.head(self.blocks(x).mean((2, 3)))


def conv_model():
    torch.manual_seed(0)
    return ConvNet()


def conv_batch(step):
    g = torch.Generator().manual_seed(50 + step)
    return torch.randn(4, 3, 6, 6, generator=g), torch.randn(4, 4, generator=g)


def mse(out, target):
    return ((out - target) ** 2).mean()


def _conv_pipeline_worker(rank, world):
    import alpa_torch
    model = conv_model()
    # each stage on (1, 2); stage 0's convolution split by output channel,
    # its BatchNorm's statistics kept whole (R) but read and updated a half
    # per rank, as the planner may choose (the resharding R -> S0 is free)
    pmodel = alpa_torch.parallelize(
        model, (conv_batch(0)[0],), method="pipeshard", num_micro_batches=1,
        layer_boundaries=["blocks.1"], stage_meshes=[(1, 2), (1, 2)],
        plan_overrides={"blocks.0.0.weight": "S0RRR", "b_blocks_0_1_running_mean": "R",
                        "b_blocks_0_1_running_var": "R"})
    opt = torch.optim.SGD(pmodel.parameters(), lr=0.1)
    losses = [pmodel.step(*conv_batch(s), mse, optimizer=opt) for s in range(STEPS)]
    views = pmodel._alpa_pipeline.buffer_views
    return losses, _state(pmodel.full_state_dict()), [t for t, _ in views]


def test_pipeshard_channel_split_batchnorm_keeps_whole_running_stats():
    model = conv_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ref_losses = []
    for s in range(STEPS):
        loss = mse(model(conv_batch(s)[0]), conv_batch(s)[1])
        opt.zero_grad()
        loss.backward()
        opt.step()
        ref_losses.append(loss.item())
    ref_state = _state(model)
    results = run_ranks(_conv_pipeline_worker, 4, timeout=300)
    # the plan does read the statistics in pieces (else the test tests nothing)
    assert any("running_mean" in t for r in results for t in r[2]), [r[2] for r in results]
    for rank, (losses, state, _) in enumerate(results):
        np.testing.assert_allclose(losses, ref_losses, rtol=1e-5, err_msg=f"rank {rank}")
        assert_state_equal(state, ref_state, f"rank {rank}", {})


# ---- the warning for an op without a sharding rule (defect 10) ---------------------

class _KthBlock(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(16, 16)

    def forward(self, x):
        h = self.fc(x)
        return torch.kthvalue(h, 2, 1, keepdim=True)[0] * h


class _KthModel(torch.nn.Module):
    def __init__(self, blocks=1):
        super().__init__()
        self.block = _KthBlock()
        self.more = torch.nn.Sequential(*[_KthBlock() for _ in range(blocks - 1)])
        self.out = torch.nn.Linear(16, 4)

    def forward(self, x):
        return self.out(self.more(self.block(x)))


def test_unsupported_op_warning_names_module_op_and_consequence():
    import alpa_torch
    torch.manual_seed(0)
    the_plan = alpa_torch.plan(_KthModel(), (torch.randn(8, 16),), mesh_shape=(1, 2))
    [warning] = [w for w in the_plan.warnings if "kthvalue" in w]
    assert warning.startswith("no sharding rule for aten.kthvalue.default in module 'block' "
                              "(node kthvalue): the planner computes aten.kthvalue.default "
                              "replicated, whole on every device (its inputs linear f32[8,16] "
                              "gathered whole); in this plan it costs "), warning
    assert " s per step (compute " in warning and "gathering its inputs" in warning
    assert "warning: " + warning in the_plan.explain()
    # the same op in several modules: one warning, the others counted
    [grouped] = alpa_torch.plan(_KthModel(blocks=3), (torch.randn(8, 16),),
                                mesh_shape=(1, 2)).warnings
    assert grouped.startswith("no sharding rule for aten.kthvalue.default in module 'block' ")
    assert "; and 2 more nodes of this op, " in grouped and grouped.endswith(" s per step in all")
