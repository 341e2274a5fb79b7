"""Tests alpa_torch.planning.inter_op: the stage DP through the Python API (a known
optimum, memory bounds, bad input), sub-mesh helpers, and a brute-force
cross-check on small random instances."""
import itertools
import math
import random

import pytest

from alpa_torch import PlanInfeasibleError
from alpa_torch.planning.cluster import Cluster
from alpa_torch.planning.inter_op import (StageChoice, StageDPResult, logical_mesh_shapes,
                                 place_submeshes, stage_dp, submeshes)

INF = math.inf


def two_layer_costs():
    """Layers 0 and 1 on 1 x 2 devices: sub-meshes (1, 1) and (1, 2), one config."""
    c = [[[[INF], [INF]] for _ in range(2)] for _ in range(2)]
    c[0][0][0][0] = 1.0
    c[1][1][0][0] = 2.0
    c[0][1][1][0] = 2.5
    c[0][0][1][0] = 0.5
    c[1][1][1][0] = 1.0
    return c


def test_known_optimum():
    r = stage_dp(two_layer_costs(), [(1, 1), (1, 2)], num_micro_batches=4)
    assert isinstance(r, StageDPResult)
    assert r.total_time == pytest.approx((1.0 + 2.0) + 3 * 2.0)  # beats 2.5 + 3 * 2.5
    assert r.t_max == 2.0
    assert r.stages == [StageChoice(0, 0, 0, 0, 1.0), StageChoice(1, 1, 0, 0, 2.0)]
    assert r.stage_submeshes == [(1, 1), (1, 1)]
    assert "stage 1: layers 1..1 on (1, 1)" in repr(r)
    one = stage_dp(two_layer_costs(), [(1, 1), (1, 2)], num_micro_batches=1)
    assert one.total_time == 2.5 and one.stages == [(0, 1, 1, 0, 2.5)]


def test_memory_bound_and_max_stages():
    bounds = [[[[None], [None]] for _ in range(2)] for _ in range(2)]
    bounds[0][0][0][0] = 0  # layer 0 alone on one device: no stage may follow
    r = stage_dp(two_layer_costs(), [(1, 1), (1, 2)], 4, max_n_succ_stages=bounds)
    assert r.total_time == pytest.approx(2.5 + 3 * 2.5)
    r = stage_dp(two_layer_costs(), [(1, 1), (1, 2)], 4, max_num_stages=1)
    assert len(r.stages) == 1
    bounds[0][1][1][0] = -1
    with pytest.raises(PlanInfeasibleError, match="memory bounds"):
        stage_dp(two_layer_costs(), [(1, 1), (1, 2)], 4, max_n_succ_stages=bounds)


def test_numpy_input_matches_lists():
    np = pytest.importorskip("numpy")
    costs = np.array(two_layer_costs())
    costs[1, 0] = np.nan  # k < i: ignored
    r = stage_dp(costs, [(1, 1), (1, 2)], 4,
                 max_n_succ_stages=np.full(costs.shape, 5, dtype=np.int64))
    assert r.total_time == pytest.approx(9.0)


def test_bad_inputs():
    subs = [(1, 1), (1, 2)]
    with pytest.raises(ValueError, match=r"submeshes\[1\] must be a \(num_hosts, devices_per_host\)"):
        stage_dp(two_layer_costs(), [(1, 1), (1, 0)], 4)
    with pytest.raises(ValueError, match="submeshes lists 3; give one entry per sub-mesh"):
        stage_dp(two_layer_costs(), subs + [(1, 4)], 4)
    ragged = two_layer_costs()
    ragged[1].pop()
    with pytest.raises(ValueError, match=r"stage_costs\[1\] has 1 entries"):
        stage_dp(ragged, subs, 4)
    bad = two_layer_costs()
    bad[0][1][0][0] = "fast"
    with pytest.raises(ValueError, match=r"stage_costs\[0\]\[1\]\[0\]\[0\] must be a number"):
        stage_dp(bad, subs, 4)
    bad[0][1][0][0] = math.nan
    with pytest.raises(ValueError, match="NaN; use math.inf"):
        stage_dp(bad, subs, 4)
    bad[0][1][0][0] = -1.0
    with pytest.raises(ValueError, match="must be ≥ 0 seconds"):
        stage_dp(bad, subs, 4)
    with pytest.raises(ValueError, match="num_micro_batches must be an int >= 1, got 0"):
        stage_dp(two_layer_costs(), subs, 0)
    with pytest.raises(ValueError, match="max_n_succ_stages has shape"):
        stage_dp(two_layer_costs(), subs, 4, max_n_succ_stages=[[[[1], [1]]]])
    bounds = [[[[1.5], [None]] for _ in range(2)] for _ in range(2)]
    with pytest.raises(ValueError, match=r"max_n_succ_stages\[0\]\[0\]\[0\]\[0\] must be an int"):
        stage_dp(two_layer_costs(), subs, 4, max_n_succ_stages=bounds)
    with pytest.raises(ValueError, match="shape \\[L, L, M, C\\]"):
        stage_dp([1, 2], subs, 4)
    with pytest.raises(PlanInfeasibleError, match="add up to exactly 3 devices"):
        stage_dp(two_layer_costs(), [(1, 2), (1, 2)], 4, num_devices=3)


def test_absurd_sizes_are_value_errors_not_crashes():
    # Issue 11 #4: a sub-mesh of 2^63-1 devices segfaulted, (2^62, 2^62)
    # overflowed into a plan on 4.6e18 devices with a negative total time.
    one = [[[[1.0]]]]
    with pytest.raises(ValueError, match=r"submeshes\[0\] is \(9223372036854775807, 1\): more "
                                         r"devices than the stage DP takes"):
        stage_dp(one, [(2**63 - 1, 1)], 1)
    with pytest.raises(ValueError, match="more than the 65536 devices the stage DP takes"):
        stage_dp(one, [(2**62, 2**62)], 1)
    for kwargs, message in [(dict(num_micro_batches=2**40), "takes at most 1073741824"),
                            (dict(num_micro_batches=2**70), "beyond what the stage DP takes"),
                            (dict(num_micro_batches=1, num_devices=2**40),
                             "takes at most 65536 devices"),
                            (dict(num_micro_batches=1, max_num_stages=2**70),
                             "beyond what the stage DP takes")]:
        with pytest.raises(ValueError, match=message):
            stage_dp(one, [(1, 1)], **kwargs)
    np = pytest.importorskip("numpy")
    with pytest.raises(ValueError, match=r"shape \[5000, 5000, 1, 1\], more entries than"):
        stage_dp(np.broadcast_to(np.float64(1.0), (5000, 5000, 1, 1)), [(1, 1)], 1)
    with pytest.raises(ValueError, match="above the largest finite cost"):
        stage_dp([[[[1e300]]]], [(1, 1)], 1)
    r = stage_dp([[[[2.0]]]], [(1, 65536)], 2**30)  # at the limits it still answers
    assert r.total_time == 2.0 + (2**30 - 1) * 2.0 > 0


@pytest.mark.parametrize("costs, message", [
    ([[[[1.0]]], 5], r"must have shape \[L, L, M, C\]; got \[2, 1, ...\]"),
    ([[[[1.0]], [[1.0]]], 5], r"stage_costs\[1\] is int, not a list"),
    ({0: 1.0}, "stage_costs is dict, not a list"),
    ([[[{0: 1.0}]]], r"stage_costs\[0\]\[0\]\[0\] is dict, not a list"),
    ([[["ab"]]], r"stage_costs\[0\]\[0\]\[0\] is str, not a list"),
    ([[[[10**400]]]], r"stage_costs\[0\]\[0\]\[0\]\[0\] must be a number"),
    ([[[[True]]]], r"stage_costs\[0\]\[0\]\[0\]\[0\] must be a number"),
    ([[[[]]]], "its logical configs axis is empty"),
    ([], "its layers i axis is empty"),
])
def test_malformed_tables_are_value_errors(costs, message):
    # Issue 11 #8: TypeError / KeyError / MemoryError leaked for these.
    with pytest.raises(ValueError, match=message):
        stage_dp(costs, [(1, 1)], 1)
    if "must be a number" not in message:  # the bounds' shape is read the same way
        with pytest.raises(ValueError, match=message.replace("stage_costs", "max_n_succ_stages")):
            stage_dp([[[[1.0]]]], [(1, 1)], 1, max_n_succ_stages=costs)


def test_malformed_bounds_are_value_errors():
    with pytest.raises(ValueError, match=r"max_n_succ_stages\[0\]\[0\]\[0\]\[0\] must be >= -1"):
        stage_dp([[[[1.0]]]], [(1, 1)], 1, max_n_succ_stages=[[[[-2**70]]]])
    r = stage_dp([[[[1.0]]]], [(1, 1)], 1, max_n_succ_stages=[[[[2**70]]]])  # unbounded
    assert r.total_time == 1.0


def test_submesh_helpers():
    cluster = Cluster.preset("a100-40gb", 2, 4)
    assert submeshes(cluster) == [(1, 1), (1, 2), (1, 4), (2, 4)]
    assert submeshes(cluster.to_json()) == submeshes(cluster.to_dict())
    assert logical_mesh_shapes((1, 8)) == [(8, 1), (4, 2), (2, 4)]
    assert place_submeshes(cluster, [(1, 2), (1, 4), (1, 2)]) == [[4, 5], [0, 1, 2, 3], [6, 7]]
    with pytest.raises(ValueError, match="every device must be used exactly once"):
        place_submeshes(cluster, [(1, 4)])
    with pytest.raises(ValueError, match="pair of positive ints"):
        logical_mesh_shapes((0, 2))


def test_logical_mesh_shapes_of_an_overflowing_submesh_is_a_value_error():
    # 2^62 x 2^62 devices overflowed to a (0, 1) mesh.
    with pytest.raises(ValueError, match="more than the 65536 devices"):
        logical_mesh_shapes((2**62, 2**62))
    assert logical_mesh_shapes((256, 256))[0] == (65536, 1)


def brute_force(costs, subs, B, bounds, D):
    L = len(costs)
    best = INF
    for cuts in itertools.product([0, 1], repeat=L - 1):
        ranges, start = [], 0
        for j, cut in enumerate(cuts):
            if cut:
                ranges.append((start, j))
                start = j + 1
        ranges.append((start, L - 1))
        S = len(ranges)
        options = [[(m, c) for m in range(len(subs)) for c in range(len(costs[0][0][0]))]
                   for _ in ranges]
        for choice in itertools.product(*options):
            if sum(subs[m][0] * subs[m][1] for m, _ in choice) != D:
                continue
            ts = []
            for n, ((i, k), (m, c)) in enumerate(zip(ranges, choice)):
                b = bounds[i][k][m][c]
                if S - 1 - n > b:
                    break
                ts.append(costs[i][k][m][c])
            else:
                if all(t < INF for t in ts):
                    best = min(best, sum(ts) + (B - 1) * max(ts))
    return best


@pytest.mark.parametrize("seed", range(12))
def test_matches_brute_force(seed):
    rng = random.Random(seed)
    subs = submeshes(Cluster.preset("a100-40gb", *[(1, 2), (1, 4), (2, 2)][seed % 3]))
    L, C, B = rng.randint(1, 4), rng.randint(1, 2), rng.choice([1, 2, 8])
    costs = [[[[INF if rng.random() < 0.15 else round(rng.uniform(0.5, 4) * (k - i + 1) /
                                                      (h * d) ** 0.7, 2)
                for _ in range(C)] for (h, d) in subs] for k in range(L)] for i in range(L)]
    bounds = [[[[rng.choice([-1, 0, 1, 2, None]) for _ in range(C)] for _ in subs]
               for _ in range(L)] for _ in range(L)]
    D = max(h * d for h, d in subs)
    numeric = [[[[L if b is None else b for b in per] for per in row] for row in plane]
               for plane in bounds]
    expected = brute_force(costs, subs, B, numeric, D)
    if expected == INF:
        with pytest.raises(PlanInfeasibleError):
            stage_dp(costs, subs, B, max_n_succ_stages=bounds)
        return
    r = stage_dp(costs, subs, B, max_n_succ_stages=bounds)
    assert r.total_time == pytest.approx(expected, rel=1e-9)
    ts = [costs[s.start_layer][s.end_layer][s.submesh][s.logical_config_index] for s in r.stages]
    assert ts == [s.cost for s in r.stages]
    assert r.total_time == pytest.approx(sum(ts) + (B - 1) * max(ts), rel=1e-9)
