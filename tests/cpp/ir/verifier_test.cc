// Tests that the verifier rejects malformed graphs with clear messages.
#include "ir/verifier.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace alpa::ir
