// Tests that the verifier rejects malformed graphs with clear messages.
#include "ir/verifier.h"

#include <gtest/gtest.h>

#include <cmath>

#include "ir/test_graphs.h"

namespace alpa::ir {
namespace {

std::string error_of(const Graph& g) {
  core::Status s = verify_graph(g);
  EXPECT_FALSE(s.ok());
  return s.message();
}

TEST(VerifierTest, AcceptsBuiltGraph) {
  EXPECT_TRUE(verify_graph(testing::mlp_graph()).ok());
}

TEST(VerifierTest, RejectsCycleAndNamesIt) {
  Graph g = testing::mlp_graph();
  // gelu (5) reads linear_1 (6), which reads gelu: a cycle.
  g.mutable_node(NodeId(5)).inputs[0] = ValueRef{NodeId(6), 0};
  std::string msg = error_of(g);
  EXPECT_NE(msg.find("cycle"), std::string::npos) << msg;
  EXPECT_NE(msg.find("gelu"), std::string::npos) << msg;
  EXPECT_NE(msg.find("linear_1"), std::string::npos) << msg;
}

TEST(VerifierTest, RejectsUseBeforeDefinition) {
  Graph g = testing::mlp_graph();
  g.mutable_node(NodeId(4)).inputs[0] = ValueRef{NodeId(5), 0};  // no cycle back
  g.mutable_node(NodeId(5)).inputs[0] = ValueRef{NodeId(0), 0};
  std::string msg = error_of(g);
  EXPECT_NE(msg.find("topological order"), std::string::npos) << msg;
}

TEST(VerifierTest, RejectsShapeMismatch) {
  Graph g = testing::mlp_graph();
  g.mutable_node(NodeId(4)).outputs[0].shape = {8, 33};
  std::string msg = error_of(g);
  EXPECT_NE(msg.find("recorded as f32[8,33] but its inputs give f32[8,32]"),
            std::string::npos) << msg;
  Graph h = testing::mlp_graph();
  h.mutable_node(NodeId(1)).outputs[0].shape = {32, 17};  // fc1.weight
  msg = error_of(h);
  EXPECT_NE(msg.find("linear input f32[8,16] does not match weight f32[32,17]"),
            std::string::npos) << msg;
}

TEST(VerifierTest, RejectsBadReferencesAndNames) {
  Graph g = testing::mlp_graph();
  g.mutable_node(NodeId(4)).inputs[0] = ValueRef{NodeId(99), 0};
  EXPECT_NE(error_of(g).find("does not exist"), std::string::npos);

  Graph h = testing::mlp_graph();
  h.mutable_node(NodeId(4)).inputs[0] = ValueRef{NodeId(0), 3};
  EXPECT_NE(error_of(h).find("output #3"), std::string::npos);

  Graph d = testing::mlp_graph();
  d.mutable_node(NodeId(2)).name = "x";
  EXPECT_NE(error_of(d).find("used twice"), std::string::npos);

  Graph s = testing::mlp_graph();
  s.mutable_node(NodeId(2)).name = "bad name";
  EXPECT_NE(error_of(s).find("letters, digits"), std::string::npos);

  Graph o = testing::mlp_graph();
  o.mutable_outputs().clear();
  EXPECT_NE(error_of(o).find("no outputs"), std::string::npos);

  Graph a = testing::mlp_graph();
  a.mutable_node(NodeId(4)).attrs[2].second = InputRef{7};
  EXPECT_NE(error_of(a).find("refers past"), std::string::npos);
}

// ---- issue 11 #1, #7: nodes that do not fit their kind or op ---------------

TEST(VerifierTest, OpNamesAndFlopsMustReadBackFromText) {
  // Found by tests/fuzz: an op name with ']' and a NaN/negative FLOP count
  // passed the verifier, and the text form could not read them back.
  // "parameter" (a placeholder kind in the text form) was found by a campaign.
  for (const char* bad : {"aten.linear.dfau]lt", "parameter", "linear", ".aten.mm", "aten..mm",
                          "aten.mm.", ""}) {
    Graph g = testing::mlp_graph();
    g.mutable_node(NodeId(4)).op = bad;
    EXPECT_NE(error_of(g).find("op names are 'namespace.op.overload'"), std::string::npos)
        << bad << ": " << error_of(g);
  }
  for (double bad : {-1.0, std::nan(""), HUGE_VAL}) {
    Graph h = testing::mlp_graph();
    h.mutable_node(NodeId(4)).flops = bad;
    EXPECT_NE(error_of(h).find("finite number >= 0"), std::string::npos) << error_of(h);
  }
}

TEST(VerifierTest, PlaceholderIsExactlyOneTensor) {
  Graph g = testing::mlp_graph();
  Node& w = g.mutable_node(NodeId(1));  // fc1.weight
  w.outputs.push_back(w.outputs[0]);
  EXPECT_EQ(error_of(g),
            "parameter node 'fc1.weight' has 2 outputs; a placeholder (input, parameter, "
            "buffer or constant) is exactly one tensor");
}

TEST(VerifierTest, OpInputAndOutputCountsFollowTheSchema) {
  Graph g = testing::mlp_graph();
  Node& fc1 = g.mutable_node(NodeId(4));
  fc1.inputs.push_back(fc1.inputs[0]);  // a 4th input
  EXPECT_EQ(error_of(g),
            "node 'linear' (aten.linear.default) has 4 tensor inputs, but linear (input, "
            "weight, bias?) -> (out) has 2 to 3; re-capture the model or fix the node's inputs");
  Graph h = testing::mlp_graph();
  Node& act = h.mutable_node(NodeId(5));  // gelu
  act.outputs.push_back(act.outputs[0]);
  EXPECT_EQ(error_of(h),
            "node 'gelu' (aten.gelu.default) has 2 tensor outputs, but gelu (self) -> (out) has "
            "1; re-capture the model or fix the node's outputs");
  Graph k = testing::mlp_graph();
  k.mutable_node(NodeId(6)).inputs.pop_back();  // fc2 with only its input
  EXPECT_NE(error_of(k).find("has 1 tensor inputs, but linear"), std::string::npos);
}

Graph one_op_graph(const std::string& op, std::vector<Shape> inputs, std::vector<Shape> outputs) {
  Graph g("g");
  std::vector<ValueRef> refs;
  for (size_t i = 0; i < inputs.size(); ++i) {
    Node in;
    in.kind = NodeKind::kInput;
    in.name = "x" + std::to_string(i);
    in.target = in.name;
    in.outputs = {TensorMeta{inputs[i], DType::kFloat32}};
    refs.push_back(ValueRef{g.add_node(in), 0});
  }
  Node n;
  n.name = "op";
  n.op = op;
  n.inputs = refs;
  for (const Shape& s : outputs) n.outputs.push_back(TensorMeta{s, DType::kFloat32});
  g.add_output(GraphOutput{ValueRef{g.add_node(n), 0}, OutputRole::kUserOutput, ""});
  return g;
}

TEST(VerifierTest, RanksTheRulesRelyOn) {
  EXPECT_TRUE(verify_graph(one_op_graph("aten.conv2d.default", {{2, 3, 8, 8}, {4, 3, 3, 3}, {4}},
                                        {{2, 4, 6, 6}})).ok());
  EXPECT_EQ(error_of(one_op_graph("aten.conv2d.default", {{2, 3, 8, 8}, {4, 3, 3, 3}},
                                  {{2, 4, 36}})),
            "node 'op' (aten.conv2d.default): output #0 ('out') has rank 3, but conv2d "
            "(input[r], weight, bias?[1]) -> (out[r]) needs rank 4 there (r = 4 from input #0)");
  EXPECT_NE(error_of(one_op_graph("aten.conv2d.default", {{2, 3, 8, 8}, {4, 3, 3, 3}, {4, 1}},
                                  {{2, 4, 6, 6}})).find("input #2 ('bias') has rank 2"),
            std::string::npos);
  EXPECT_TRUE(verify_graph(one_op_graph("aten.stack.default", {{2, 3}, {2, 3}}, {{2, 2, 3}})).ok());
  EXPECT_NE(error_of(one_op_graph("aten.stack.default", {{2, 3}, {2, 3, 1}}, {{2, 2, 3}}))
                .find("input #1 ('tensors') has rank 3"), std::string::npos);
  EXPECT_NE(error_of(one_op_graph("aten.topk.default", {{4, 8}}, {{4, 2}, {8}}))
                .find("output #1 ('indices') has rank 1"), std::string::npos);
  // Ops outside the schema table take any counts (the planner replicates them).
  EXPECT_TRUE(verify_graph(one_op_graph("aten.index.Tensor", {{4, 8}, {3}, {3}}, {{3}})).ok());
}

TEST(VerifierTest, TensorsTheCostModelCanSum) {
  Graph g = testing::mlp_graph();
  g.mutable_node(NodeId(0)).outputs[0].shape = {int64_t{1} << 40, int64_t{1} << 40};
  EXPECT_NE(error_of(g).find("node 'x' output #0 is f32[1099511627776,1099511627776]: its "
                             "dims multiply to more than 2^50 bytes"), std::string::npos)
      << error_of(g);
  g.mutable_node(NodeId(0)).outputs[0].shape.push_back(0);  // empty, dims still overflow
  EXPECT_NE(error_of(g).find("dims multiply to more than 2^50 bytes"), std::string::npos);
  Graph h = testing::mlp_graph();
  h.mutable_node(NodeId(0)).outputs[0].shape = Shape(33, 1);
  EXPECT_EQ(error_of(h), "node 'x' output #0 has 33 dims; alpa_torch plans tensors of at most "
                         "32 dims");
}

}  // namespace
}  // namespace alpa::ir
