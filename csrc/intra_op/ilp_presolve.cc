// This file implements the exact presolve of the intra-op ILP (see
// ilp_presolve.h) and the bounds the solver scales its objective by.
#include "intra_op/ilp_presolve.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>

#include <fmt/format.h>

namespace alpa::intra_op::detail {
namespace {

using core::Status;
using core::StatusOr;

// Fixes node i when it has exactly one allowed strategy; fails when none.
Status try_fix(const IlpProblem& problem, NodeIdx i, Presolved& ps,
               std::deque<NodeIdx>& queue) {
  const std::vector<double>& costs = ps.costs[static_cast<size_t>(i)];
  int64_t count = 0;
  StrategyIdx last = kFree;
  for (size_t k = 0; k < costs.size(); ++k) {
    if (std::isfinite(costs[k])) {
      ++count;
      last = static_cast<StrategyIdx>(k);
    }
  }
  if (count == 0) {
    const auto& own = problem.node_costs[static_cast<size_t>(i)];
    bool own_forbidden = std::none_of(own.begin(), own.end(),
                                      [](double c) { return std::isfinite(c); });
    return core::infeasible(fmt::format(
        "node {} has no allowed strategy: {}", i,
        own_forbidden
            ? fmt::format("all {} strategy costs are +inf", own.size())
            : std::string("every strategy has a +inf resharding cost to a "
                          "neighbour whose only allowed strategy is fixed, or "
                          "needs more memory than the budget leaves")));
  }
  if (count == 1) {
    ps.fixed[static_cast<size_t>(i)] = last;
    queue.push_back(i);
  }
  return core::ok_status();
}

// Folds edge `e`, whose endpoint `fixed_node` is fixed, into its other end.
Status fold_edge(const IlpProblem& problem, EdgeIdx e, NodeIdx fixed_node,
                 Presolved& ps, std::deque<NodeIdx>& queue) {
  const IlpProblem::Edge& edge = problem.edges[static_cast<size_t>(e)];
  bool src_fixed = fixed_node == edge.src;
  NodeIdx other = src_fixed ? edge.dst : edge.src;
  size_t k_fixed = static_cast<size_t>(ps.fixed[static_cast<size_t>(fixed_node)]);
  auto cost_at = [&](size_t k_other) {
    return src_fixed ? edge.costs[k_fixed][k_other] : edge.costs[k_other][k_fixed];
  };
  StrategyIdx other_fixed = ps.fixed[static_cast<size_t>(other)];
  if (other_fixed != kFree) {
    if (std::isinf(cost_at(static_cast<size_t>(other_fixed)))) {
      return core::infeasible(fmt::format(
          "no plan exists: edge {} ({} -> {}) has a +inf resharding cost between "
          "the only allowed strategies of its endpoints ({} and {}; the others "
          "cost +inf or need more memory than the budget leaves)", e, edge.src,
          edge.dst, ps.fixed[static_cast<size_t>(edge.src)],
          ps.fixed[static_cast<size_t>(edge.dst)]));
    }
    return core::ok_status();
  }
  std::vector<double>& costs = ps.costs[static_cast<size_t>(other)];
  for (size_t k = 0; k < costs.size(); ++k) costs[k] += cost_at(k);
  return try_fix(problem, other, ps, queue);
}

void merge_free_edges(const IlpProblem& problem, const std::vector<bool>& folded,
                      Presolved& ps) {
  for (size_t e = 0; e < problem.edges.size(); ++e) {
    if (folded[e]) continue;
    const IlpProblem::Edge& edge = problem.edges[e];
    bool forward = edge.src < edge.dst;
    NodeIdx a = forward ? edge.src : edge.dst;
    NodeIdx b = forward ? edge.dst : edge.src;
    Matrix& merged = ps.edges[{a, b}];
    size_t rows = static_cast<size_t>(problem.num_strategies(a));
    size_t cols = static_cast<size_t>(problem.num_strategies(b));
    if (merged.empty()) merged.assign(rows, std::vector<double>(cols, 0.0));
    for (size_t k = 0; k < rows; ++k) {
      for (size_t l = 0; l < cols; ++l) {
        merged[k][l] += forward ? edge.costs[k][l] : edge.costs[l][k];
      }
    }
  }
}

// Fixing and folding on `node_costs` (the problem's, with forbidden
// strategies set to +inf).
StatusOr<Presolved> fix_and_fold(const IlpProblem& problem, const Matrix& node_costs) {
  Presolved ps;
  ps.costs = node_costs;
  ps.fixed.assign(static_cast<size_t>(problem.num_nodes()), kFree);
  std::vector<std::vector<EdgeIdx>> adjacent(ps.fixed.size());
  for (size_t e = 0; e < problem.edges.size(); ++e) {
    adjacent[static_cast<size_t>(problem.edges[e].src)].push_back(static_cast<EdgeIdx>(e));
    adjacent[static_cast<size_t>(problem.edges[e].dst)].push_back(static_cast<EdgeIdx>(e));
  }
  std::deque<NodeIdx> queue;
  for (NodeIdx i = 0; i < problem.num_nodes(); ++i) {
    ALPA_RETURN_IF_ERROR(try_fix(problem, i, ps, queue));
  }
  std::vector<bool> folded(problem.edges.size(), false);
  while (!queue.empty()) {
    NodeIdx i = queue.front();
    queue.pop_front();
    for (EdgeIdx e : adjacent[static_cast<size_t>(i)]) {
      if (folded[static_cast<size_t>(e)]) continue;
      folded[static_cast<size_t>(e)] = true;
      ALPA_RETURN_IF_ERROR(fold_edge(problem, e, i, ps, queue));
    }
  }
  merge_free_edges(problem, folded, ps);
  return ps;
}

// Least bytes node i can take under any allowed strategy.
double least_memory(const IlpProblem& problem, const Presolved& ps, NodeIdx i) {
  double least = kInfinity;
  for (size_t k = 0; k < ps.costs[static_cast<size_t>(i)].size(); ++k) {
    if (ps.allowed(i, k)) least = std::min(least, problem.memory(i, static_cast<StrategyIdx>(k)));
  }
  return least;
}

// Bytes by which a plan's exact memory at a time point may exceed the
// budget while evaluate(), which sums `n` doubles left to right, still
// finds it within: each addition rounds by at most one ulp of the sum.
double rounding_slack(size_t n, double bytes) {
  return 2.0 * static_cast<double>(n + 2) * std::numeric_limits<double>::epsilon() * bytes;
}

// The row of time point t (terms of every allowed strategy with extra
// memory) with its right-hand side relaxed by the rounding slack, so that
// every plan evaluate() accepts satisfies it; `excess` is by how much the
// least memory exceeds the relaxed budget (> 0: no plan fits).
MemoryRow memory_row(const IlpProblem& problem, const Presolved& ps,
                     const std::vector<double>& least, size_t t, long double& excess,
                     bool& can_bind) {
  MemoryRow row;
  row.time = static_cast<TimeIdx>(t);
  long double floor_sum = 0.0L, most_extra = 0.0L;
  for (NodeIdx i : problem.liveness[t]) {
    double base = least[static_cast<size_t>(i)];
    floor_sum += base;
    if (ps.fixed[static_cast<size_t>(i)] != kFree) continue;
    double node_extra = 0.0;
    for (size_t k = 0; k < ps.costs[static_cast<size_t>(i)].size(); ++k) {
      double extra = problem.memory(i, static_cast<StrategyIdx>(k)) - base;
      if (!ps.allowed(i, k) || extra <= 0.0) continue;
      row.terms.push_back({i, static_cast<StrategyIdx>(k), extra});
      node_extra = std::max(node_extra, extra);
    }
    most_extra += node_extra;
  }
  const double slack = rounding_slack(
      problem.liveness[t].size(),
      std::max(problem.memory_budget, static_cast<double>(floor_sum + most_extra)));
  const long double rhs = static_cast<long double>(problem.memory_budget) + slack - floor_sum;
  excess = -rhs;
  row.rhs = static_cast<double>(rhs);
  can_bind = rhs > 0 && !row.terms.empty() && most_extra > rhs;
  return row;
}

// Rows that can bind; fails when even the least memory per node exceeds
// the budget at some time point.
StatusOr<std::vector<MemoryRow>> memory_rows(const IlpProblem& problem, const Presolved& ps) {
  std::vector<MemoryRow> rows;
  if (!problem.has_memory() || std::isinf(problem.memory_budget)) return rows;
  std::vector<double> least(ps.fixed.size());
  for (NodeIdx i = 0; i < problem.num_nodes(); ++i) {
    least[static_cast<size_t>(i)] = least_memory(problem, ps, i);
  }
  bool fits = true;
  long double worst = -1.0L;  // the largest least memory, and where
  size_t worst_t = 0;
  for (size_t t = 0; t < problem.liveness.size(); ++t) {
    long double excess = 0.0L;
    bool can_bind = false;
    MemoryRow row = memory_row(problem, ps, least, t, excess, can_bind);
    fits = fits && excess <= 0;
    long double floor_bytes = 0.0L;
    for (NodeIdx i : problem.liveness[t]) floor_bytes += least[static_cast<size_t>(i)];
    if (floor_bytes > worst) {
      worst = floor_bytes;
      worst_t = t;
    }
    if (can_bind) rows.push_back(std::move(row));
  }
  if (!fits) {
    return core::infeasible(fmt::format(
        "memory budget {} is below the least memory any plan needs, {} at "
        "time point {}; raise the budget or use more devices",
        format_bytes(problem.memory_budget), format_bytes(static_cast<double>(worst)), worst_t));
  }
  return rows;
}

// Forbids (in `node_costs`) every strategy whose extra memory alone exceeds
// its row's right-hand side. True when any was forbidden.
bool forbid_oversized(const std::vector<MemoryRow>& rows, Matrix& node_costs) {
  bool changed = false;
  for (const MemoryRow& row : rows) {
    for (const MemoryRow::Term& term : row.terms) {
      double& cost = node_costs[static_cast<size_t>(term.node)][static_cast<size_t>(term.strategy)];
      if (term.bytes > row.rhs && std::isfinite(cost)) {
        cost = kInfinity;
        changed = true;
      }
    }
  }
  return changed;
}

}  // namespace

bool Presolved::allowed(NodeIdx i, size_t k) const {
  return std::isfinite(costs[static_cast<size_t>(i)][k]);
}

StatusOr<PresolveResult> presolve(const IlpProblem& problem) {
  Matrix node_costs = problem.node_costs;
  // Each pass forbids at least one strategy, so this ends.
  for (;;) {
    ALPA_ASSIGN_OR_RETURN(Presolved ps, fix_and_fold(problem, node_costs));
    ALPA_ASSIGN_OR_RETURN(std::vector<MemoryRow> rows, memory_rows(problem, ps));
    if (!forbid_oversized(rows, node_costs)) return PresolveResult{std::move(ps), std::move(rows)};
  }
}

double model_objective(const Presolved& ps, const std::vector<StrategyIdx>& choice) {
  double sum = 0.0;
  for (size_t i = 0; i < ps.costs.size(); ++i) {
    if (ps.fixed[i] == kFree) sum += ps.costs[i][static_cast<size_t>(choice[i])];
  }
  for (const auto& [key, matrix] : ps.edges) {
    sum += matrix[static_cast<size_t>(choice[static_cast<size_t>(key.first)])]
                 [static_cast<size_t>(choice[static_cast<size_t>(key.second)])];
  }
  return sum;
}

double model_lower_bound(const Presolved& ps) {
  double bound = 0.0;
  for (size_t i = 0; i < ps.costs.size(); ++i) {
    if (ps.fixed[i] != kFree) continue;
    bound += *std::min_element(ps.costs[i].begin(), ps.costs[i].end());
  }
  for (const auto& [key, matrix] : ps.edges) {
    double least = kInfinity;
    for (size_t k = 0; k < matrix.size(); ++k) {
      if (!ps.allowed(key.first, k)) continue;
      for (size_t l = 0; l < matrix[k].size(); ++l) {
        if (ps.allowed(key.second, l)) least = std::min(least, matrix[k][l]);
      }
    }
    bound += least;
  }
  return bound;
}

double largest_model_cost(const Presolved& ps) {
  double largest = 0.0;
  auto visit = [&](double c) {
    if (std::isfinite(c)) largest = std::max(largest, c);
  };
  for (size_t i = 0; i < ps.costs.size(); ++i) {
    if (ps.fixed[i] == kFree) std::for_each(ps.costs[i].begin(), ps.costs[i].end(), visit);
  }
  for (const auto& [key, matrix] : ps.edges) {
    for (const auto& row : matrix) std::for_each(row.begin(), row.end(), visit);
  }
  return largest;
}

}  // namespace alpa::intra_op::detail
