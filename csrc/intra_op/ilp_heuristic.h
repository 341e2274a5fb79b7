// This file implements the local search that gives a memory-bound intra-op
// ILP its first plan (internal to the solver; see ilp_solver.cc). CBC's
// own heuristics take most of a budgeted solve (its feasibility pump ran
// 0.8 s of a 0.8 s solve on a GPT-2 instance whose unbounded ILP takes
// 0.07 s); a plan close to the optimum, handed over as CBC's first
// incumbent, lets the search stop at the root once the LP bound proves it.
//
//   unbounded optimum ──repair──▶ within budget ──improve──▶ no single move
//   (over the budget)             (cheapest cost             lowers the cost
//                                  per byte saved)           within budget
//                     ──eject──▶ a cost-lowering move that breaks the budget,
//                                 repaired elsewhere, when the total falls
//
// Moves change one free node's strategy and are priced exactly on the
// presolved model (node costs plus merged edges to free neighbours; fixed
// neighbours are folded into the node costs). The work is counted, not
// timed, so identical inputs give identical plans.
#pragma once

#include <optional>
#include <vector>

#include "intra_op/ilp_presolve.h"
#include "intra_op/ilp_problem.h"

namespace alpa::intra_op::detail {

/// A plan near `start` (one strategy per node; fixed nodes as presolve
/// fixed them) whose memory fits `problem.memory_budget` at every time
/// point, found by the local search above using only strategies presolve
/// allows; nullopt when the greedy repair finds none. The caller checks the
/// plan exactly with evaluate().
std::optional<std::vector<StrategyIdx>> fit_to_budget(const IlpProblem& problem,
                                                      const Presolved& ps,
                                                      std::vector<StrategyIdx> start);

}  // namespace alpa::intra_op::detail
