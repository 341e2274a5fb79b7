// Tests solve_ilp(): hand-built ILPs with known optima, infeasibility
// messages, determinism, and a brute-force cross-check on random graphs.
#include "intra_op/ilp_solver.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "intra_op/evaluator.h"

namespace alpa::intra_op {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

IlpSolution solve_ok(const IlpProblem& p, const IlpOptions& options = {}) {
  auto solution = solve_ilp(p, options);
  EXPECT_TRUE(solution.ok()) << solution.status().to_string();
  return solution.ok() ? *solution : IlpSolution{};
}

TEST(IlpSolverTest, ChainFollowsReshardingCosts) {
  IlpProblem p;
  p.node_costs = {{11, 12, 13}, {21, 22}, {31, 32, 33}, {41, 42}, {51, 52}};
  p.edges = {{0, 1, {{9, 9}, {9, 9}, {0, 9}}},
             {1, 2, {{9, 0, 9}, {9, 9, 9}}},
             {2, 3, {{0, 0}, {9, 0}, {0, 0}}},
             {3, 4, {{0, 0}, {0, 0}}}};
  IlpSolution s = solve_ok(p);
  EXPECT_DOUBLE_EQ(s.objective, 13 + 21 + 32 + 42 + 51);
  EXPECT_EQ(s.choice, (std::vector<StrategyIdx>{2, 0, 1, 1, 0}));
  EXPECT_EQ(s.status, IlpSolveStatus::kOptimal);
  EXPECT_GT(s.num_variables, 0);
}

TEST(IlpSolverTest, ReshardingOutweighsCheaperStrategy) {
  IlpProblem p;
  p.node_costs = {{10, 11}, {21, 20}, {30, 32}};
  p.edges = {{0, 1, {{0, 3}, {3, 0}}}, {1, 2, {{0, 3}, {3, 0}}}};
  IlpSolution s = solve_ok(p);
  EXPECT_DOUBLE_EQ(s.objective, 10 + 21 + 30);
  EXPECT_EQ(s.choice, (std::vector<StrategyIdx>{0, 0, 0}));
}

TEST(IlpSolverTest, InfiniteEdgeEntryForbidsPair) {
  IlpProblem p;
  p.node_costs = {{1, 2}, {1, 1.5}};
  p.edges = {{0, 1, {{kInf, 0}, {0, kInf}}}};
  IlpSolution s = solve_ok(p);
  EXPECT_DOUBLE_EQ(s.objective, 1 + 1.5 + 0);
  EXPECT_EQ(s.choice, (std::vector<StrategyIdx>{0, 1}));
}

TEST(IlpSolverTest, SingleStrategyNeighbourIsFoldedWithoutCbc) {
  IlpProblem p;
  p.node_costs = {{5}, {1, 2}};
  p.edges = {{0, 1, {{10, 0}}}};
  IlpSolution s = solve_ok(p);
  EXPECT_DOUBLE_EQ(s.objective, 5 + 2 + 0);
  EXPECT_EQ(s.choice, (std::vector<StrategyIdx>{0, 1}));
  EXPECT_EQ(s.num_variables, 0);
}

TEST(IlpSolverTest, FoldingChainsThroughForbiddenStrategies) {
  // Node 0 has one strategy; its edge forbids node 1's strategy 0, which
  // leaves node 1 one strategy, which in turn fixes node 2 through edge 1.
  IlpProblem p;
  p.node_costs = {{1}, {2, 3}, {4, 5}};
  p.edges = {{0, 1, {{kInf, 0.5}}}, {1, 2, {{0, 0}, {kInf, 0.25}}}};
  IlpSolution s = solve_ok(p);
  EXPECT_DOUBLE_EQ(s.objective, 1 + 3 + 5 + 0.5 + 0.25);
  EXPECT_EQ(s.choice, (std::vector<StrategyIdx>{0, 1, 1}));
  EXPECT_EQ(s.num_variables, 0);
}

TEST(IlpSolverTest, TrivialProblemSkipsCbc) {
  IlpProblem p;
  p.node_costs = {{1.5}, {2.5}, {3}};
  p.edges = {{0, 1, {{0.25}}}, {2, 1, {{0.5}}}};
  p.node_memory = {{10}, {20}, {30}};
  p.liveness = {{0, 1}, {1, 2}};
  p.memory_budget = 50;
  IlpSolution s = solve_ok(p);
  EXPECT_DOUBLE_EQ(s.objective, 1.5 + 2.5 + 3 + 0.25 + 0.5);
  EXPECT_DOUBLE_EQ(s.memory_peak, 20 + 30);
  EXPECT_EQ(s.num_variables, 0);
  EXPECT_EQ(s.num_constraints, 0);
}

TEST(IlpSolverTest, EmptyProblem) {
  IlpSolution s = solve_ok(IlpProblem{});
  EXPECT_TRUE(s.choice.empty());
  EXPECT_DOUBLE_EQ(s.objective, 0);
}

TEST(IlpSolverTest, MemoryBudgetBindsExactly) {
  // (0,0) needs 8+8 = 16 > 12 bytes; (0,1) costs 1+3 and needs 8+4 = 12.
  IlpProblem p;
  p.node_costs = {{1, 4}, {1, 3}};
  p.node_memory = {{8, 2}, {8, 4}};
  p.liveness = {{0, 1}};
  p.memory_budget = 12;
  IlpSolution s = solve_ok(p);
  EXPECT_DOUBLE_EQ(s.objective, 1 + 3);
  EXPECT_EQ(s.choice, (std::vector<StrategyIdx>{0, 1}));
  EXPECT_DOUBLE_EQ(s.memory_peak, 8 + 4);
  EXPECT_GT(s.num_constraints, 0);
}

TEST(IlpSolverTest, MemoryBudgetBelowLeastMemoryIsInfeasible) {
  IlpProblem p;
  p.node_costs = {{1, 2}, {1, 2}};
  p.node_memory = {{2 * kGiB, 3 * kGiB}, {1 * kGiB, 0.5 * kGiB}};
  p.liveness = {{0}, {0, 1}};
  p.memory_budget = 1 * kGiB;
  auto s = solve_ilp(p);
  ASSERT_EQ(s.status().code(), core::StatusCode::kInfeasible);
  EXPECT_EQ(s.status().message(),
            "memory budget 1.00 GiB (1073741824 bytes) is below the least "
            "memory any plan needs, 2.50 GiB (2684354560 bytes) at time point "
            "1; raise the budget or use more devices");
}

TEST(IlpSolverTest, CbcProvesInfeasibility) {
  // Least memory is 1+1 = 2 <= 5, but the edge forces different
  // strategies, and every such pair needs 1+5 = 6 > 5 bytes.
  IlpProblem p;
  p.node_costs = {{0, 0}, {0, 0}};
  p.edges = {{0, 1, {{kInf, 0}, {0, kInf}}}};
  p.node_memory = {{1, 5}, {1, 5}};
  p.liveness = {{0, 1}};
  p.memory_budget = 5;
  auto s = solve_ilp(p);
  ASSERT_EQ(s.status().code(), core::StatusCode::kInfeasible);
  EXPECT_NE(s.status().message().find("no plan exists"), std::string::npos)
      << s.status().message();
}

TEST(IlpSolverTest, CbcProvesOddCycleInfeasible) {
  // Three nodes that must pairwise differ with two strategies each: presolve
  // fixes nothing, CBC proves that no plan exists.
  IlpProblem p;
  p.node_costs = {{1, 2}, {1, 2}, {1, 2}};
  std::vector<std::vector<double>> differ = {{kInf, 0}, {0, kInf}};
  p.edges = {{0, 1, differ}, {1, 2, differ}, {0, 2, differ}};
  auto s = solve_ilp(p);
  ASSERT_EQ(s.status().code(), core::StatusCode::kInfeasible);
  EXPECT_NE(s.status().message().find("no plan exists"), std::string::npos)
      << s.status().message();
}

TEST(IlpSolverTest, AllForbiddenNodeIsInfeasible) {
  IlpProblem p;
  p.node_costs = {{1, 2}, {kInf, kInf}};
  auto s = solve_ilp(p);
  ASSERT_EQ(s.status().code(), core::StatusCode::kInfeasible);
  EXPECT_EQ(s.status().message(),
            "node 1 has no allowed strategy: all 2 strategy costs are +inf");
}

TEST(IlpSolverTest, ForbiddenPairBetweenFixedNodesIsInfeasible) {
  IlpProblem p;
  p.node_costs = {{1}, {kInf, 2}};
  p.edges = {{0, 1, {{0, kInf}}}};
  auto s = solve_ilp(p);
  ASSERT_EQ(s.status().code(), core::StatusCode::kInfeasible);
  EXPECT_NE(s.status().message().find("edge 0 (0 -> 1)"), std::string::npos)
      << s.status().message();
}

TEST(IlpSolverTest, RejectsInvalidProblemAndOptions) {
  IlpProblem p;
  p.node_costs = {{1, std::nan("")}};
  EXPECT_EQ(solve_ilp(p).status().code(), core::StatusCode::kInvalidArgument);
  p.node_costs = {{1, 2}};
  IlpOptions options;
  options.time_limit_s = 0;
  EXPECT_EQ(solve_ilp(p, options).status().message(),
            "IlpOptions.time_limit_s is 0 s; it must be > 0");
  options = {};
  options.num_threads = 0;
  EXPECT_EQ(solve_ilp(p, options).status().code(), core::StatusCode::kInvalidArgument);
  options = {};
  options.memory_gap = 1;
  EXPECT_EQ(solve_ilp(p, options).status().message(),
            "IlpOptions.memory_gap is 1; it must be a fraction in [0, 1)");
}

TEST(IlpSolverTest, ParallelAndReversedEdgesAreSummed) {
  // Edges 0->1 and 1->0 (read transposed) add up per pair of strategies.
  IlpProblem p;
  p.node_costs = {{1, 0}, {1, 0.5}};
  p.edges = {{0, 1, {{1, 9}, {2, 9}}}, {1, 0, {{1, 2}, {9, 9}}}};
  IlpSolution s = solve_ok(p);
  // (0,0): 1+1 + 1+1 = 4; (1,0): 0+1 + 2+2 = 5; node 1 at 1: >= 9+9.
  EXPECT_DOUBLE_EQ(s.objective, 1 + 1 + 1 + 1);
  EXPECT_EQ(s.choice, (std::vector<StrategyIdx>{0, 0}));
}

TEST(IlpSolverTest, QuietByDefault) {
  IlpProblem p;
  p.node_costs = {{1, 2}, {2, 1}};
  p.edges = {{0, 1, {{0, 5}, {5, 0}}}};
  testing::internal::CaptureStdout();
  IlpSolution s = solve_ok(p);
  std::string out = testing::internal::GetCapturedStdout();
  EXPECT_EQ(out, "");
  EXPECT_DOUBLE_EQ(s.objective, 1 + 2 + 0);
}

// ---- random problems ---------------------------------------------------------

struct BruteForce {
  bool feasible = false;
  double best = kInf;
};

BruteForce brute_force(const IlpProblem& p) {
  BruteForce out;
  size_t n = p.node_costs.size();
  std::vector<StrategyIdx> choice(n, 0);
  while (true) {
    double cost = 0.0;
    for (size_t i = 0; i < n; ++i) cost += p.node_costs[i][choice[i]];
    for (const auto& e : p.edges) cost += e.costs[choice[e.src]][choice[e.dst]];
    bool fits = true;
    for (const auto& live : p.liveness) {
      double bytes = 0.0;
      for (NodeIdx i : live) bytes += p.memory(i, choice[i]);
      fits = fits && bytes <= p.memory_budget;
    }
    if (std::isfinite(cost) && fits) {
      out.feasible = true;
      out.best = std::min(out.best, cost);
    }
    size_t i = 0;
    while (i < n && ++choice[i] == p.num_strategies(static_cast<NodeIdx>(i))) {
      choice[i++] = 0;
    }
    if (i == n) break;
  }
  return out;
}

// Least and largest peak memory over all choices (ignores costs).
std::pair<double, double> peak_range(const IlpProblem& p) {
  double least = 0.0, most = 0.0;
  for (const auto& live : p.liveness) {
    double lo = 0.0, hi = 0.0;
    for (NodeIdx i : live) {
      const auto& m = p.node_memory[i];
      lo += *std::min_element(m.begin(), m.end());
      hi += *std::max_element(m.begin(), m.end());
    }
    least = std::max(least, lo);
    most = std::max(most, hi);
  }
  return {least, most};
}

void add_memory(std::mt19937& rng, IlpProblem& p) {
  std::uniform_int_distribution<int> mib(0, 100);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  size_t n = p.node_costs.size();
  for (size_t i = 0; i < n; ++i) {
    std::vector<double> m;
    for (size_t k = 0; k < p.node_costs[i].size(); ++k) m.push_back(mib(rng) * 1048576.0);
    p.node_memory.push_back(m);
  }
  // Node i is live from its step to a random later step.
  std::vector<size_t> last(n);
  for (size_t i = 0; i < n; ++i) {
    last[i] = i + std::uniform_int_distribution<size_t>(0, n - 1 - i)(rng);
  }
  for (size_t t = 0; t < n; ++t) {
    std::vector<NodeIdx> live;
    for (size_t i = 0; i <= t; ++i) {
      if (last[i] >= t) live.push_back(static_cast<NodeIdx>(i));
    }
    p.liveness.push_back(live);
  }
  auto [least, most] = peak_range(p);
  double u = unit(rng);
  if (u < 0.1) {
    p.memory_budget = std::max(0.0, least - 1048576.0);  // below least
  } else if (u < 0.2) {
    p.memory_budget = kInf;
  } else {
    p.memory_budget = std::round(least + unit(rng) * (most - least));
  }
}

IlpProblem random_problem(std::mt19937& rng) {
  std::uniform_int_distribution<int> num_nodes(1, 8), num_strategies(1, 4);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  double scale = std::pow(10.0, std::uniform_real_distribution<double>(-7, 2)(rng));
  auto cost = [&](double max_value) {
    return unit(rng) < 0.1 ? kInf : unit(rng) * max_value * scale;
  };
  IlpProblem p;
  int n = num_nodes(rng);
  for (int i = 0; i < n; ++i) {
    std::vector<double> costs(static_cast<size_t>(num_strategies(rng)));
    for (double& c : costs) c = cost(10.0);
    p.node_costs.push_back(costs);
  }
  for (int i = 0; i < n; ++i) {
    for (int j = i + 1; j < n; ++j) {
      int copies = unit(rng) < 0.35 ? (unit(rng) < 0.1 ? 2 : 1) : 0;
      for (int c = 0; c < copies; ++c) {
        bool forward = unit(rng) < 0.8;
        IlpProblem::Edge e{forward ? i : j, forward ? j : i, {}};
        e.costs.assign(p.node_costs[e.src].size(),
                       std::vector<double>(p.node_costs[e.dst].size()));
        for (auto& row : e.costs) {
          for (double& r : row) r = cost(5.0);
        }
        p.edges.push_back(e);
      }
    }
  }
  if (unit(rng) < 0.6) add_memory(rng, p);
  return p;
}

TEST(IlpSolverTest, MatchesBruteForceOnRandomGraphs) {
  std::mt19937 rng(20240611);
  int feasible = 0, with_memory = 0;
  for (int trial = 0; trial < 300; ++trial) {
    IlpProblem p = random_problem(rng);
    SCOPED_TRACE(testing::Message() << "trial " << trial << ": " << p.to_string());
    BruteForce expected = brute_force(p);
    auto solution = solve_ilp(p);
    if (!expected.feasible) {
      EXPECT_EQ(solution.status().code(), core::StatusCode::kInfeasible)
          << solution.status().to_string();
      continue;
    }
    ASSERT_TRUE(solution.ok()) << solution.status().to_string();
    ++feasible;
    with_memory += p.has_memory() && std::isfinite(p.memory_budget);
    EXPECT_NEAR(solution->objective, expected.best, 1e-9 * std::abs(expected.best));
    auto eval = evaluate(p, solution->choice);
    ASSERT_TRUE(eval.ok());
    EXPECT_TRUE(eval->feasible()) << eval->to_string();
    EXPECT_EQ(eval->objective, solution->objective);
    EXPECT_EQ(eval->memory_peak, solution->memory_peak);
  }
  // The generator must exercise both outcomes and binding budgets.
  EXPECT_GT(feasible, 150);
  EXPECT_LT(feasible, 300);
  EXPECT_GT(with_memory, 60);
}

TEST(IlpSolverTest, MemoryGapBoundsTheObjectiveOnRandomGraphs) {
  // With a gap, a memory-bound plan is within it of brute force's optimum
  // and the reported lower bound is below that optimum.
  std::mt19937 rng(20261208);
  int within_gap = 0, feasible = 0;
  IlpOptions options;
  options.memory_gap = 0.25;
  for (int trial = 0; trial < 300; ++trial) {
    IlpProblem p = random_problem(rng);
    if (!p.has_memory()) continue;
    SCOPED_TRACE(testing::Message() << "trial " << trial << ": " << p.to_string());
    BruteForce expected = brute_force(p);
    auto solution = solve_ilp(p, options);
    if (!expected.feasible) {
      EXPECT_EQ(solution.status().code(), core::StatusCode::kInfeasible);
      continue;
    }
    ASSERT_TRUE(solution.ok()) << solution.status().to_string();
    ++feasible;
    const double tol = 1e-9 * std::abs(expected.best);
    EXPECT_GE(solution->objective, expected.best - tol);
    EXPECT_LE(solution->objective, expected.best * (1 + options.memory_gap) + tol);
    EXPECT_LE(solution->lower_bound, expected.best + tol);
    EXPECT_LE(solution->lower_bound, solution->objective);
    if (solution->status == IlpSolveStatus::kOptimal) {
      EXPECT_NEAR(solution->objective, expected.best, tol);
      EXPECT_NEAR(solution->lower_bound, solution->objective, tol + 1e-8 * solution->objective);
    } else {
      ASSERT_EQ(solution->status, IlpSolveStatus::kWithinGap);
      ++within_gap;
    }
    auto eval = evaluate(p, solution->choice);
    ASSERT_TRUE(eval.ok());
    EXPECT_TRUE(eval->feasible()) << eval->to_string();
  }
  EXPECT_GT(feasible, 80);
  EXPECT_GT(within_gap, 0);
}

TEST(IlpSolverTest, IdenticalInputsGiveIdenticalChoices) {
  // Integer costs on a 40-node grid-like graph: many tied optima.
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> small(0, 3);
  IlpProblem p;
  for (int i = 0; i < 40; ++i) {
    p.node_costs.push_back({1.0 * small(rng), 1.0 * small(rng), 1.0 * small(rng)});
  }
  for (int i = 0; i + 1 < 40; ++i) {
    for (int j : {i + 1, i + 5}) {
      if (j >= 40) continue;
      IlpProblem::Edge e{i, j, std::vector<std::vector<double>>(3, std::vector<double>(3))};
      for (auto& row : e.costs) {
        for (double& r : row) r = small(rng);
      }
      p.edges.push_back(e);
    }
  }
  IlpSolution first = solve_ok(p);
  IlpSolution second = solve_ok(p);
  EXPECT_EQ(first.choice, second.choice);
  EXPECT_EQ(first.objective, second.objective);
  auto reparsed = IlpProblem::from_string(p.to_string());
  ASSERT_TRUE(reparsed.ok());
  EXPECT_EQ(solve_ok(*reparsed).choice, first.choice);
}

// ---- costs and memory over many orders of magnitude --------------------------

TEST(IlpSolverTest, WideCostRangeStillFindsTheOptimum) {
  // Issue 11 #2: scaled by the largest cost (1e7), CBC's absolute
  // tolerances hid the difference between objective 1 and the optimum 0.
  IlpProblem p;
  p.node_costs = {{0.0, 1e7}, {1.0, 0.0}};
  p.edges = {{0, 1, {{0, 0}, {0, 0}}}};
  IlpSolution s = solve_ok(p);
  EXPECT_EQ(s.objective, 0.0);  // 0 + 0
  EXPECT_EQ(s.choice, (std::vector<StrategyIdx>{0, 1}));
  EXPECT_EQ(s.status, IlpSolveStatus::kOptimal);
  // The same with an optimum far below the largest cost but above 0.
  p.node_costs = {{1e-6, 1e9}, {2e-6, 1e-6}};
  p.edges = {{0, 1, {{3e-6, 0}, {0, 5e9}}}};
  s = solve_ok(p);
  EXPECT_DOUBLE_EQ(s.objective, 1e-6 + 1e-6 + 0);
  EXPECT_EQ(s.choice, (std::vector<StrategyIdx>{0, 1}));
}

TEST(IlpSolverTest, MemoryEntryFarAboveBudgetForbidsItsStrategy) {
  // Issue 11 #5: a memory coefficient 1e15 times the others aborted the
  // process in CglZeroHalf. Alone it exceeds the budget, so it is forbidden.
  IlpProblem p;
  p.node_costs = {{1.0, 2.0}, {1.0, 2.0}};
  p.node_memory = {{1e16, 2.0}, {2.0, 0.5}};
  p.liveness = {{0, 1}};
  p.memory_budget = 4.6;
  IlpSolution s = solve_ok(p);
  EXPECT_DOUBLE_EQ(s.objective, 2 + 1);
  EXPECT_EQ(s.choice, (std::vector<StrategyIdx>{1, 0}));
  EXPECT_DOUBLE_EQ(s.memory_peak, 2 + 2);
}

TEST(IlpSolverTest, PlanWithinCbcToleranceOverBudgetIsNotReturned) {
  // (0, 0) needs 1 + 1e-8 bytes against a 1-byte budget: inside CBC's row
  // tolerance (1e-7), outside the budget. The exact re-check cuts it off.
  IlpProblem p;
  p.node_costs = {{0, 10}, {0, 10}};
  p.edges = {{0, 1, {{0, 1}, {1, 0}}}};
  p.node_memory = {{0.5 + 1e-8, 0}, {0.5, 0}};
  p.liveness = {{0, 1}};
  p.memory_budget = 1.0;
  IlpSolution s = solve_ok(p);
  EXPECT_DOUBLE_EQ(s.objective, 0 + 10 + 1);
  auto eval = evaluate(p, s.choice);
  ASSERT_TRUE(eval.ok());
  EXPECT_TRUE(eval->memory_ok) << eval->to_string();
}

TEST(IlpSolverTest, BytesEvaluateRoundsAwayDoNotForbidAStrategy) {
  // 1 + 1e-20 bytes is 1 byte in evaluate()'s sum: the strategy fits.
  IlpProblem p;
  p.node_costs = {{1}, {5, 0}};
  p.node_memory = {{1.0}, {0, 1e-20}};
  p.liveness = {{0, 1}};
  p.memory_budget = 1.0;
  IlpSolution s = solve_ok(p);
  EXPECT_EQ(s.choice, (std::vector<StrategyIdx>{0, 1}));
  EXPECT_EQ(s.objective, 1 + 0);
}

TEST(IlpSolverTest, FoundByRandomCrossCheck) {
  // Each of these once came back worse than brute force: CLP's default dual
  // tolerance (1e-7 of the scale) hid a 4.3 s saving on a 1.1e8 s objective.
  const char* kProblems[] = {
      R"({"node_costs": [[108230215.7495496, 2674496427.94213], [100058180547.32503, 2.716371647509875e-07, 21559798.87143373], [4.343611103060736, 583973608300.6718, 0.0], [1187825.0594800224], [0.0, 195266622817.82953], [0.0]], "edges": [{"src": 0, "dst": 1, "costs": [[6.365855846690277e-06, 1.2379723717523076e-06, 8.213259276721733e-05], [Infinity, 3584.854884354782, 0.0]]}, {"src": 1, "dst": 2, "costs": [[4.2838981890043915, Infinity, 4359418340.6952715], [0.0, 0.0, 0.0], [Infinity, Infinity, 58011.87296671153]]}, {"src": 0, "dst": 2, "costs": [[0.0, Infinity, 9.459279808119193e-08], [286599277.8818033, 141783023060.45703, 248.53253000563856]]}, {"src": 3, "dst": 4, "costs": [[170689.19979724957, Infinity]]}, {"src": 2, "dst": 4, "costs": [[2.898804854283736e-05, 22986.460878679998], [0.0, 5.223063056752721e-05], [0.0, 0.0]]}], "node_memory": [[0.0, 3.1753507223088036e-98], [2.5122790492440397e-78, 0.0, 5.691049789465125e-61], [1.6934709280581545e-204, 1.5076585398057964e-58, 7.946098120737057e-177], [5.7223527573358623e-98], [0.0, 3.6958493340925216e-267], [0.0]], "liveness": [[1, 2, 3, 5], [4, 5], [0, 1, 2, 3, 4, 5]], "memory_budget": 8.890752455701642e-59})",
      R"({"node_costs": [[1.0], [1.0, 1.0, 1.0], [1.0, 1.0]], "edges": [{"src": 0, "dst": 2, "costs": [[1.0, 1.0]]}, {"src": 1, "dst": 2, "costs": [[1.0, 1.0], [0.0, 0.0], [0.0, Infinity]]}], "node_memory": [[2.8749065196950883e-16], [0.0, 2.8706486074788482e-294, 1.9736206111318586e-118], [0.0, 9.213757571457043e-111]], "liveness": [[0, 1, 2]], "memory_budget": 2.8749065196950883e-16})",
  };
  for (const char* text : kProblems) {
    auto p = IlpProblem::from_string(text);
    ASSERT_TRUE(p.ok()) << p.status().to_string();
    BruteForce expected = brute_force(*p);
    ASSERT_TRUE(expected.feasible);
    IlpSolution s = solve_ok(*p);
    EXPECT_NEAR(s.objective, expected.best, 1e-12 * expected.best) << text;
  }
}

// Costs log-uniform over 1e-9..1e9 s (a few 0), memory over 1e-3..1e18
// bytes against budgets near the least memory.
IlpProblem random_wide_problem(std::mt19937& rng) {
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  auto cost = [&] {
    double u = unit(rng);
    if (u < 0.08) return kInf;
    if (u < 0.15) return 0.0;
    return std::pow(10.0, -9 + 18 * unit(rng));
  };
  IlpProblem p;
  int n = std::uniform_int_distribution<int>(2, 6)(rng);
  for (int i = 0; i < n; ++i) {
    std::vector<double> costs(static_cast<size_t>(std::uniform_int_distribution<int>(1, 3)(rng)));
    for (double& c : costs) c = cost();
    p.node_costs.push_back(costs);
  }
  for (int j = 1; j < n; ++j) {
    int i = std::uniform_int_distribution<int>(0, j - 1)(rng);
    IlpProblem::Edge e{i, j, {}};
    e.costs.assign(p.node_costs[i].size(), std::vector<double>(p.node_costs[j].size()));
    for (auto& row : e.costs) for (double& r : row) r = cost();
    p.edges.push_back(e);
  }
  if (unit(rng) < 0.5) return p;
  for (int i = 0; i < n; ++i) {
    std::vector<double> m;
    for (size_t k = 0; k < p.node_costs[i].size(); ++k) m.push_back(std::pow(10.0, -3 + 21 * unit(rng)));
    p.node_memory.push_back(m);
  }
  p.liveness = {{}};
  for (int i = 0; i < n; ++i) (unit(rng) < 0.7 ? p.liveness[0] : p.liveness.emplace_back()).push_back(i);
  auto [least, most] = peak_range(p);
  p.memory_budget = least * std::pow(10.0, 6 * unit(rng));
  return p;
}

TEST(IlpSolverTest, MatchesBruteForceOnWideRanges) {
  std::mt19937 rng(11);
  int feasible = 0;
  for (int trial = 0; trial < 400; ++trial) {
    IlpProblem p = random_wide_problem(rng);
    SCOPED_TRACE(testing::Message() << "trial " << trial << ": " << p.to_string());
    BruteForce expected = brute_force(p);
    auto solution = solve_ilp(p);
    if (!expected.feasible) {
      EXPECT_EQ(solution.status().code(), core::StatusCode::kInfeasible)
          << solution.status().to_string();
      continue;
    }
    ASSERT_TRUE(solution.ok()) << solution.status().to_string();
    ++feasible;
    EXPECT_EQ(solution->status, IlpSolveStatus::kOptimal);
    EXPECT_NEAR(solution->objective, expected.best, 1e-8 * expected.best);
    auto eval = evaluate(p, solution->choice);
    ASSERT_TRUE(eval.ok());
    EXPECT_TRUE(eval->feasible()) << eval->to_string();
  }
  EXPECT_GT(feasible, 200);
}

// ---- threads -------------------------------------------------------------------

TEST(IlpSolverTest, ConcurrentSolvesAgreeAndPrintNothing) {
  // Issue 11 #3: CBC's entry point keeps process-wide state; solves from
  // two threads at once failed ("CBC stopped without a verdict") and
  // printed CBC's interactive help.
  std::mt19937 rng(3);
  std::vector<IlpProblem> problems;
  std::vector<IlpSolution> expected;
  while (problems.size() < 6) {
    IlpProblem p = random_problem(rng);
    auto s = solve_ilp(p);
    if (!s.ok() || s->num_variables == 0) continue;
    problems.push_back(p);
    expected.push_back(*s);
  }
  testing::internal::CaptureStdout();
  testing::internal::CaptureStderr();
  std::vector<int> failures(2, 0);
  auto worker = [&](int t) {
    for (int round = 0; round < 8; ++round) {
      for (size_t i = 0; i < problems.size(); ++i) {
        auto s = solve_ilp(problems[i]);
        if (!s.ok() || s->choice != expected[i].choice) ++failures[static_cast<size_t>(t)];
      }
    }
  };
  std::thread other(worker, 1);
  worker(0);
  other.join();
  std::string out = testing::internal::GetCapturedStdout();
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(failures, (std::vector<int>{0, 0}));
  EXPECT_EQ(out, "");
  EXPECT_EQ(err, "");
}

}  // namespace
}  // namespace alpa::intra_op
