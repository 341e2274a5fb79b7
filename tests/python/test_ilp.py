"""The ILP as plain data from Python: optimum equals exhaustive search."""
import math
import random

import pytest

from alpa_torch import PlanInfeasibleError, ilp


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
