// This file implements the entry point of the intra-op ILP solver (Alpa
// §4): IlpProblem in, one strategy per node out. ilp_solver.cc is the only
// file that includes CBC.
#pragma once

#include "core/status.h"
#include "intra_op/ilp_problem.h"

namespace alpa::intra_op {

/// Most CBC threads IlpOptions.num_threads may ask for.
inline constexpr int kMaxIlpThreads = 256;

struct IlpOptions {
  /// Wall-clock limit for CBC, in seconds (> 0). When it is hit with a
  /// plan in hand the solution's status is kTimeLimitFeasible.
  double time_limit_s = 60.0;
  /// CBC threads in [1, kMaxIlpThreads]. 1 keeps results reproducible run
  /// to run.
  int num_threads = 1;
  /// Memory-bound problems (a memory row can bind) stop once the plan is
  /// proven within this fraction of the optimum (status kWithinGap, with
  /// IlpSolution.lower_bound) instead of closing the gap exactly: their LP
  /// bound sits some 0.1-0.7% below the optimum on transformer graphs and
  /// proving the last of it took minutes (a knapsack over near-equal
  /// layers). In [0, 1); 0 solves to optimality. Unbounded problems are
  /// always solved to optimality (their LP is almost always integral).
  double memory_gap = 0.0;
  /// Print CBC's log to stdout (off: CBC prints nothing, ever).
  bool verbose = false;
};

/// Picks one strategy per node minimizing total seconds under the memory
/// budget (formulation in ilp_solver.cc and DESIGN.md §5).
///
/// Errors: InvalidArgument for a problem that does not validate() or bad
/// options; Infeasible when no plan exists (a node whose strategies are
/// all forbidden, a memory budget below the least memory any plan needs,
/// CBC proving infeasibility) or when CBC found no plan within the time
/// limit. Identical inputs give identical choices (with num_threads = 1).
/// Problems where every node has one allowed strategy never reach CBC.
///
/// kOptimal means no plan is cheaper by more than CBC's gaps, about 1e-8 of
/// the objective, whatever the range of the costs (the model is scaled to
/// the objective, not to the largest cost); the plan returned always fits
/// the memory budget exactly (evaluate() agrees). Safe to call from many
/// threads: CBC solves run one at a time under a process-wide lock.
core::StatusOr<IlpSolution> solve_ilp(const IlpProblem& problem,
                                      const IlpOptions& options = {});

}  // namespace alpa::intra_op
