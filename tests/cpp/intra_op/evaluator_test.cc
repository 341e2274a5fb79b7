// Tests evaluate(): cost and memory breakdown of a given choice.
#include "intra_op/evaluator.h"

#include <limits>

#include <gtest/gtest.h>

namespace alpa::intra_op {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// 3 nodes in a chain 0 -> 1 -> 2, memory live at t0 = {0, 1}, t1 = {1, 2}.
IlpProblem chain_problem() {
  IlpProblem p;
  p.node_costs = {{10, 11}, {21, 20, kInf}, {30, 32}};
  p.edges = {{0, 1, {{0, 3, 1}, {3, 0, 1}}}, {1, 2, {{0, 4}, {4, 0}, {1, 1}}}};
  p.node_memory = {{100, 50}, {200, 100, 10}, {300, 150}};
  p.liveness = {{0, 1}, {1, 2}};
  p.memory_budget = 400;
  return p;
}

TEST(IlpEvaluatorTest, SumsNodeAndEdgeCosts) {
  auto eval = evaluate(chain_problem(), {0, 1, 1});
  ASSERT_TRUE(eval.ok()) << eval.status().to_string();
  EXPECT_DOUBLE_EQ(eval->node_cost, 10 + 20 + 32);
  EXPECT_DOUBLE_EQ(eval->edge_cost, 3 + 0);
  EXPECT_DOUBLE_EQ(eval->objective, 10 + 20 + 32 + 3 + 0);
  EXPECT_EQ(eval->node_costs, (std::vector<double>{10, 20, 32}));
  EXPECT_EQ(eval->edge_costs, (std::vector<double>{3, 0}));
}

TEST(IlpEvaluatorTest, MemoryPerTimePoint) {
  auto eval = evaluate(chain_problem(), {0, 1, 1});
  ASSERT_TRUE(eval.ok());
  EXPECT_EQ(eval->memory_per_time, (std::vector<double>{100 + 100, 100 + 150}));
  EXPECT_DOUBLE_EQ(eval->memory_peak, 250);
  EXPECT_EQ(eval->peak_time, 1);
  EXPECT_TRUE(eval->memory_ok);
  EXPECT_TRUE(eval->feasible());
}

TEST(IlpEvaluatorTest, MemoryOverBudgetIsNotAnError) {
  auto eval = evaluate(chain_problem(), {0, 0, 0});
  ASSERT_TRUE(eval.ok());
  EXPECT_DOUBLE_EQ(eval->memory_peak, 200 + 300);
  EXPECT_FALSE(eval->memory_ok);
  EXPECT_FALSE(eval->feasible());
  EXPECT_NE(eval->to_string().find("EXCEEDED"), std::string::npos) << eval->to_string();
}

TEST(IlpEvaluatorTest, ForbiddenStrategyGivesInfiniteObjective) {
  auto eval = evaluate(chain_problem(), {0, 2, 0});
  ASSERT_TRUE(eval.ok());
  EXPECT_EQ(eval->objective, kInf);
  EXPECT_DOUBLE_EQ(eval->edge_cost, 1 + 1);
  EXPECT_FALSE(eval->feasible());
}

TEST(IlpEvaluatorTest, NoMemoryTerms) {
  IlpProblem p = chain_problem();
  p.node_memory.clear();
  auto eval = evaluate(p, {1, 1, 1});
  ASSERT_TRUE(eval.ok());
  EXPECT_DOUBLE_EQ(eval->memory_peak, 0);
  EXPECT_TRUE(eval->memory_ok);
  p.liveness.clear();
  eval = evaluate(p, {1, 1, 1});
  ASSERT_TRUE(eval.ok());
  EXPECT_EQ(eval->peak_time, -1);
  EXPECT_TRUE(eval->memory_per_time.empty());
}

TEST(IlpEvaluatorTest, RejectsBadChoice) {
  auto short_choice = evaluate(chain_problem(), {0, 1});
  EXPECT_EQ(short_choice.status().code(), core::StatusCode::kInvalidArgument);
  EXPECT_EQ(short_choice.status().message(),
            "choice has 2 entries, the problem has 3 nodes");
  auto out_of_range = evaluate(chain_problem(), {0, 3, 0});
  EXPECT_EQ(out_of_range.status().message(),
            "choice[1] = 3, but node 1 has strategies 0..2");
}

TEST(IlpEvaluatorTest, RejectsInvalidProblem) {
  IlpProblem p = chain_problem();
  p.edges[0].dst = 9;
  EXPECT_EQ(evaluate(p, {0, 0, 0}).status().code(),
            core::StatusCode::kInvalidArgument);
}

TEST(IlpEvaluatorTest, ToStringBreakdown) {
  auto eval = evaluate(chain_problem(), {0, 1, 1});
  ASSERT_TRUE(eval.ok());
  std::string text = eval->to_string();
  EXPECT_EQ(text.rfind("objective 65.0 s = nodes 62.0 s + edges 3.0 s\n", 0), 0u) << text;
  EXPECT_NE(text.find("at time point 1 of 2"), std::string::npos) << text;
  EXPECT_NE(text.find(": met"), std::string::npos) << text;
  // The most expensive node is listed first.
  EXPECT_LT(text.find("node 2: 32.0 s"), text.find("node 1: 20.0 s")) << text;
}

}  // namespace
}  // namespace alpa::intra_op
