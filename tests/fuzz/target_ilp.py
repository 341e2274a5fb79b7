"""Fuzz target (c): ``alpa_torch.planning.ilp.solve`` and ``evaluate`` with oracles.

Input: JSON ``{"problem": <ilp.solve's dict>, "choice": [...] | null}`` (a
bare problem dict works too). Oracles:
  * evaluate: any problem and choice either raise a documented exception or
    agree with an evaluation written here in Python;
  * solve: the choice it returns must evaluate to its reported objective
    and fit the memory budget; on small problems (few choices) an "optimal"
    answer must equal the optimum of exhaustive search within a relative
    tolerance, and PlanInfeasibleError must mean that search finds no
    feasible choice either.
"""
from __future__ import annotations

import itertools
import math

from common import Finding, allowed, close, decode_json

from alpa_torch.errors import PlanInfeasibleError
from alpa_torch.planning import ilp

_MAX_CHOICES = 20000
_RTOL = 1e-6          # optimality: |objective - optimum| <= _RTOL · max(|.|)
_EVAL_RTOL = 1e-9     # two evaluations of one choice


def _at(seq, i):
    """seq[i] for 0 <= i < len(seq) only (no negative indexing)."""
    if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(seq):
        raise IndexError(f"index {i!r} of a list of {len(seq)}")
    return seq[i]


def _python_evaluate(problem, choice):
    """(objective, memory_peak, memory_ok) of `choice`, from the docstring
    of csrc/intra_op/ilp_problem.h."""
    costs = problem["node_costs"]
    if len(choice) != len(costs):
        raise IndexError(f"{len(choice)} choices for {len(costs)} nodes")
    objective = sum(float(_at(costs[i], k)) for i, k in enumerate(choice))
    for e in problem.get("edges", []):
        objective += float(_at(_at(e["costs"], _at(choice, e["src"])), _at(choice, e["dst"])))
    memory = problem.get("node_memory") or []
    peak = 0.0
    for live in (problem.get("liveness", []) if memory else []):
        peak = max(peak, sum(float(_at(_at(memory, i), _at(choice, i))) for i in live))
    budget = float(problem.get("memory_budget", math.inf))
    return objective, peak, peak <= budget


def _compare_evaluations(problem, choice, ev) -> None:
    try:
        mine = _python_evaluate(problem, choice)
    except (IndexError, KeyError, TypeError, ValueError) as e:
        raise Finding(f"evaluate accepted a choice/problem the definition cannot "
                      f"evaluate ({type(e).__name__}: {e}); it returned {ev}") from None
    if not (close(ev["objective"], mine[0], _EVAL_RTOL) or
            (math.isnan(mine[0]) and math.isnan(ev["objective"]))):
        raise Finding(f"evaluate objective {ev['objective']} != Σ costs {mine[0]}")
    if problem.get("node_memory") and problem.get("liveness"):
        if not close(ev["memory_peak"], mine[1], _EVAL_RTOL) or ev["memory_ok"] != mine[2]:
            raise Finding(f"evaluate memory {ev['memory_peak']} ok={ev['memory_ok']} != "
                          f"{mine[1]} ok={mine[2]}")


def _optimum(problem):
    """(best objective, its choice) over every feasible choice, (inf, None)
    when none is feasible; None when there are too many choices."""
    sizes = [len(c) for c in problem["node_costs"]]
    if math.prod(sizes) > _MAX_CHOICES:
        return None
    best, best_choice = math.inf, None
    for choice in itertools.product(*[range(n) for n in sizes]):
        objective, _, memory_ok = _python_evaluate(problem, choice)
        if memory_ok and objective < best:
            best, best_choice = objective, list(choice)
    return best, best_choice


def _check_solve(problem, ok, result) -> None:
    if ok:
        ev = ilp.evaluate(problem, result["choice"])
        _compare_evaluations(problem, result["choice"], ev)
        if not ev["memory_ok"] or not math.isfinite(ev["objective"]):
            raise Finding(f"solve returned an infeasible choice {result['choice']}: {ev}")
        if not close(ev["objective"], result["objective"], _EVAL_RTOL):
            raise Finding(f"solve reports objective {result['objective']}, its choice "
                          f"evaluates to {ev['objective']}")
    found = _optimum(problem)
    if found is None:
        return
    best, best_choice = found
    if not ok and best_choice is not None:
        raise Finding(f"solve raised PlanInfeasibleError ({result}) but choice {best_choice} "
                      f"is feasible with objective {best}")
    if ok and best_choice is None:
        raise Finding(f"solve returned {result['choice']}; exhaustive search finds no "
                      f"feasible choice")
    if ok and result["status"] == "optimal" and not close(result["objective"], best, _RTOL):
        raise Finding(f"solve says optimal with objective {result['objective']} (choice "
                      f"{result['choice']}); the optimum is {best} (choice {best_choice})")


def one_input(data: bytes) -> None:
    text, doc = decode_json(data)
    if text is None:
        return
    if not isinstance(doc, dict):
        from alpa_torch import _C  # the C++ parser on text that is not an object
        allowed(_C.solve_ilp, text, 5.0, 1)
        return
    problem = doc.get("problem", doc)
    choice = doc.get("choice")
    if not isinstance(problem, dict):
        return
    if isinstance(choice, list) and all(isinstance(k, int) and not isinstance(k, bool)
                                        and -2**63 <= k < 2**63 for k in choice):
        ok, ev = allowed(ilp.evaluate, problem, choice)
        if ok:
            _compare_evaluations(problem, choice, ev)
    ok, result = allowed(ilp.solve, problem, time_limit_s=10.0)
    if ok or isinstance(result, PlanInfeasibleError):
        _check_solve(problem, ok, result)
