// This file implements evaluate(): the solver-independent re-check of an
// intra-op ILP choice, and its text breakdown.
#include "intra_op/evaluator.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

namespace alpa::intra_op {
namespace {

constexpr size_t kTopEntries = 5;

core::Status check_choice(const IlpProblem& problem,
                          const std::vector<StrategyIdx>& choice) {
  if (static_cast<int64_t>(choice.size()) != problem.num_nodes()) {
    return core::invalid_argument(fmt::format(
        "choice has {} entries, the problem has {} nodes", choice.size(),
        problem.num_nodes()));
  }
  for (size_t i = 0; i < choice.size(); ++i) {
    int64_t n = problem.num_strategies(static_cast<NodeIdx>(i));
    if (choice[i] < 0 || choice[i] >= n) {
      return core::invalid_argument(fmt::format(
          "choice[{}] = {}, but node {} has strategies 0..{}", i, choice[i], i,
          n - 1));
    }
  }
  return core::ok_status();
}

void evaluate_memory(const IlpProblem& problem,
                     const std::vector<StrategyIdx>& choice,
                     IlpEvaluation& out) {
  out.memory_per_time.reserve(problem.liveness.size());
  for (size_t t = 0; t < problem.liveness.size(); ++t) {
    double bytes = 0.0;
    for (NodeIdx node : problem.liveness[t]) {
      bytes += problem.memory(node, choice[static_cast<size_t>(node)]);
    }
    out.memory_per_time.push_back(bytes);
    if (out.peak_time < 0 || bytes > out.memory_peak) {
      out.memory_peak = bytes;
      out.peak_time = static_cast<TimeIdx>(t);
    }
  }
  out.memory_budget = problem.memory_budget;
  out.memory_ok = out.memory_peak <= problem.memory_budget;
}

// Indices of the `count` largest values, largest first, lowest index on ties.
std::vector<size_t> top_indices(const std::vector<double>& values, size_t count) {
  std::vector<size_t> order(values.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return values[a] > values[b]; });
  order.resize(std::min(count, order.size()));
  return order;
}

}  // namespace

bool IlpEvaluation::feasible() const {
  return std::isfinite(objective) && memory_ok;
}

std::string IlpEvaluation::to_string() const {
  std::string out = fmt::format(
      "objective {} s = nodes {} s + edges {} s\n",
      core::format_double(objective), core::format_double(node_cost),
      core::format_double(edge_cost));
  if (peak_time >= 0) {
    out += fmt::format("memory peak {} at time point {} of {}, budget {}: {}\n",
                       format_bytes(memory_peak), peak_time,
                       memory_per_time.size(), format_bytes(memory_budget),
                       memory_ok ? "met" : "EXCEEDED");
  }
  for (size_t i : top_indices(node_costs, kTopEntries)) {
    out += fmt::format("  node {}: {} s\n", i, core::format_double(node_costs[i]));
  }
  for (size_t e : top_indices(edge_costs, kTopEntries)) {
    out += fmt::format("  edge {}: {} s\n", e, core::format_double(edge_costs[e]));
  }
  return out;
}

core::StatusOr<IlpEvaluation> evaluate(const IlpProblem& problem,
                                       const std::vector<StrategyIdx>& choice) {
  ALPA_RETURN_IF_ERROR(problem.validate());
  ALPA_RETURN_IF_ERROR(check_choice(problem, choice));
  IlpEvaluation out;
  out.node_costs.reserve(choice.size());
  for (size_t i = 0; i < choice.size(); ++i) {
    double cost = problem.node_costs[i][static_cast<size_t>(choice[i])];
    out.node_costs.push_back(cost);
    out.node_cost += cost;
  }
  out.edge_costs.reserve(problem.edges.size());
  for (const IlpProblem::Edge& edge : problem.edges) {
    StrategyIdx k = choice[static_cast<size_t>(edge.src)];
    StrategyIdx l = choice[static_cast<size_t>(edge.dst)];
    double cost = edge.costs[static_cast<size_t>(k)][static_cast<size_t>(l)];
    out.edge_costs.push_back(cost);
    out.edge_cost += cost;
  }
  out.objective = out.node_cost + out.edge_cost;
  evaluate_memory(problem, choice, out);
  return out;
}

}  // namespace alpa::intra_op
