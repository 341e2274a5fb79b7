"""Cross-mesh resharding plans from Python: applying the transfers with
narrow/copy_ on local torch tensors, in one process, gives every
destination device exactly its shard (computed independently with
torch.chunk), each element once."""
import pytest
import torch

from alpa_torch import _C


def parse_spec(text):
    """Per dim (mesh axes, block factor); ignores nothing: P raises in C++."""
    dims, i = [], 0
    while i < len(text):
        c = text[i]
        i += 1
        axes, block = [], 1
        if c == "S":
            while i < len(text) and text[i].isdigit():
                axes.append(int(text[i]))
                i += 1
            if i < len(text) and text[i] == "x":
                j = i + 1
                while j < len(text) and text[j].isdigit():
                    j += 1
                block, i = int(text[i + 1:j]), j
        dims.append((axes, block))
    return dims


def expected_shard(x, spec, mesh_shape, k):
    """Device k's shard: per dim, chunk into blocks, then each block into
    the dim's piece count, keep this device's piece of every block."""
    if mesh_shape[0] == 1:  # a 1-D mesh is always (n, 1)
        mesh_shape = (mesh_shape[1], 1)
    coord = (k // mesh_shape[1], k % mesh_shape[1])
    for d, (axes, block) in enumerate(parse_spec(spec)):
        index, count = 0, 1
        for a in axes:
            index = index * mesh_shape[a] + coord[a]
            count *= mesh_shape[a]
        x = torch.cat([b.chunk(count, d)[index] for b in x.chunk(block, d)], d)
    return x


def narrow(t, box):
    for d, (b, e) in enumerate(box):
        t = t.narrow(d, b, e - b)
    return t


def apply_plan(shape, src, dst, dtype=torch.float64):
    """Runs the plan between (mesh_shape, device_ids, spec) triples."""
    x = torch.arange(torch.Size(shape).numel(), dtype=dtype).reshape(shape)
    src_shards = {dev: expected_shard(x, src[2], src[0], k).clone() for k, dev in enumerate(src[1])}
    want = {dev: expected_shard(x, dst[2], dst[0], k) for k, dev in enumerate(dst[1])}
    got = {dev: torch.full_like(w, -1) for dev, w in want.items()}
    hits = {dev: torch.zeros_like(w, dtype=torch.int64) for dev, w in want.items()}
    itemsize = torch.empty((), dtype=dtype).element_size()
    plan = _C.cross_mesh_plan(list(shape), itemsize, src[0], src[1], src[2], dst[0], dst[1], dst[2])
    for t in plan:
        piece = narrow(src_shards[t["src"]], t["src_local_box"])
        assert torch.equal(piece, narrow(x, t["box"]))
        assert t["bytes"] == piece.numel() * itemsize
        narrow(got[t["dst"]], t["dst_local_box"]).copy_(piece)
        narrow(hits[t["dst"]], t["dst_local_box"]).add_(1)
    for dev in want:
        assert torch.equal(got[dev], want[dev]), dev
        assert bool((hits[dev] == 1).all()), dev
    return plan


CASES = [
    ([4, 4], ((2, 1), [0, 1], "S0R"), ((2, 1), [2, 3], "RS0")),
    ([8, 6], ((2, 2), [0, 1, 2, 3], "S01R"), ((2, 1), [3, 5], "RS0x3")),
    ([12, 4], ((2, 2), [4, 5, 6, 7], "S10R"), ((4, 1), [0, 1, 2, 3], "RS0")),
    ([12, 2, 4], ((4, 1), [0, 1, 2, 3], "RRR"), ((2, 1), [2, 6], "S0x2RR")),
    ([6, 8], ((1, 2), [1, 0], "S0x3S1"), ((2, 2), [3, 2, 1, 0], "RS10")),
    ([24], ((2, 2), [0, 1, 2, 3], "S01x3"), ((1, 1), [3], "R")),
    ([], ((2, 1), [0, 1], ""), ((2, 1), [1, 2], "")),
]


@pytest.mark.parametrize("shape,src,dst", CASES)
def test_plan_delivers_exact_shards(shape, src, dst):
    plan = apply_plan(shape, src, dst)
    keys = [(t["dst"], t["src"], t["box"]) for t in plan]
    assert keys == sorted(keys)


def test_shared_device_copies_locally_and_replicas_share_sends():
    plan = apply_plan([8], ((2, 1), [0, 1], "R"), ((2, 1), [1, 2], "S0"))
    assert [(t["src"], t["dst"]) for t in plan] == [(1, 1), (0, 2)]
    plan = apply_plan([4, 4], ((4, 1), [0, 1, 2, 3], "RR"), ((2, 2), [4, 5, 6, 7], "RR"))
    assert [(t["src"], t["dst"]) for t in plan] == [(0, 4), (1, 5), (2, 6), (3, 7)]


def test_text_and_seconds():
    args = ([4, 4], 4, (2, 1), [0, 1], "S0R", (2, 1), [2, 3], "RS0")
    assert _C.cross_mesh_plan_text(*args) == (
        "cross-mesh plan for [4,4] x 4 B: 4 transfers\n"
        "dev 0 -> dev 2: [0:2, 0:2] 16 B; local [0:2, 0:2] -> [0:2, 0:2]\n"
        "dev 1 -> dev 2: [2:4, 0:2] 16 B; local [0:2, 0:2] -> [2:4, 0:2]\n"
        "dev 0 -> dev 3: [0:2, 2:4] 16 B; local [0:2, 2:4] -> [0:2, 0:2]\n"
        "dev 1 -> dev 3: [2:4, 2:4] 16 B; local [0:2, 2:4] -> [2:4, 0:2]\n")
    one_host = _C.cross_mesh_seconds(*args)
    two_hosts = _C.cross_mesh_seconds(*args, cluster_json=_C.cluster_preset("cpu-gloo", 2, 2))
    assert 0 < one_host < two_hosts  # {0,1} -> {2,3} crosses hosts on the second


def test_errors_raise_value_error():
    with pytest.raises(ValueError, match="sender must reduce first"):
        _C.cross_mesh_plan([4], 4, (2, 1), [0, 1], "RP0", (2, 1), [2, 3], "S0")
    with pytest.raises(ValueError, match=r"splits dim 0 \(size 3\) into 2 pieces"):
        _C.cross_mesh_plan([3], 4, (2, 1), [0, 1], "S0", (2, 1), [2, 3], "R")
    with pytest.raises(ValueError, match="has 2 dims but the tensor"):
        _C.cross_mesh_plan([4], 4, (2, 1), [0, 1], "S0R", (2, 1), [2, 3], "R")
    with pytest.raises(ValueError, match="source mesh"):
        _C.cross_mesh_plan([4], 4, (2, 1), [0, 0], "S0", (2, 1), [2, 3], "R")
