// Tests fit_to_budget(): the repair / improve / eject phases on a knapsack
// with a known optimum, and on random problems (every plan it returns fits
// and uses only strategies presolve allows).
#include "intra_op/ilp_heuristic.h"

#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "intra_op/evaluator.h"
#include "intra_op/ilp_presolve.h"

namespace alpa::intra_op::detail {
namespace {

IlpProblem knapsack(std::vector<std::vector<std::pair<double, double>>> nodes, double budget) {
  IlpProblem p;
  std::vector<NodeIdx> live;
  for (const auto& strategies : nodes) {
    live.push_back(p.num_nodes());
    p.node_costs.emplace_back();
    p.node_memory.emplace_back();
    for (auto [cost, bytes] : strategies) {
      p.node_costs.back().push_back(cost);
      p.node_memory.back().push_back(bytes);
    }
  }
  p.liveness = {live};
  p.memory_budget = budget;
  return p;
}

TEST(IlpHeuristicTest, EjectionUndoesTheGreedyRepair) {
  // (cost, bytes) per strategy; starting from all-0 (30 bytes) with 21 to
  // spare, the repair takes the one move that fits (C: +5); ejecting it
  // and repairing with A and B costs 1 + 3.
  IlpProblem p = knapsack({{{0, 10}, {3, 4}}, {{0, 10}, {1, 7}}, {{0, 10}, {5, 0}}}, 21);
  auto pre = presolve(p);
  ASSERT_TRUE(pre.ok()) << pre.status().to_string();
  auto plan = fit_to_budget(p, pre->ps, {0, 0, 0});
  ASSERT_TRUE(plan.has_value());
  EXPECT_EQ(*plan, (std::vector<StrategyIdx>{1, 1, 0}));
  auto eval = evaluate(p, *plan);
  ASSERT_TRUE(eval.ok());
  EXPECT_DOUBLE_EQ(eval->objective, 3 + 1);
  EXPECT_DOUBLE_EQ(eval->memory_peak, 4 + 7 + 10);
}

TEST(IlpHeuristicTest, EjectionTradesACostlyFitForACheaperOne) {
  // The start fits (4 + 12 <= 20) but A's small strategy costs 2; giving A
  // its cheaper, bigger one breaks the budget (24), and B's small strategy
  // repairs it: 0 + 1 < 2.
  IlpProblem p = knapsack({{{0, 12}, {2, 4}}, {{0, 12}, {1, 2}}}, 20);
  auto pre = presolve(p);
  ASSERT_TRUE(pre.ok());
  auto plan = fit_to_budget(p, pre->ps, {1, 0});  // fits already, but dearer
  ASSERT_TRUE(plan.has_value());
  EXPECT_EQ(*plan, (std::vector<StrategyIdx>{0, 1}));
}

TEST(IlpHeuristicTest, RandomPlansFitAndUseAllowedStrategies) {
  std::mt19937 rng(1234);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  int fitted = 0;
  for (int trial = 0; trial < 200; ++trial) {
    IlpProblem p;
    int n = 2 + static_cast<int>(unit(rng) * 10);
    std::vector<NodeIdx> live;
    double most = 0, least = 0;
    for (int i = 0; i < n; ++i) {
      int k = 1 + static_cast<int>(unit(rng) * 5);
      p.node_costs.emplace_back();
      p.node_memory.emplace_back();
      double lo = 1e30, hi = 0;
      for (int s = 0; s < k; ++s) {
        p.node_costs.back().push_back(unit(rng) < 0.1 ? kInfinity : unit(rng));
        double b = std::round(unit(rng) * 100);
        p.node_memory.back().push_back(b);
        lo = std::min(lo, b);
        hi = std::max(hi, b);
      }
      least += lo;
      most += hi;
      live.push_back(i);
    }
    for (int i = 0; i + 1 < n; ++i) {
      if (unit(rng) < 0.5) continue;
      IlpProblem::Edge e{i, i + 1, {}};
      for (size_t a = 0; a < p.node_costs[i].size(); ++a) {
        e.costs.emplace_back();
        for (size_t b = 0; b < p.node_costs[i + 1].size(); ++b) e.costs.back().push_back(unit(rng));
      }
      p.edges.push_back(e);
    }
    p.liveness = {live};
    p.memory_budget = least + unit(rng) * (most - least);
    auto pre = presolve(p);
    if (!pre.ok()) continue;
    std::vector<StrategyIdx> start = pre->ps.fixed;
    for (size_t i = 0; i < start.size(); ++i) {  // the most memory allowed
      if (start[i] != kFree) continue;
      double worst = -1;
      for (size_t k = 0; k < p.node_costs[i].size(); ++k) {
        if (pre->ps.allowed(static_cast<NodeIdx>(i), k) && p.node_memory[i][k] > worst) {
          worst = p.node_memory[i][k];
          start[i] = static_cast<StrategyIdx>(k);
        }
      }
    }
    SCOPED_TRACE(testing::Message() << "trial " << trial << ": " << p.to_string());
    auto plan = fit_to_budget(p, pre->ps, start);
    // One time point: some move always lowers the excess until every node
    // holds its least memory, which presolve guarantees fits.
    ASSERT_TRUE(plan.has_value());
    auto eval = evaluate(p, *plan);
    ASSERT_TRUE(eval.ok());
    EXPECT_TRUE(eval->feasible()) << eval->to_string();
    ++fitted;
  }
  EXPECT_GT(fitted, 100);
}

}  // namespace
}  // namespace alpa::intra_op::detail
