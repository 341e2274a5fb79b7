"""Resharding on 2-D meshes moves every element to where the target spec
puts it, forward and backward (issue 12, defect 1: S01 -> S1 swapped batch
rows 1 and 2 on a (2, 2) mesh).

Random Linear-GELU-Linear graphs with random pinned strategies on (2, 2)
must equal single-process forward and backward. The property tests run
the emitter's resharding (``local_ops.reshard_steps`` over the steps of
``_C.plan_reshard`` as the runtime executes them) eagerly on Gloo, for
every pair of specs of a 2-D and a 3-D tensor (R, S0, S1, S01, S10 per
dim, partial sums; block layouts on the 2-D one) on (2, 2), and of the
3-D one on (2, 4): one launch per mesh, the pairs looped inside the
workers. The expected pieces are computed here from the spec notation
(DESIGN §4), not by the runtime. The C++ twin,
tests/cpp/sharding/resharding_exhaustive_test.cc, simulates the same
steps on index lists for more meshes and block layouts."""
import itertools
import random
import types

import numpy as np
import pytest
import torch

from dist_harness import run_ranks

# ---- defect 1, through parallelize ---------------------------------------------

PINS = {"linear": "S01RR = S01RR x RR x R", "linear_1": "S1RS0 = S1RR x S0R x S0"}


def _two_linears():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 4))
    x = torch.randn(4, 2, 8, generator=torch.Generator().manual_seed(1), requires_grad=True)
    return model, x


def _forward_backward(model, x):
    x = x.detach().clone().requires_grad_(True)
    out = model(x)
    weight = torch.arange(out.numel(), dtype=out.dtype).reshape(out.shape)
    (out * weight).sum().backward()
    grads = {}
    for name, p in model.named_parameters():
        g = p.grad.full_tensor() if hasattr(p.grad, "full_tensor") else p.grad
        grads[name] = g.detach().numpy()
    return out.detach().numpy(), x.grad.numpy(), grads


def _pinned_s01_to_s1(rank):
    import alpa_torch
    model, x = _two_linears()
    pmodel = alpa_torch.parallelize(model, (x,), mesh_shape=(2, 2), plan_overrides=PINS)
    return _forward_backward(pmodel, x)


def _mlp():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.GELU(), torch.nn.Linear(8, 4))
    x = torch.randn(4, 2, 8, generator=torch.Generator().manual_seed(1), requires_grad=True)
    return model, x


def _random_pins(count, seed=12):
    """`count` random strategy pins of _mlp's two Linears on (2, 2) whose
    edge reshards in two steps or more (the same on every rank)."""
    import alpa_torch
    from alpa_torch import _C
    graph = alpa_torch.capture(*_mlp()).graph
    first, second = (_C.node_strategies(graph, n, [2, 2]) for n in ("linear", "linear_1"))
    rng, pins = random.Random(seed), []
    while len(pins) < count:
        a, b = rng.choice(first), rng.choice(second)
        pin = {"linear": a[0], "linear_1": b[0]}
        if len(_C.plan_reshard(a[2][0], b[1][0], [4, 2, 8], [2, 2])) >= 2 and pin not in pins:
            pins.append(pin)
    return pins


def _random_graphs(rank, count):
    import alpa_torch
    out = []
    for pins in _random_pins(count):
        model, x = _mlp()
        pmodel = alpa_torch.parallelize(model, (x,), mesh_shape=(2, 2), plan_overrides=pins)
        out.append((pins, _forward_backward(pmodel, x)))
    return out


# ---- every pair of specs, eagerly ------------------------------------------------

def _specs(rank, blocks):
    """Every spec of a rank-`rank` tensor on a 2-axis mesh: each axis unused,
    splitting a dim (both on one dim in either order) or holding partial
    sums; with `blocks`, each split dim also in blocks of 2."""
    out = []
    choices = list(range(rank)) + [None, "P"]
    for c0, c1 in itertools.product(choices, repeat=2):
        orders = [(0, 1), (1, 0)] if c0 == c1 and isinstance(c0, int) else [(0, 1)]
        for order in orders:
            dims, partial = [[] for _ in range(rank)], []
            for axis in order:
                c = (c0, c1)[axis]
                if c == "P":
                    partial.append(axis)
                elif c is not None:
                    dims[c].append(axis)
            variants = [[1] * rank]
            if blocks:
                variants += [[2 if e == d else 1 for e in range(rank)] for d in range(rank) if dims[d]]
            for b in variants:
                text = "".join(("S" + "".join(map(str, a)) + (f"x{k}" if k > 1 else "")) if a else "R"
                               for a, k in zip(dims, b))
                out.append(text + ("P" + "".join(map(str, sorted(partial))) if partial else ""))
    return out


def _piece(x, spec, coord, shape):
    """Device `coord`'s piece of the global `x` laid out as `spec` (a
    ShardingSpec): dim d split over axes (a, b, ...) is cut in mixed radix,
    a outermost, inside each of its blocks."""
    for d, (axes, block) in enumerate(zip(spec.dims, spec.blocks)):
        index, count = 0, 1
        for a in axes:
            index, count = index * shape[a] + coord[a], count * shape[a]
        if count == 1:
            continue
        size = x.shape[d]
        blocks = x.reshape(x.shape[:d] + (block, size // block) + x.shape[d + 1:])
        part = size // block // count
        x = blocks.narrow(d + 1, index * part, part).reshape(x.shape[:d] + (size // count,) + x.shape[d + 1:])
    return x


def _addends(x, partial, shape, rng):
    """Random tensors, one per coordinate on the `partial` axes, summing to x."""
    coords = list(itertools.product(*[range(shape[a]) for a in partial]))
    parts = [torch.randint(-4, 5, x.shape, generator=rng).double() for _ in coords[1:]]
    parts.insert(0, x - sum(parts) if parts else x)
    return dict(zip(coords, parts))


def _check_pair(rewriter, mesh, src_text, dst_text, shape, seed):
    """'' when resharding src -> dst gives each rank its exact piece and the
    gradient lands in the source layout; else what went wrong."""
    from alpa_torch import _C
    from alpa_torch.emit import local_ops
    from alpa_torch.emit.spec import parse_spec, without_partial
    src, dst = parse_spec(src_text), parse_spec(dst_text)
    rng = torch.Generator().manual_seed(seed)
    x = torch.randint(-8, 9, shape, generator=rng).double()
    w = torch.randint(-8, 9, shape, generator=rng).double()  # the output's gradient
    addends = _addends(x, src.partial, mesh.shape, rng)
    mine = tuple(mesh.coord[a] for a in src.partial)
    local = _piece(addends[mine], src, mesh.coord, mesh.shape).clone().requires_grad_(True)
    out = local
    if src != dst:  # the steps the emitter runs: the planner's, in its order
        steps = _C.plan_reshard(src_text, dst_text, list(shape), rewriter.mesh_shape)
        out = local_ops.reshard_steps(rewriter.call, local, steps, src.blocks, dst.blocks, rewriter.group)
    kept = [a for a in src.partial if a in dst.partial]
    want = sum(v for c, v in addends.items()
               if all(c[src.partial.index(a)] == mesh.coord[a] for a in kept))
    want = _piece(want, dst, mesh.coord, mesh.shape)
    if tuple(out.shape) != tuple(want.shape) or not torch.equal(out.detach(), want):
        return f"forward: got {tuple(out.shape)}, wrong values" if out.shape == want.shape else \
            f"forward: got shape {tuple(out.shape)}, want {tuple(want.shape)}"
    whole = without_partial  # gradients are complete
    out.backward(_piece(w, whole(dst), mesh.coord, mesh.shape))
    if not torch.equal(local.grad, _piece(w, whole(src), mesh.coord, mesh.shape)):
        return "backward: the gradient is not the source layout's piece of the output's"
    return ""


def _all_pairs(rank, world, mesh_shape, cases):
    from alpa_torch import _C
    from alpa_torch.emit.local_ops import load_runtime
    from alpa_torch.runtime.mesh import MeshGroups
    load_runtime()
    mesh = MeshGroups(mesh_shape)
    call = lambda fn, *args: fn(*args)  # noqa: E731  eager instead of FX
    rewriter = types.SimpleNamespace(call=call, group=mesh.group, mesh_shape=list(mesh_shape))
    failures, checked, seed = [], 0, 0
    for shape, specs in cases:
        specs = [s for s in specs if _valid(_C, s, shape, mesh_shape)]
        for src, dst in itertools.product(specs, repeat=2):
            if set(_partial(dst)) - set(_partial(src)) or src == dst:
                continue  # whole values never become partial sums (no step does)
            seed += 1
            error = _check_pair(rewriter, mesh, src, dst, shape, seed)
            checked += 1
            if error:
                steps = _C.plan_reshard(src, dst, list(shape), list(mesh_shape))
                failures.append(f"{src} -> {dst} {list(shape)}: {error}; steps {steps}")
    return checked, failures


def _partial(text):
    return text.split("P")[1] if "P" in text else ""


def _valid(_C, spec, shape, mesh_shape):
    try:
        _C.local_shape(spec, list(shape), list(mesh_shape))
        return True
    except ValueError:
        return False


RANDOM_GRAPHS = 4


def _mesh22_worker(rank, world):
    cases = [((16, 16), _specs(2, blocks=True)), ((4, 4, 8), _specs(3, blocks=False))]
    return _all_pairs(rank, world, (2, 2), cases), _pinned_s01_to_s1(rank), \
        _random_graphs(rank, RANDOM_GRAPHS)


def _mesh24_worker(rank, world):
    # the 3-D specs hold every 2-D pattern; block layouts on (2, 4): the C++ twin
    cases = [((8, 8, 8), _specs(3, blocks=False))]
    return _all_pairs(rank, world, (2, 4), cases)


def _assert_all_pairs(results):
    checked = [c for c, _ in results]
    assert checked[0] > 300 and len(set(checked)) == 1, checked
    for rank, (_, failures) in enumerate(results):
        assert not failures, f"rank {rank}: {len(failures)} of {checked[0]} pairs wrong:\n" + \
            "\n".join(failures[:20])


_MESH22 = {}


def _mesh22_results():
    if not _MESH22:
        _MESH22["results"] = run_ranks(_mesh22_worker, 4, timeout=400)
    return _MESH22["results"]


def test_s01_batch_resharded_to_s1_keeps_row_order():
    """Issue 12: fc1 leaves the batch S01, fc2 reads it S1; the plan's
    gather on axis 0 alone gave device (0, j) rows j and 2 + j."""
    ref_out, ref_dx, ref_grads = _forward_backward(*_two_linears())
    for rank, (_, got, _) in enumerate(_mesh22_results()):
        _assert_same(got, (ref_out, ref_dx, ref_grads), f"rank {rank}")


def _assert_same(got, ref, label):
    (out, dx, grads), (ref_out, ref_dx, ref_grads) = got, ref
    np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-6, err_msg=f"{label}: output")
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-5, atol=1e-5, err_msg=f"{label}: input grad")
    for name, g in ref_grads.items():
        np.testing.assert_allclose(grads[name], g, rtol=1e-5, atol=1e-5, err_msg=f"{label}: grad of {name}")


def test_random_pinned_graphs_equal_single_process_on_2x2():
    """Random strategies for both Linears of Linear-GELU-Linear: whatever
    the edge between them reshards, forward and backward are exact."""
    ref = _forward_backward(*_mlp())
    for rank, (_, _, graphs) in enumerate(_mesh22_results()):
        assert len(graphs) == RANDOM_GRAPHS
        for pins, got in graphs:
            _assert_same(got, ref, f"rank {rank}, pins {pins}")


def test_every_spec_pair_reshards_exactly_on_2x2():
    _assert_all_pairs([pairs for pairs, _, _ in _mesh22_results()])


def test_every_spec_pair_reshards_exactly_on_2x4():
    _assert_all_pairs(run_ranks(_mesh24_worker, 8, timeout=500))


def test_spec_list_covers_the_notation():
    specs = _specs(2, blocks=True)
    for text in ("RR", "S01R", "RS10", "S0S1", "S1S0", "RRP01", "S0RP1", "S01x2R", "RS1x2P0"):
        assert text in specs, text
    assert len(specs) == len(set(specs)) == 18 + 16  # 16 split dims take a block variant


def test_resharding_whole_values_to_partial_sums_is_refused():
    from alpa_torch import _C
    with pytest.raises(NotImplementedError, match="reshard to 'RR' without the P suffix"):
        _C.plan_reshard("S0R", "RRP0", [8, 8], [2, 2])
