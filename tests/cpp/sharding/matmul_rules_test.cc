// Tests the grouped matmul of mixture-of-experts layers (transformers'
// grouped_mm_fallback): expert weights split by expert (expert
// parallelism, partial sums all-reduced), by rows or columns within each
// expert, never by the sorted token rows (issue 12, defect 7).
#include <algorithm>

#include <gtest/gtest.h>

#include "ir/flops.h"
#include "ir/text_format.h"
#include "sharding/strategy.h"

namespace alpa::sharding {
namespace {

// 16 routed rows of width 32, 4 experts of 32 -> 96
constexpr const char* kExperts = R"(graph "moe" {
  %x: f32[16,32] = input "x" [requires_grad=true]
  %w: f32[4,32,96] = parameter "experts.w" [requires_grad=true]
  %offs: i32[4] = input "offs"
  %y: f32[16,96] = transformers.grouped_mm_fallback.default(%x, %w, %offs) {input=$0, weight=$1, offs=$2}
  output %y
}
)";

mesh::DeviceMesh mesh_of(int64_t n0, int64_t n1) {
  auto cluster = mesh::cluster_preset("a100-40gb", 1, n0 * n1).value();
  return mesh::DeviceMesh::create(cluster, {n0, n1}).value();
}

TEST(MatmulRulesTest, GroupedMatmulSplitsExperts) {
  ir::Graph g = ir::parse_graph_text(kExperts).value();
  const ir::Node& n = g.node(*g.find("y"));
  auto sig = op_signature(g, n);
  ASSERT_TRUE(sig);
  auto list = op_strategies(g, n, *sig, mesh_of(1, 4), {true, true, false});
  std::vector<std::string> names;
  for (const Strategy& s : list) names.push_back(s.name);
  auto find = [&](const std::string& name) -> const Strategy* {
    auto it = std::find(names.begin(), names.end(), name);
    return it == names.end() ? nullptr : &list[static_cast<size_t>(it - names.begin())];
  };
  const Strategy* experts = find("RR = RR x S0RR x R");
  ASSERT_NE(experts, nullptr);
  EXPECT_EQ(experts->parallel_degree, 4);
  ASSERT_EQ(experts->collectives.size(), 2u);  // output partial; x's gradient partial
  EXPECT_EQ(experts->collectives[0].phase, Phase::kForward);
  EXPECT_DOUBLE_EQ(experts->collectives[0].bytes, 16 * 96 * 4);
  EXPECT_EQ(experts->collectives[1].phase, Phase::kBackward);
  EXPECT_EQ(experts->collectives[1].input, 0);
  EXPECT_NE(find("RS0 = RR x RRS0 x R"), nullptr);   // columns within each expert
  EXPECT_NE(find("RR = RS0 x RS0R x R"), nullptr);   // rows: partial sums
  EXPECT_EQ(find("S0R = S0R x RR x R"), nullptr);    // routed rows never split
  EXPECT_EQ(list.size(), 4u);
}

TEST(MatmulRulesTest, GroupedMatmulCountsMatmulFlops) {
  ir::Graph g = ir::parse_graph_text(kExperts).value();
  // every routed row meets one expert: 2·16·32·96
  EXPECT_DOUBLE_EQ(ir::node_flops(g, g.node(*g.find("y"))).value(), 2.0 * 16 * 32 * 96);
}

}  // namespace
}  // namespace alpa::sharding
