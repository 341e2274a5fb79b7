"""The intra-op ILP as plain data, solvable without a model.

A problem is a dict (the JSON form of ``csrc/intra_op/ilp_problem.h``):

    {"node_costs": [[c_00, c_01, ...], ...],          # seconds; inf = forbidden
     "edges": [{"src": i, "dst": j, "costs": [[...]]}],  # [k_src][k_dst]
     "node_memory": [[...], ...], "liveness": [[i, j, ...], ...],
     "memory_budget": bytes}

``solve`` returns the optimal choice per node (COIN-OR CBC, in process);
``evaluate`` recomputes objective and memory for any choice, independently.
"""
from __future__ import annotations

import json
import math
from typing import Any, Dict, List, Sequence

from alpa_torch import _C


def _dump(problem: Dict[str, Any]) -> str:
    return json.dumps(problem, allow_nan=True)


def solve(problem: Dict[str, Any], *, time_limit_s: float = 60.0,
          num_threads: int = 1) -> Dict[str, Any]:
    """Optimal strategy per node: {"choice", "objective", "memory_peak",
    "status", "solve_seconds"}. Raises PlanInfeasibleError when no choice
    fits, ValueError for a malformed problem."""
    return dict(_C.solve_ilp(_dump(problem), float(time_limit_s), int(num_threads)))


def evaluate(problem: Dict[str, Any], choice: Sequence[int]) -> Dict[str, Any]:
    """Objective, peak memory and whether the budget holds, for `choice`."""
    return dict(_C.evaluate_ilp(_dump(problem), list(choice)))


def brute_force(problem: Dict[str, Any]) -> List[int]:
    """Exhaustive search (for tests on small problems)."""
    import itertools
    sizes = [len(c) for c in problem["node_costs"]]
    best, best_choice = math.inf, None
    for choice in itertools.product(*[range(n) for n in sizes]):
        ev = evaluate(problem, choice)
        if ev["memory_ok"] and ev["objective"] < best:
            best, best_choice = ev["objective"], list(choice)
    if best_choice is None:
        raise ValueError("no feasible choice")
    return best_choice
