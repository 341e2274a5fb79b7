// This file implements the independent evaluator of an intra-op ILP
// choice (Alpa §4): it recomputes cost and memory straight from the
// IlpProblem data, sharing no code with the solver, so that any solution
// (CBC's, a heuristic's, a hand-written one) can be checked and explained.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "intra_op/ilp_problem.h"

namespace alpa::intra_op {

struct IlpEvaluation {
  /// node_cost + edge_cost, in seconds; +inf when a forbidden strategy or
  /// strategy pair is chosen.
  double objective = 0.0;
  /// Σ_i node_costs[i][choice[i]], in seconds.
  double node_cost = 0.0;
  /// Σ_e edges[e].costs[choice[src]][choice[dst]], in seconds.
  double edge_cost = 0.0;
  /// Per-node and per-edge terms of the two sums above, in seconds.
  std::vector<double> node_costs;
  std::vector<double> edge_costs;
  /// memory_per_time[t]: bytes per device live at time point t.
  std::vector<double> memory_per_time;
  /// max_t memory_per_time[t] in bytes (0 without time points).
  double memory_peak = 0.0;
  /// The time point of memory_peak (first one on ties); -1 if none.
  TimeIdx peak_time = -1;
  /// Copied from the problem, bytes per device.
  double memory_budget = kInfinity;
  /// memory_peak <= memory_budget.
  bool memory_ok = true;

  /// Finite objective and memory_ok.
  bool feasible() const;
  /// Multi-line breakdown: totals, memory peak vs budget, and the most
  /// expensive nodes and edges.
  std::string to_string() const;
};

/// Evaluates `choice` (one strategy per node) on `problem`. Returns
/// InvalidArgument when the problem does not validate() or `choice` has the
/// wrong size or an out-of-range strategy. An infeasible choice (forbidden
/// strategy, memory over budget) is not an error: see feasible().
core::StatusOr<IlpEvaluation> evaluate(const IlpProblem& problem,
                                       const std::vector<StrategyIdx>& choice);

}  // namespace alpa::intra_op
