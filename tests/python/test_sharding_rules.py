"""Every strategy of every sharding rule, checked numerically.

For one small module per op family, each strategy the C++ rule generates
for the op (``_C.node_strategies``) is pinned in turn, and the op runs
sharded on 4 Gloo ranks through the real runtime (the planner's resharding
steps, collectives and their backward duals). The output and the
gradients of the input and the parameters must equal the unsharded op's.
"""
import torch
import torch.nn.functional as F

from dist_harness import run_ranks


class Fn(torch.nn.Module):
    """A one-op module: `fn(x, *params)`."""

    def __init__(self, fn, *param_shapes):
        super().__init__()
        self.fn = fn
        self.params = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.randn(s) * 0.5) for s in param_shapes])

    def forward(self, x):
        return self.fn(x, *self.params)


def cases():
    """name -> (module factory, example input factory, op whose node to pin)."""
    g = lambda *s: torch.randn(*s)  # noqa: E731
    return {
        "linear": (lambda: torch.nn.Linear(8, 16), lambda: g(8, 8), "linear"),
        "mm": (lambda: Fn(torch.mm, (8, 16)), lambda: g(8, 8), "mm"),
        "addmm": (lambda: Fn(lambda x, b, w: torch.addmm(b, x, w), (16,), (8, 16)), lambda: g(8, 8), "addmm"),
        "bmm": (lambda: Fn(torch.bmm, (4, 8, 8)), lambda: g(4, 8, 8), "bmm"),
        "einsum": (lambda: Fn(lambda x, w: torch.einsum("bsd,df->bsf", x, w), (8, 16)), lambda: g(4, 8, 8), "einsum"),
        "conv2d": (lambda: torch.nn.Conv2d(4, 8, 3, padding=1), lambda: g(4, 4, 8, 8), "conv2d"),
        "layer_norm": (lambda: torch.nn.LayerNorm(16), lambda: g(4, 8, 16), "layer_norm"),
        "batch_norm": (lambda: torch.nn.BatchNorm2d(8), lambda: g(8, 8, 4, 4), "batch_norm"),
        "softmax": (lambda: Fn(lambda x, w: (x * w).softmax(-1), (16,)), lambda: g(8, 16), "softmax"),
        "embedding": (lambda: torch.nn.Embedding(16, 8), lambda: torch.randint(0, 16, (4, 8)), "embedding"),
        "sdpa": (lambda: Fn(lambda x, w: F.scaled_dot_product_attention(x * w, x, x), (8,)),
                 lambda: g(4, 4, 8, 8), "scaled_dot_product_attention"),
        # Grouped-query attention: 8 query heads read 4 key/value heads; a
        # split of the query heads must split the key heads with them.
        "sdpa_gqa": (lambda: Fn(lambda x, w: F.scaled_dot_product_attention(
            x * w, x[:, :4], x[:, 4:], is_causal=True, enable_gqa=True), (8,)),
            lambda: g(2, 8, 8, 8), "scaled_dot_product_attention"),
        "sum": (lambda: Fn(lambda x, w: (x * w).sum(dim=1), (16,)), lambda: g(8, 16), "sum"),
        "mean": (lambda: Fn(lambda x, w: (x * w).mean(dim=0), (16,)), lambda: g(8, 16), "mean"),
        "add_broadcast": (lambda: Fn(lambda x, b: x + b, (16,)), lambda: g(8, 16), "add"),
        "gelu": (lambda: Fn(lambda x, w: F.gelu(x * w), (16,)), lambda: g(8, 16), "gelu"),
        "view": (lambda: Fn(lambda x, w: (x * w).view(16, 32), (16,)), lambda: g(4, 8, 16), "view"),
        "transpose": (lambda: Fn(lambda x, w: (x * w).transpose(0, 1), (16,)), lambda: g(8, 16), "transpose"),
        "split": (lambda: Fn(lambda x, w: torch.stack((x * w).split(8, dim=-1)).sum(0), (24,)),
                  lambda: g(8, 24), "split"),
        "cat": (lambda: Fn(lambda x, w: torch.cat([x, x * w], dim=0), (16,)), lambda: g(8, 16), "cat"),
        # Two inputs, the second lending only its shape (planning these raised an
        # internal error before).
        "view_as": (lambda: Fn(lambda x, w: (x * w).view(16, 32).view_as(x), (16,)),
                    lambda: g(4, 8, 16), "view_as"),
        "expand_as": (lambda: Fn(lambda x, w: w.expand_as(x) * x, (16,)), lambda: g(8, 16),
                      "expand_as"),
    }


def _grads(module, x):
    out = module(x)
    target = torch.randn(out.shape, generator=torch.Generator().manual_seed(3))
    ((out - target) ** 2).mean().backward()
    params = {}
    for name, p in module.named_parameters():
        grad = p.grad
        if hasattr(grad, "full_tensor"):
            from alpa_torch.emit.spec import parse_spec
            from alpa_torch.runtime.parameters import block_permute
            grad = block_permute(grad.full_tensor(), parse_spec(p._alpa_spec),
                                  module._alpa_runner.mesh, inverse=True)
        params[name] = grad.detach().numpy().copy()
    xg = None if x.grad is None else x.grad.detach().numpy().copy()
    return out.detach().numpy().copy(), xg, params


def _rule_worker(rank, world, mesh):
    import alpa_torch
    from alpa_torch import _C
    checked, failures = 0, []
    for name, (make, example, node) in cases().items():
        torch.manual_seed(0)
        x0 = example()
        if x0.is_floating_point():
            x0.requires_grad_(True)
        graph = alpa_torch.capture(make(), (x0,)).graph
        op_base = node
        node = next(n.name for n in graph.nodes
                    if n.kind == "op" and n.op.split(".")[1] == op_base)
        for strategy, *_ in _C.node_strategies(graph, node, list(mesh)):
            torch.manual_seed(0)
            ref_module, x = make(), example()
            if x.is_floating_point():
                x.requires_grad_(True)
            ref = _grads(ref_module, x)
            torch.manual_seed(0)
            module, x = make(), example()
            if x.is_floating_point():
                x.requires_grad_(True)
            pmodel = alpa_torch.parallelize(module, (x,), mesh_shape=mesh,
                                            plan_overrides={node: strategy})
            got = _grads(pmodel, x)
            checked += 1
            parts = [("output", got[0], ref[0])]
            if ref[1] is not None:
                parts.append(("input grad", got[1], ref[1]))
            parts += [(f"grad of {k}", got[2][k], v) for k, v in ref[2].items()]
            for what, actual, expected in parts:
                try:
                    torch.testing.assert_close(torch.from_numpy(actual), torch.from_numpy(expected),
                                               rtol=1e-5, atol=1e-5)
                except AssertionError as e:
                    failures.append(f"{name} [{strategy}] {what}: {str(e).splitlines()[-1]}")
    return checked, failures


def test_every_strategy_of_every_rule():
    # One-dimensional mesh: every rule's every letter assignment. On a 2-D
    # mesh a strategy combines two such assignments; those combinations are
    # exercised end to end by test_parallelize.py on (2, 2) (a full sweep of
    # them here takes ~10 minutes, mostly creating process groups).
    mesh = (1, 4)
    results = run_ranks(_rule_worker, 4, mesh, timeout=600)
    checked, failures = results[0]
    assert checked >= 60
    assert not failures, "\n".join(failures)
