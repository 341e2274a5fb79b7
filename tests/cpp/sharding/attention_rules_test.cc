// Tests that a split of the attention heads flows through the ops of a
// Llama-family attention block as transformers 5 captures it: the rotary
// embedding (rotate_half: slice, neg, cat on the head dim; mul by cos/sin
// broadcast over heads), the grouped-query key/value repeat (repeat_kv:
// unsqueeze, expand, reshape) and scaled_dot_product_attention, with and
// without enable_gqa (issue 12, defect 8).
#include <algorithm>

#include <gtest/gtest.h>

#include "ir/text_format.h"
#include "sharding/strategy.h"

namespace alpa::sharding {
namespace {

// q [b=2, heads=4, s=8, d=16]; k, v with 2 key/value heads.
constexpr const char* kAttention = R"(graph "attn" {
  %q: f32[2,4,8,16] = input "q" [requires_grad=true]
  %k: f32[2,2,8,16] = input "k" [requires_grad=true]
  %v: f32[2,2,8,16] = input "v" [requires_grad=true]
  %cos: f32[1,1,8,16] = input "cos"
  %lo: f32[2,4,8,8] = aten.slice.Tensor(%q) {self=$0, dim=3, start=0, end=8, step=1}
  %hi: f32[2,4,8,8] = aten.slice.Tensor(%q) {self=$0, dim=3, start=8, end=9223372036854775807, step=1}
  %neg: f32[2,4,8,8] = aten.neg.default(%hi) {self=$0}
  %rot: f32[2,4,8,16] = aten.cat.default(%neg, %lo) {tensors=$[0,1], dim=-1}
  %mul: f32[2,4,8,16] = aten.mul.Tensor(%rot, %cos) {self=$0, other=$1}
  %unsq: f32[2,2,1,8,16] = aten.unsqueeze.default(%k) {self=$0, dim=2}
  %exp: f32[2,2,2,8,16] = aten.expand.default(%unsq) {self=$0, size=[2,2,2,8,16], implicit=false}
  %rep: f32[2,4,8,16] = aten.reshape.default(%exp) {self=$0, shape=[2,4,8,16]}
  %attn: f32[2,4,8,16] = aten.scaled_dot_product_attention.default(%mul, %rep, %rep) {query=$0, key=$1, value=$2, is_causal=true, enable_gqa=false}
  %gqa: f32[2,4,8,16] = aten.scaled_dot_product_attention.default(%mul, %k, %v) {query=$0, key=$1, value=$2, is_causal=true, enable_gqa=true}
  output %attn
  output %gqa
}
)";

mesh::DeviceMesh mesh_of(int64_t n0, int64_t n1) {
  auto cluster = mesh::cluster_preset("a100-40gb", 1, n0 * n1).value();
  return mesh::DeviceMesh::create(cluster, {n0, n1}).value();
}

std::vector<std::string> strategy_names(const ir::Graph& g, const std::string& node,
                                        const mesh::DeviceMesh& mesh) {
  const ir::Node& n = g.node(*g.find(node));
  auto sig = op_signature(g, n);
  EXPECT_TRUE(sig) << node;
  if (!sig) return {};
  std::vector<std::string> out;
  for (const Strategy& s : op_strategies(g, n, *sig, mesh, std::vector<bool>(n.inputs.size(), true))) {
    out.push_back(s.name);
  }
  return out;
}

bool has(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

class AttentionRulesTest : public ::testing::Test {
 protected:
  ir::Graph g = ir::parse_graph_text(kAttention).value();
  mesh::DeviceMesh mesh = mesh_of(1, 2);
};

TEST_F(AttentionRulesTest, RotaryOpsCarryAHeadSplit) {
  EXPECT_TRUE(has(strategy_names(g, "lo", mesh), "RS0RR = RS0RR"));
  EXPECT_TRUE(has(strategy_names(g, "hi", mesh), "RS0RR = RS0RR"));
  EXPECT_TRUE(has(strategy_names(g, "neg", mesh), "RS0RR = RS0RR"));
  EXPECT_TRUE(has(strategy_names(g, "rot", mesh), "RS0RR = RS0RR x RS0RR"));
  // cos/sin broadcast over the heads: they stay whole
  EXPECT_TRUE(has(strategy_names(g, "mul", mesh), "RS0RR = RS0RR x RRRR"));
  // the rotated dim itself never splits (rotate_half swaps its halves)
  EXPECT_FALSE(has(strategy_names(g, "rot", mesh), "RRRS0 = RRRS0 x RRRS0"));
}

TEST_F(AttentionRulesTest, KeyValueRepeatCarriesAHeadSplit) {
  EXPECT_TRUE(has(strategy_names(g, "unsq", mesh), "RS0RRR = RS0RR"));
  EXPECT_TRUE(has(strategy_names(g, "exp", mesh), "RS0RRR = RS0RRR"));
  // kv heads split into contiguous chunks are the query heads' chunks
  EXPECT_TRUE(has(strategy_names(g, "rep", mesh), "RS0RR = RS0RRR"));
  EXPECT_TRUE(has(strategy_names(g, "attn", mesh), "RS0RR = RS0RR x RS0RR x RS0RR"));
}

TEST_F(AttentionRulesTest, GroupedQueryAttentionSplitsBothHeadDims) {
  auto names = strategy_names(g, "gqa", mesh);
  EXPECT_TRUE(has(names, "RS0RR = RS0RR x RS0RR x RS0RR"));
  // 2 key/value heads do not split 4 ways: no head split on (1, 4)
  EXPECT_FALSE(has(strategy_names(g, "gqa", mesh_of(1, 4)), "RS0RR = RS0RR x RS0RR x RS0RR"));
}

}  // namespace
}  // namespace alpa::sharding
