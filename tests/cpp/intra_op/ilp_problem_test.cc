// Tests IlpProblem: validation messages and the exact JSON round trip.
#include "intra_op/ilp_problem.h"

#include <cmath>
#include <limits>

#include <gtest/gtest.h>

namespace alpa::intra_op {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

IlpProblem small_problem() {
  IlpProblem p;
  p.node_costs = {{1.0, 2.0}, {3.0, kInf, 0.1}};
  p.edges = {{0, 1, {{0.0, 1.0 / 3.0, kInf}, {1e-300, 5e-324, 7.0}}}};
  p.node_memory = {{1024.0, 512.0}, {0.0, 1e9, 3.5}};
  p.liveness = {{0}, {0, 1}, {1}};
  p.memory_budget = 4.0 * 1024 * 1024 * 1024;
  return p;
}

void expect_same(const IlpProblem& a, const IlpProblem& b) {
  EXPECT_EQ(a.node_costs, b.node_costs);
  ASSERT_EQ(a.edges.size(), b.edges.size());
  for (size_t e = 0; e < a.edges.size(); ++e) {
    EXPECT_EQ(a.edges[e].src, b.edges[e].src);
    EXPECT_EQ(a.edges[e].dst, b.edges[e].dst);
    EXPECT_EQ(a.edges[e].costs, b.edges[e].costs);
  }
  EXPECT_EQ(a.node_memory, b.node_memory);
  EXPECT_EQ(a.liveness, b.liveness);
  EXPECT_EQ(a.memory_budget, b.memory_budget);
}

std::string validate_message(const IlpProblem& p) {
  core::Status status = p.validate();
  EXPECT_EQ(status.code(), core::StatusCode::kInvalidArgument) << status.to_string();
  return status.message();
}

TEST(IlpProblemTest, SmallProblemValidates) {
  EXPECT_TRUE(small_problem().validate().ok());
  EXPECT_TRUE(IlpProblem().validate().ok());
}

TEST(IlpProblemTest, JsonRoundTripIsExact) {
  IlpProblem p = small_problem();
  std::string text = p.to_string();
  auto back = IlpProblem::from_string(text);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  expect_same(p, *back);
  EXPECT_EQ(back->to_string(), text);
}

TEST(IlpProblemTest, JsonRoundTripKeepsInfiniteBudget) {
  IlpProblem p;
  p.node_costs = {{kInf, 0.30000000000000004}};
  auto back = IlpProblem::from_string(p.to_string());
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  expect_same(p, *back);
  EXPECT_TRUE(std::isinf(back->memory_budget));
}

TEST(IlpProblemTest, InfinitiesAreValidJsonAndBareOnesStillRead) {
  IlpProblem p = small_problem();
  const std::string text = p.to_string();
  EXPECT_TRUE(core::Json::accept(text)) << text;
  EXPECT_NE(text.find(R"("node_costs":[[1.0,2.0],[3.0,"Infinity",0.1]])"), std::string::npos)
      << text;
  // What alpa_torch.ilp and the old writer sent: the bare token.
  auto legacy = IlpProblem::from_string(
      R"({"node_costs": [[1.0, 2.0], [3.0, Infinity, 0.1]], "memory_budget": Infinity})");
  ASSERT_TRUE(legacy.ok()) << legacy.status().to_string();
  EXPECT_EQ(legacy->node_costs, p.node_costs);
  EXPECT_TRUE(std::isinf(legacy->memory_budget));
}

TEST(IlpProblemTest, FromJsonNeedsOnlyNodeCosts) {
  auto p = IlpProblem::from_string(R"({"node_costs": [[1, 2.5], [3]]})");
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_EQ(p->num_nodes(), 2);
  EXPECT_EQ(p->num_strategies(0), 2);
  EXPECT_DOUBLE_EQ(p->node_costs[0][1], 2.5);
  EXPECT_FALSE(p->has_memory());
  EXPECT_TRUE(std::isinf(p->memory_budget));
}

TEST(IlpProblemTest, FromJsonErrorsNameTheField) {
  auto missing = IlpProblem::from_string(R"({"edges": []})");
  EXPECT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("node_costs"), std::string::npos)
      << missing.status().message();

  auto bad_entry = IlpProblem::from_string(R"({"node_costs": [[1, "x"]]})");
  EXPECT_EQ(bad_entry.status().code(), core::StatusCode::kParseError);
  EXPECT_NE(bad_entry.status().message().find("node_costs[0][1]"), std::string::npos)
      << bad_entry.status().message();

  auto bad_edge = IlpProblem::from_string(
      R"({"node_costs": [[1], [2]], "edges": [{"src": 0, "costs": [[1]]}]})");
  EXPECT_FALSE(bad_edge.ok());
  EXPECT_NE(bad_edge.status().message().find("edges[0]"), std::string::npos)
      << bad_edge.status().message();
}

TEST(IlpProblemTest, RejectsNanCost) {
  IlpProblem p = small_problem();
  p.node_costs[1][0] = std::nan("");
  EXPECT_EQ(validate_message(p), "node_costs[1][0] is NaN");
}

TEST(IlpProblemTest, RejectsNegativeInfinityEdgeCost) {
  IlpProblem p = small_problem();
  p.edges[0].costs[1][2] = -kInf;
  EXPECT_NE(validate_message(p).find("edge 0 (0 -> 1) costs[1][2] is -inf"),
            std::string::npos);
}

TEST(IlpProblemTest, RejectsNegativeAndHugeCosts) {
  // Costs are seconds: the solver's scaling and pruning rely on them >= 0,
  // and sums of finite costs must stay finite.
  IlpProblem p = small_problem();
  p.node_costs[0][1] = -0.5;
  EXPECT_EQ(validate_message(p),
            "node_costs[0][1] is -0.5; a cost is seconds >= 0, or +inf (forbidden)");
  p = small_problem();
  p.edges[0].costs[0][0] = 1e300;
  EXPECT_NE(validate_message(p).find("edge 0 (0 -> 1) costs[0][0] is 1e+300 s, above the "
                                     "largest finite cost 1e+30 s; use +inf"),
            std::string::npos) << validate_message(p);
  p = small_problem();
  p.node_memory[1][0] = 1e31;
  EXPECT_NE(validate_message(p).find("node_memory[1][0] is 1e+31 bytes, above the largest"),
            std::string::npos) << validate_message(p);
}

TEST(IlpProblemTest, RejectsNodeWithoutStrategies) {
  IlpProblem p = small_problem();
  p.node_costs.push_back({});
  p.node_memory.push_back({});
  EXPECT_NE(validate_message(p).find("node 2 has no strategies"), std::string::npos);
}

TEST(IlpProblemTest, RejectsEdgeEndpointOutOfRange) {
  IlpProblem p = small_problem();
  p.edges.push_back({1, 5, {}});
  EXPECT_EQ(validate_message(p),
            "edge 1 (1 -> 5) has an endpoint outside [0, 2) nodes");
}

TEST(IlpProblemTest, RejectsSelfLoop) {
  IlpProblem p = small_problem();
  p.edges.push_back({1, 1, {}});
  EXPECT_EQ(validate_message(p), "edge 1 (1 -> 1) is a self loop");
}

TEST(IlpProblemTest, RejectsEdgeMatrixOfWrongShape) {
  IlpProblem p = small_problem();
  p.edges[0].costs.pop_back();
  EXPECT_EQ(validate_message(p),
            "edge 0 (0 -> 1): costs has 1 rows, expected 2 (strategies of node 0)");
  p = small_problem();
  p.edges[0].costs[1].push_back(0.0);
  EXPECT_EQ(validate_message(p),
            "edge 0 (0 -> 1): costs row 1 has 4 entries, expected 3 "
            "(strategies of node 1)");
}

TEST(IlpProblemTest, RejectsBadMemory) {
  IlpProblem p = small_problem();
  p.node_memory[0][1] = -1.0;
  EXPECT_EQ(validate_message(p),
            "node_memory[0][1] is -1 bytes; memory must be finite and >= 0");
  p = small_problem();
  p.node_memory[1][2] = kInf;
  EXPECT_NE(validate_message(p).find("node_memory[1][2] is inf bytes"),
            std::string::npos);
  p = small_problem();
  p.node_memory[1].pop_back();
  EXPECT_EQ(validate_message(p),
            "node_memory[1] has 2 strategies, node_costs[1] has 3");
  p = small_problem();
  p.node_memory.pop_back();
  EXPECT_EQ(validate_message(p), "node_memory has 1 nodes, node_costs has 2");
  p = small_problem();
  p.memory_budget = -5.0;
  EXPECT_NE(validate_message(p).find("memory_budget is -5 bytes"), std::string::npos);
}

TEST(IlpProblemTest, RejectsBadLiveness) {
  IlpProblem p = small_problem();
  p.liveness[2].push_back(7);
  EXPECT_EQ(validate_message(p), "liveness[2] lists node 7, outside [0, 2) nodes");
  p = small_problem();
  p.liveness[1].push_back(0);
  EXPECT_EQ(validate_message(p), "liveness[1] lists node 0 twice");
}

TEST(IlpProblemTest, FormatBytesShowsGibAndBytes) {
  EXPECT_EQ(format_bytes(2.5 * 1024 * 1024 * 1024), "2.50 GiB (2684354560 bytes)");
  EXPECT_EQ(format_bytes(0.0), "0.00 GiB (0 bytes)");
}

TEST(IlpProblemTest, SolutionToString) {
  IlpSolution s;
  s.choice = {0, 2, 1};
  s.objective = 1.5;
  EXPECT_EQ(s.to_string().rfind("optimal objective=1.5 s", 0), 0u) << s.to_string();
  EXPECT_NE(s.to_string().find("choice=[0,2,1]"), std::string::npos) << s.to_string();
}

}  // namespace
}  // namespace alpa::intra_op
