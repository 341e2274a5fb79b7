// Tests the rule of a whole experts layer (alpa.moe_experts): data
// parallel, experts split with partial sums, and expert parallelism with
// token exchange by all-to-all (issue 12, Mixtral on (1,4)); and its FLOPs.
#include <algorithm>
#include <set>

#include <gtest/gtest.h>

#include "ir/flops.h"
#include "ir/text_format.h"
#include "sharding/strategy.h"

namespace alpa::sharding {
namespace {

// 16 tokens of width 32, top-2 of 4 experts with inner width 48
constexpr const char* kMoe = R"(graph "moe" {
  %h: f32[16,32] = input "h" [requires_grad=true]
  %idx: i64[16,2] = input "idx"
  %wts: f32[16,2] = input "wts" [requires_grad=true]
  %gate_up: f32[4,96,32] = parameter "experts.gate_up_proj" [requires_grad=true]
  %down: f32[4,32,48] = parameter "experts.down_proj" [requires_grad=true]
  %y: f32[16,32] = alpa.moe_experts.default(%h, %idx, %wts, %gate_up, %down) {hidden=$0, top_k_index=$1, top_k_weights=$2, params=$[3,4], module="experts"}
  output %y
}
)";

mesh::DeviceMesh mesh_of(int64_t n0, int64_t n1) {
  auto cluster = mesh::cluster_preset("a100-40gb", 1, n0 * n1).value();
  return mesh::DeviceMesh::create(cluster, {n0, n1}).value();
}

struct Strategies {
  std::vector<Strategy> list;
  const Strategy* find(const std::string& name) const {
    for (const Strategy& s : list) {
      if (s.name == name) return &s;
    }
    return nullptr;
  }
};

Strategies strategies_on(const ir::Graph& g, int64_t n0, int64_t n1) {
  const ir::Node& n = g.node(*g.find("y"));
  auto sig = op_signature(g, n);
  EXPECT_TRUE(sig);
  return {op_strategies(g, n, *sig, mesh_of(n0, n1), {true, false, true, true, true})};
}

std::vector<std::string> whats(const Strategy& s) {
  std::vector<std::string> out;
  for (const Collective& c : s.collectives) out.push_back(c.what);
  return out;
}

TEST(ExpertRulesTest, TokenExchangeOnOneAxis) {
  ir::Graph g = ir::parse_graph_text(kMoe).value();
  Strategies s = strategies_on(g, 1, 4);
  // replicated, data parallel, partial sums, expert parallel
  EXPECT_EQ(s.list.size(), 4u);
  // (DeviceMesh normalises (1, 4) to a 4-device axis 0)
  const Strategy* ep = s.find("S0R = S0R x S0R x S0R x S0RR x S0RR");
  ASSERT_NE(ep, nullptr);
  EXPECT_EQ(ep->parallel_degree, 4);
  ASSERT_EQ(whats(*ep), (std::vector<std::string>{"token dispatch", "token combine",
                                                  "token combine (backward)",
                                                  "token dispatch (backward)"}));
  for (const Collective& c : ep->collectives) {
    EXPECT_EQ(c.kind, CollectiveKind::kAllToAll);
    EXPECT_EQ(c.axes, (MeshAxes{0}));
    // this device's 4 tokens, 2 routed rows each, 32 floats
    EXPECT_DOUBLE_EQ(c.bytes, 4 * 2 * 32 * 4);
  }
  const Strategy* partial = s.find("RR = RR x RR x RR x S0RR x S0RR");
  ASSERT_NE(partial, nullptr);
  EXPECT_EQ(whats(*partial), (std::vector<std::string>{"partial sums of output", "partial grad of input 0",
                                                       "partial grad of input 2"}));
  const Strategy* dp = s.find("S0R = S0R x S0R x S0R x RRR x RRR");
  ASSERT_NE(dp, nullptr);
  EXPECT_EQ(whats(*dp), (std::vector<std::string>{"partial grad of input 3", "partial grad of input 4"}));
}

TEST(ExpertRulesTest, TwoAxesNeverMixExchangeWithPartialExperts) {
  ir::Graph g = ir::parse_graph_text(kMoe).value();
  Strategies s = strategies_on(g, 2, 2);
  EXPECT_EQ(s.list.size(), 14u);
  std::set<std::string> names;
  for (const Strategy& st : s.list) names.insert(st.name);
  EXPECT_EQ(names.size(), s.list.size());
  // experts over both axes, tokens over both: exchange over the whole mesh
  const Strategy* both = s.find("S01R = S01R x S01R x S01R x S01RR x S01RR");
  ASSERT_NE(both, nullptr);
  EXPECT_EQ(both->parallel_degree, 4);
  EXPECT_EQ(both->collectives.at(0).axes, (MeshAxes{0, 1}));
  // tokens over both axes, experts over axis 0: exchange over axis 0, and
  // the experts' gradients are partial over axis 1 (data parallel there)
  const Strategy* mixed = s.find("S01R = S01R x S01R x S01R x S0RR x S0RR");
  ASSERT_NE(mixed, nullptr);
  ASSERT_EQ(whats(*mixed), (std::vector<std::string>{"partial grad of input 3", "partial grad of input 4",
                                                     "token dispatch", "token combine",
                                                     "token combine (backward)",
                                                     "token dispatch (backward)"}));
  EXPECT_EQ(mixed->collectives[0].axes, (MeshAxes{1}));
  EXPECT_EQ(mixed->collectives[2].axes, (MeshAxes{0}));
  // exchange on axis 0 and partial experts on axis 1 is not a strategy
  EXPECT_EQ(s.find("S0R = S0R x S0R x S0R x S01RR x S01RR"), nullptr);
  // tokens on axis 0, experts on axis 1: partial sums over axis 1
  const Strategy* split = s.find("S0R = S0R x S0R x S0R x S1RR x S1RR");
  ASSERT_NE(split, nullptr);
  EXPECT_EQ(split->collectives.at(0).what, "partial sums of output");
  EXPECT_EQ(split->collectives.at(0).axes, (MeshAxes{1}));
}

TEST(ExpertRulesTest, FlopsCountEveryRoutedRowOnce) {
  ir::Graph g = ir::parse_graph_text(kMoe).value();
  // 32 routed rows, each through one expert's 96x32 and 32x48
  EXPECT_DOUBLE_EQ(ir::node_flops(g, g.node(*g.find("y"))).value(), 2.0 * 32 * (96 * 32 + 32 * 48));
}

TEST(ExpertRulesTest, OtherShapesHaveNoRule) {
  std::string text = kMoe;
  // experts of different counts: not an experts layer
  text.replace(text.find("f32[4,32,48]"), 12, "f32[2,32,48]");
  ir::Graph g = ir::parse_graph_text(text).value();
  EXPECT_FALSE(op_signature(g, g.node(*g.find("y"))));
}

}  // namespace
}  // namespace alpa::sharding
