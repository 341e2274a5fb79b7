"""The ILP as plain data from Python: optimum equals exhaustive search."""
import math
import random

import pytest

from alpa_torch import PlanInfeasibleError
from alpa_torch.planning import ilp


def random_problem(rng, with_memory):
    n = rng.randint(2, 6)
    sizes = [rng.randint(1, 4) for _ in range(n)]
    costs = [[rng.choice([rng.uniform(0, 10), rng.uniform(0, 10), math.inf]) if k else
              rng.uniform(0, 10) for k in range(s)] for s in sizes]
    edges = []
    for j in range(1, n):
        for i in rng.sample(range(j), k=min(j, rng.randint(1, 2))):
            edges.append({"src": i, "dst": j,
                          "costs": [[rng.uniform(0, 5) for _ in range(sizes[j])]
                                    for _ in range(sizes[i])]})
    problem = {"node_costs": costs, "edges": edges}
    if with_memory:
        memory = [[rng.uniform(0, 4) for _ in range(s)] for s in sizes]
        problem.update(node_memory=memory, liveness=[list(range(n))],
                       memory_budget=sum(min(m) for m in memory) + rng.uniform(0, 3))
    return problem


@pytest.mark.parametrize("with_memory", [False, True])
def test_optimum_matches_brute_force(with_memory):
    rng = random.Random(7 + with_memory)
    for _ in range(60):
        problem = random_problem(rng, with_memory)
        try:
            best = ilp.brute_force(problem)
        except ValueError:  # no feasible choice: the solver must say so
            with pytest.raises(PlanInfeasibleError):
                ilp.solve(problem)
            continue
        expected = ilp.evaluate(problem, best)["objective"]
        got = ilp.solve(problem)
        assert got["objective"] == pytest.approx(expected, rel=1e-9, abs=1e-12)
        assert ilp.evaluate(problem, got["choice"])["memory_ok"]


def test_hand_built_optimum():
    # node 0: [1, 5]; node 1: [4, 1]; resharding costs 10 unless both pick 0
    problem = {"node_costs": [[1, 5], [4, 1]],
               "edges": [{"src": 0, "dst": 1, "costs": [[0, 10], [10, 0]]}]}
    out = ilp.solve(problem)
    assert out["choice"] == [0, 0] and out["objective"] == 1 + 4


def test_infeasible_budget_and_malformed_problem():
    problem = {"node_costs": [[1, 2]], "node_memory": [[5, 6]], "liveness": [[0]],
               "memory_budget": 4}
    with pytest.raises(PlanInfeasibleError, match="least memory"):
        ilp.solve(problem)
    with pytest.raises(ValueError):
        ilp.solve({"node_costs": [[1, 2]], "edges": [{"src": 0, "dst": 3, "costs": [[0]]}]})


def wide_problem(rng):
    """Costs log-uniform over 1e-9..1e9 s (some 0 or forbidden)."""
    def cost():
        u = rng.random()
        return math.inf if u < 0.08 else 0.0 if u < 0.15 else 10 ** rng.uniform(-9, 9)
    n = rng.randint(2, 5)
    sizes = [rng.randint(1, 3) for _ in range(n)]
    edges = []
    for j in range(1, n):
        i = rng.randrange(j)
        edges.append({"src": i, "dst": j,
                      "costs": [[cost() for _ in range(sizes[j])] for _ in range(sizes[i])]})
    return {"node_costs": [[cost() for _ in range(s)] for s in sizes], "edges": edges}


def test_wide_cost_range_is_optimal():
    # Issue 11 #2: with the objective divided by the largest cost (1e7),
    # CBC's absolute tolerances called objective 1.0 optimal; the optimum is 0.
    out = ilp.solve({"node_costs": [[0.0, 1e7], [1.0, 0.0]],
                     "edges": [{"src": 0, "dst": 1, "costs": [[0, 0], [0, 0]]}]})
    assert out["objective"] == 0.0 and out["choice"] == [0, 1]
    assert out["status"] == "optimal"
    rng = random.Random(11)
    for _ in range(60):
        problem = wide_problem(rng)
        try:
            best = ilp.evaluate(problem, ilp.brute_force(problem))["objective"]
        except ValueError:
            with pytest.raises(PlanInfeasibleError):
                ilp.solve(problem)
            continue
        got = ilp.solve(problem)
        assert got["status"] == "optimal"
        assert got["objective"] == pytest.approx(best, rel=1e-8, abs=0), problem


def test_memory_gap_stops_within_the_gap_with_a_lower_bound():
    # Two-choice knapsack, 10 nodes of (cost 0, 10 bytes) or (cost 1 + i/100, 1
    # byte): the LP relaxation splits a node, so the bound is below the optimum.
    n = 10
    problem = {"node_costs": [[0.0, 1 + i / 100] for i in range(n)],
               "node_memory": [[10.0, 1.0] for _ in range(n)],
               "liveness": [list(range(n))], "memory_budget": 55.5}
    exact = ilp.solve(problem)
    best = ilp.evaluate(problem, ilp.brute_force(problem))["objective"]
    assert exact["status"] == "optimal" and exact["objective"] == pytest.approx(best, rel=1e-9)
    loose = ilp.solve(problem, memory_gap=0.5)
    assert loose["lower_bound"] <= best + 1e-9 <= loose["objective"] + 2e-9
    assert loose["objective"] <= best * 1.5
    assert loose["status"] in ("optimal", "within-gap")


def test_memory_entry_far_above_budget_is_forbidden_not_an_abort():
    # Issue 11 #5: 1e16 bytes against a 4.6-byte budget aborted the
    # interpreter on a CBC assertion (CglZeroHalf).
    problem = {"node_costs": [[1.0, 2.0], [1.0, 2.0]],
               "node_memory": [[1e16, 2.0], [2.0, 0.5]], "liveness": [[0, 1]],
               "memory_budget": 4.6}
    out = ilp.solve(problem)
    assert out["choice"] == [1, 0] and out["objective"] == 2 + 1
    assert out["choice"] == ilp.brute_force(problem)
    # Entries far below the budget, and both at once, on a model CBC sees.
    for memory, budget in [([[1e-300, 5.0], [1e-300, 4.0]], 6.0),
                           ([[1e29, 1e-9], [3.0, 1e-12]], 3.0),
                           ([[1e-12, 1.0], [1.0 + 1e-12, 1e-12]], 1.0)]:
        problem = {"node_costs": [[1.0, 2.0], [1.0, 2.0]], "node_memory": memory,
                   "liveness": [[0, 1]], "memory_budget": budget,
                   "edges": [{"src": 0, "dst": 1, "costs": [[0.5, 0.0], [0.0, 0.5]]}]}
        out = ilp.solve(problem)
        assert ilp.evaluate(problem, out["choice"])["memory_ok"]
        assert out["objective"] == ilp.evaluate(problem, ilp.brute_force(problem))["objective"]


@pytest.mark.parametrize("problem, message", [
    ([[1, 2]], "an ILP problem is a dict"),
    ({"node_costs": [[1, 2]], "edge": []}, "unknown field 'edge'"),
    ({"node_costs": [[1, -2]]}, r"node_costs\[0\]\[1\] is -2; a cost is seconds >= 0"),
    ({"node_costs": [[1, math.nan]]}, r"node_costs\[0\]\[1\] is NaN"),
    ({"node_costs": [[1, 10**400]]}, "too large for a double"),
    ({"node_costs": [[1, 1e300]]}, "above the largest finite cost"),
    ({"node_costs": [[1, True]]}, "must be a number, got bool"),
    ({"node_costs": [[]]}, "node 0 has no strategies"),
    ({"node_costs": [[1, 2]], "edges": [{"src": 0, "dst": 1, "costs": [[0]]}]},
     "endpoint outside"),
    ({"node_costs": [[1], [2]], "edges": [{"src": 0, "dst": 1, "costs": [[0, 1]]}]},
     "costs row 0 has 2 entries, expected 1"),
    ({"node_costs": [[1, 2]], "node_memory": [[1]], "liveness": [[0]]},
     "node_memory.0. has 1 strategies"),
    ({"node_costs": [[1, 2]], "node_memory": [[1, math.inf]], "liveness": [[0]]},
     "memory must be finite"),
    ({"node_costs": [[1, 2]], "node_memory": [[1, 2]], "liveness": [[0, 0]]}, "twice"),
    ({"node_costs": [[1, 2]], "node_memory": [[1, 2]], "liveness": [[0]],
      "memory_budget": math.nan}, "memory_budget is nan"),
    ({"node_costs": [[1, 2]], "node_memory": [[1, 2]], "liveness": [[0]],
      "memory_budget": "3"}, "must be a number"),
    ({"node_costs": [[object()]]}, "holds only lists, ints and floats"),
])
def test_malformed_problem_is_a_value_error(problem, message):
    with pytest.raises(ValueError, match=message):
        ilp.solve(problem)


def test_bad_options_and_choices_are_value_errors():
    problem = {"node_costs": [[1, 2]]}
    for kwargs in [dict(time_limit_s=0), dict(time_limit_s="1"), dict(time_limit_s=math.nan),
                   dict(num_threads=0), dict(num_threads=2**40), dict(num_threads=1.5),
                   dict(memory_gap=1), dict(memory_gap=-0.1), dict(memory_gap=True)]:
        with pytest.raises(ValueError, match="time_limit_s|num_threads|memory_gap"):
            ilp.solve(problem, **kwargs)
    for choice in [[5], [True], [2**70], None, [1.0], [[0]]]:
        with pytest.raises(ValueError, match="choice"):
            ilp.evaluate(problem, choice)
