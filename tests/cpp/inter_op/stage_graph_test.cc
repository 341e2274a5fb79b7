// Tests of stage-graph extraction: boundary values, pass-through of values
// that skip a stage, shared parameters, and the structural hash.
#include "inter_op/stage_graph.h"

#include <gtest/gtest.h>

#include "ir/graph_builder.h"
#include "ir/verifier.h"

namespace alpa::inter_op {
namespace {

using ir::DType;
using ir::GraphBuilder;
using ir::ValueRef;

/// x ─ fc0 ─ gelu ─ fc1 ─ gelu ─ fc2 ─ add(·, h0) ─ out, plus a tied
/// weight read by fc0 and fc2. Layers: {fc0, gelu0} {fc1, gelu1} {fc2, add}.
struct Chain {
  ir::Graph graph;
  std::vector<int64_t> layer;
};

Chain chain() {
  GraphBuilder b("chain");
  ValueRef x = b.input("x", {{4, 8}, DType::kFloat32});
  ValueRef w = b.parameter("w", {{8, 8}, DType::kFloat32});
  ValueRef w1 = b.parameter("w1", {{8, 8}, DType::kFloat32});
  ValueRef h0 = b.unary("gelu", b.linear(x, w, "l0"), "l0");
  ValueRef h1 = b.unary("gelu", b.linear(h0, w1, "l1"), "l1");
  ValueRef y = b.binary("add", b.linear(h1, w, "l2"), h0, "l2");
  b.output(y);
  Chain c{b.build().value(), {}};
  for (const ir::Node& n : c.graph.nodes()) {
    c.layer.push_back(n.is_placeholder() ? -1 : n.module == "l0" ? 0 : n.module == "l1" ? 1 : 2);
  }
  return c;
}

std::vector<std::string> names(const std::vector<BoundaryValue>& values) {
  std::vector<std::string> out;
  for (const auto& v : values) out.push_back(v.name);
  return out;
}

TEST(StageGraphTest, MiddleStageReceivesAndPassesThrough) {
  Chain c = chain();
  StageGraph s = extract_stage_graph(c.graph, c.layer, 1, 1, 3).value();
  ASSERT_TRUE(ir::verify_graph(s.graph).ok()) << ir::verify_graph(s.graph).to_string();
  // h0 is read by layer 1 and, skipping it, by layer 2's add.
  ASSERT_EQ(s.inputs.size(), 1u);
  EXPECT_TRUE(s.inputs[0].requires_grad);
  EXPECT_EQ(s.inputs[0].meta.shape, (ir::Shape{4, 8}));
  EXPECT_EQ(names(s.outputs).size(), 2u);  // h1 and h0 (passed through)
  EXPECT_TRUE(s.graph_outputs.empty());
  int64_t params = 0;
  for (const ir::Node& n : s.graph.nodes()) params += n.kind == ir::NodeKind::kParameter;
  EXPECT_EQ(params, 1);  // only w1
}

TEST(StageGraphTest, FirstStageKeepsUserInputsAndLastEmitsGraphOutputs) {
  Chain c = chain();
  StageGraph first = extract_stage_graph(c.graph, c.layer, 0, 0, 3).value();
  EXPECT_TRUE(first.inputs.empty());
  EXPECT_EQ(first.graph.node(ir::NodeId(0)).name, "x");
  EXPECT_EQ(first.graph.node(ir::NodeId(0)).target, "x");
  ASSERT_EQ(names(first.outputs), (std::vector<std::string>{"gelu"})) << first.graph.num_nodes();
  StageGraph last = extract_stage_graph(c.graph, c.layer, 1, 2, 3).value();
  EXPECT_EQ(names(last.inputs), names(first.outputs));
  EXPECT_TRUE(last.outputs.empty());
  EXPECT_EQ(last.graph_outputs, (std::vector<int64_t>{0}));
  // The tied weight goes to both stages that read it.
  int64_t w_count = 0;
  for (const ir::Node& n : last.graph.nodes()) w_count += n.target == "w" || n.target == "w1";
  EXPECT_EQ(w_count, 2);
}

TEST(StageGraphTest, WholeGraphAsOneStageEqualsTheGraph) {
  Chain c = chain();
  StageGraph s = extract_stage_graph(c.graph, c.layer, 0, 2, 3).value();
  EXPECT_EQ(structural_hash(s.graph), structural_hash(c.graph));
  EXPECT_TRUE(s.inputs.empty());
  EXPECT_TRUE(s.outputs.empty());
}

TEST(StageGraphTest, EqualBlocksHashEqualDespiteNames) {
  auto block = [](const std::string& prefix) {
    GraphBuilder b("g");
    ValueRef x = b.input("x", {{4, 8}, DType::kFloat32}, true);
    ValueRef w = b.parameter(prefix + ".weight", {{8, 8}, DType::kFloat32});
    b.output(b.unary("relu", b.linear(x, w, prefix), prefix));
    return b.build().value();
  };
  EXPECT_EQ(structural_hash(block("h.0")), structural_hash(block("h.1")));
  GraphBuilder b("g");
  ValueRef x = b.input("x", {{4, 8}, DType::kFloat32}, true);
  ValueRef w = b.parameter("h.0.weight", {{16, 8}, DType::kFloat32});
  b.output(b.unary("relu", b.linear(x, w, "h.0"), "h.0"));
  EXPECT_NE(structural_hash(b.build().value()), structural_hash(block("h.0")));
}

TEST(StageGraphTest, IntegerValuesCarryNoGradient) {
  GraphBuilder b("g");
  ValueRef ids = b.input("ids", {{4}, DType::kInt64});
  ValueRef emb = b.parameter("emb", {{10, 8}, DType::kFloat32});
  ValueRef h = b.op("aten.embedding.default", {emb, ids});
  b.output(h);
  ir::Graph g = b.build().value();
  auto grad = values_requiring_grad(g);
  EXPECT_FALSE(grad[0][0]);
  EXPECT_TRUE(grad[2][0]);
}

TEST(StageGraphTest, ParameterReturnedAsIsIsAnOutputOfTheLastStage) {
  // Found by mutating captured graphs: a graph output that is a parameter
  // read by no op of the last stage threw std::out_of_range (map::at).
  Chain c = chain();
  c.graph.mutable_outputs()[0].value = ValueRef{ir::NodeId(2), 0};  // w1, read by layer 1
  StageGraph last = extract_stage_graph(c.graph, c.layer, 2, 2, 3).value();
  ASSERT_TRUE(ir::verify_graph(last.graph).ok()) << ir::verify_graph(last.graph).to_string();
  ASSERT_EQ(last.graph.outputs().size(), 1u);
  const ir::Node& out = last.graph.node(last.graph.outputs()[0].value.node);
  EXPECT_EQ(out.kind, ir::NodeKind::kParameter);
  EXPECT_EQ(out.target, "w1");
}

TEST(StageGraphTest, BadRangeIsAnError) {
  Chain c = chain();
  auto s = extract_stage_graph(c.graph, c.layer, 2, 1, 3);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("[2, 1]"), std::string::npos);
}

}  // namespace
}  // namespace alpa::inter_op
