// This file implements the exact presolve of the intra-op ILP that runs
// before CBC sees it (internal to the solver; see ilp_solver.cc):
//
//  * a node with one allowed (finite-cost) strategy is fixed and its edges
//    are folded into the neighbour's costs, which may fix the neighbour;
//  * a strategy whose extra memory alone exceeds what a time point leaves
//    once every other live node takes its least is forbidden (it can never
//    fit), and presolve runs again;
//  * parallel edges between two free nodes are summed into one matrix;
//  * memory rows that cannot bind are dropped.
//
// Memory rows are relaxed by the rounding of evaluate()'s left-to-right sum,
// so presolve never rules out a plan evaluate() accepts (the solver re-checks
// every plan exactly and cuts off the few the relaxation lets through).
// After it, every memory term is at most its row's right-hand side, so rows
// scale to coefficients in (0, 1] whatever the bytes were (1e16 bytes
// against a 4.6-byte budget is a forbidden strategy, not a coefficient
// 1e15 times larger than the others).
#pragma once

#include <map>
#include <utility>
#include <vector>

#include "core/status.h"
#include "intra_op/ilp_problem.h"

namespace alpa::intra_op::detail {

inline constexpr StrategyIdx kFree = -1;

using Matrix = std::vector<std::vector<double>>;

struct Presolved {
  Matrix costs;                    ///< seconds; neighbours of fixed nodes folded in
  std::vector<StrategyIdx> fixed;  ///< kFree, or the only allowed strategy
  std::map<std::pair<NodeIdx, NodeIdx>, Matrix> edges;  ///< a < b, both free

  bool allowed(NodeIdx i, size_t k) const;
};

/// Σ_{(i,k)} bytes·s_ik ≤ rhs at one time point, for free nodes only.
struct MemoryRow {
  struct Term {
    NodeIdx node;
    StrategyIdx strategy;
    double bytes;  ///< m_ik − min_k m_ik, in (0, rhs]
  };
  TimeIdx time = 0;
  std::vector<Term> terms;
  /// bytes: M − Σ_{i live} min_k m_ik plus the rounding slack of
  /// evaluate()'s sum, > 0: every plan evaluate() accepts satisfies the row.
  double rhs = 0.0;
};

struct PresolveResult {
  Presolved ps;
  std::vector<MemoryRow> rows;  ///< rows that can bind
};

/// Runs the presolve above. Infeasible when a node has no allowed strategy
/// or the least memory of some time point exceeds the budget.
core::StatusOr<PresolveResult> presolve(const IlpProblem& problem);

/// Objective of `choice` restricted to what the CBC model sees: Σ costs of
/// free nodes + Σ merged edges between them, in seconds (≥ 0).
double model_objective(const Presolved& ps, const std::vector<StrategyIdx>& choice);

/// A lower bound on model_objective over every allowed choice (≥ 0).
double model_lower_bound(const Presolved& ps);

/// The largest finite cost among free nodes and merged edges (0 when none).
double largest_model_cost(const Presolved& ps);

}  // namespace alpa::intra_op::detail
