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

import math
from typing import Any, Dict, List, Sequence

from alpa_torch import _C
from alpa_torch.graph import json_numbers

__all__ = ["solve", "evaluate", "brute_force"]

_MAX_THREADS = 256
_INT64 = (-2**63, 2**63 - 1)


def _plain(value: Any) -> Any:
    """numpy arrays and scalars as lists and numbers (for json_numbers.dumps)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not a number or a list")


def _check_ints(value: Any, where: str) -> None:
    """Ints beyond a double's range would read back as inf: name them."""
    if isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > 2**1023:
            raise ValueError(f"{where} is an int of {len(str(abs(value)))} digits, too large "
                             f"for a double; use math.inf to forbid a strategy")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_ints(v, f"{where}[{i}]")
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_ints(v, f"{where}.{k}" if where else str(k))


def _dump(problem: Dict[str, Any]) -> str:
    if not isinstance(problem, dict):
        raise ValueError(f"an ILP problem is a dict with node_costs (and optionally edges, "
                         f"node_memory, liveness, memory_budget); got {type(problem).__name__}")
    try:
        _check_ints(problem, "")
        return json_numbers.dumps(problem, default=_plain)  # math.inf as "Infinity"
    except (TypeError, RecursionError) as e:
        raise ValueError(f"an ILP problem holds only lists, ints and floats (math.inf = "
                         f"forbidden): {e}") from None


def _check_options(time_limit_s: Any, num_threads: Any, memory_gap: Any = 0.0) -> None:
    if isinstance(time_limit_s, bool) or not isinstance(time_limit_s, (int, float)) or \
            not time_limit_s > 0:
        raise ValueError(f"time_limit_s must be a number of seconds > 0, got {time_limit_s!r}")
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or \
            not 1 <= num_threads <= _MAX_THREADS:
        raise ValueError(f"num_threads must be an int in [1, {_MAX_THREADS}], got "
                         f"{num_threads!r}")
    if isinstance(memory_gap, bool) or not isinstance(memory_gap, (int, float)) or \
            not 0 <= memory_gap < 1:
        raise ValueError(f"memory_gap must be a fraction in [0, 1), got {memory_gap!r}")


def solve(problem: Dict[str, Any], *, time_limit_s: float = 60.0,
          num_threads: int = 1, memory_gap: float = 0.0) -> Dict[str, Any]:
    """Optimal strategy per node: {"choice", "objective", "memory_peak",
    "lower_bound", "status", "solve_seconds"}. Raises PlanInfeasibleError when no choice
    fits, ValueError for a malformed problem (costs are seconds >= 0 or
    math.inf, memory bytes >= 0).

    "optimal" holds to about 1e-8 of the objective whatever the range of
    the costs, and the choice always fits the budget exactly
    (``evaluate(problem, choice)["memory_ok"]``). Safe to call from several
    threads: CBC solves run one at a time, and CBC prints nothing.

    `memory_gap` > 0 lets a memory-bound problem stop once its plan is
    proven within that fraction of the optimum: status "within-gap", and
    no plan is cheaper than "lower_bound" seconds."""
    _check_options(time_limit_s, num_threads, memory_gap)
    return dict(_C.solve_ilp(_dump(problem), float(time_limit_s), int(num_threads),
                             float(memory_gap)))


def evaluate(problem: Dict[str, Any], choice: Sequence[int]) -> Dict[str, Any]:
    """Objective, peak memory and whether the budget holds, for `choice`."""
    try:
        picks = list(choice)
    except TypeError:
        raise ValueError(f"choice must be a list of strategy indices, one per node; got "
                         f"{type(choice).__name__}") from None
    for i, k in enumerate(picks):
        if hasattr(k, "item") and not isinstance(k, (bool, int)):
            try:
                k = k.item()  # a numpy integer
            except (TypeError, ValueError):
                pass
        if isinstance(k, bool) or not isinstance(k, int) or not _INT64[0] <= k <= _INT64[1]:
            raise ValueError(f"choice[{i}] must be a strategy index (an int), got {k!r}")
        picks[i] = int(k)
    return dict(_C.evaluate_ilp(_dump(problem), picks))


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
