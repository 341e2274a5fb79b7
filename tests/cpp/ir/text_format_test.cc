// Tests the text form: golden output, exact round trip, parse errors.
#include "ir/text_format.h"

#include <gtest/gtest.h>

#include "ir/test_graphs.h"

namespace alpa::ir {
namespace {

TEST(GraphTextTest, GoldenMlp) {
  const char* expected = R"(graph "mlp" {
  %x: f32[8,16] = input "x"
  %fc1.weight: f32[32,16] = parameter "fc1.weight" [requires_grad=true]
  %fc1.bias: f32[32] = parameter "fc1.bias" [requires_grad=true]
  %fc2.weight: f32[16,32] = parameter "fc2.weight" [requires_grad=true]
  %linear: f32[8,32] = aten.linear.default(%x, %fc1.weight, %fc1.bias) {input=$0, weight=$1, bias=$2} [flops=8192.0, module="fc1"]
  %gelu: f32[8,32] = aten.gelu.default(%linear) {self=$0} [flops=256.0, module="act"]
  %linear_1: f32[8,16] = aten.linear.default(%gelu, %fc2.weight) {input=$0, weight=$1, bias=none} [flops=8192.0, module="fc2"]
  output %linear_1
}
)";
  EXPECT_EQ(graph_to_text(testing::mlp_graph()), expected);
}

TEST(GraphTextTest, RoundTripMultiOutputAndAttrs) {
  const char* text = R"(graph "t" {
  %x: f32[2,6] = input "x" [requires_grad=true]
  %m: f32[6] = buffer "bn.mean"
  %w: f32[6] = parameter "wte.weight" {aliases="lm_head.weight"} [requires_grad=true]
  %s: (f32[2,3], f32[2,3]) = aten.split.Tensor(%x) {self=$0, split_size=3, dim=1, alpha=-1.5e-07, s="a, b", f=f[1.0,2.5], e=f[], l=[], r=$[0,-1]}
  %a: f32[2,3] = aten.add.Tensor(%s, %s#1) {self=$0, other=$1} [module="blk.0"]
  // comments are allowed
  output %a
  output %m mutates "bn.mean"
}
)";
  auto g = parse_graph_text(text);
  ASSERT_TRUE(g.ok()) << g.status().to_string();
  EXPECT_EQ(g->node(NodeId(4)).inputs[1].index, 1);
  auto again = parse_graph_text(graph_to_text(*g));
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  EXPECT_EQ(*again, *g);
}

TEST(GraphTextTest, ErrorsCarryLineAndColumn) {
  auto g = parse_graph_text("graph \"t\" {\n  %x: f32[2] = input \"x\"\n  %y: f32[2] = aten.relu.default(%z)\n  output %y\n}\n");
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("line 3"), std::string::npos) << g.status().message();
  EXPECT_NE(g.status().message().find("%z"), std::string::npos);
  EXPECT_FALSE(parse_graph_text("graph \"t\" {\n  %x: f32[2] = input \"x\"\n").ok());
  EXPECT_FALSE(parse_graph_text("graph \"t\" { %x: q9[2] = input \"x\" output %x }").ok());
}

}  // namespace
}  // namespace alpa::ir
