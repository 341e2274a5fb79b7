// Tests GraphBuilder: inferred shapes, FQNs, FLOPs and deferred errors.
#include "ir/graph_builder.h"

#include <gtest/gtest.h>

#include "ir/test_graphs.h"

namespace alpa::ir {
namespace {

TEST(GraphBuilderTest, BuildsMlpWithInferredShapesAndFlops) {
  Graph g = testing::mlp_graph();
  ASSERT_EQ(g.num_nodes(), 7);
  const Node& fc1 = g.node(NodeId(4));
  EXPECT_EQ(fc1.op, "aten.linear.default");
  EXPECT_EQ(fc1.outputs[0].to_string(), "f32[8,32]");
  EXPECT_EQ(fc1.module, "fc1");
  EXPECT_DOUBLE_EQ(fc1.flops, 2.0 * 8 * 32 * 16);
  EXPECT_DOUBLE_EQ(g.node(NodeId(5)).flops, 8.0 * 32);  // gelu: 1/element
  EXPECT_DOUBLE_EQ(g.node(NodeId(6)).flops, 2.0 * 8 * 16 * 32);
  EXPECT_EQ(g.node(NodeId(1)).target, "fc1.weight");
  EXPECT_EQ(g.node(NodeId(1)).kind, NodeKind::kParameter);
  EXPECT_TRUE(g.node(NodeId(1)).requires_grad);
  EXPECT_EQ(g.parameter_bytes(), (32 * 16 + 32 + 16 * 32) * 4);
}

TEST(GraphBuilderTest, ShapeErrorSurfacesAtBuild) {
  GraphBuilder b("bad");
  ValueRef x = b.input("x", {{8, 16}, DType::kFloat32});
  ValueRef w = b.parameter("w", {{32, 4}, DType::kFloat32});
  b.output(b.op("aten.mm.default", {x, w}));
  auto g = b.build();
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), core::StatusCode::kInvalidArgument);
  EXPECT_NE(g.status().message().find("cannot multiply f32[8,16] by f32[32,4]"),
            std::string::npos)
      << g.status().message();
}

TEST(GraphBuilderTest, UnknownOpNeedsExplicitMeta) {
  GraphBuilder b("custom");
  ValueRef x = b.input("x", {{4}, DType::kFloat32});
  b.output(b.op("mylib.frob.default", {x}));
  auto g = b.build();
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), core::StatusCode::kNotImplemented);
  EXPECT_NE(g.status().message().find("op_with_meta"), std::string::npos);

  GraphBuilder ok("custom");
  ValueRef y = ok.input("x", {{4}, DType::kFloat32});
  ok.output(ok.op_with_meta("mylib.frob.default", {y}, {}, {{{4}, DType::kFloat32}})[0]);
  EXPECT_TRUE(ok.build().ok());
}

TEST(GraphBuilderTest, NamesAreUnique) {
  GraphBuilder b("names");
  ValueRef x = b.input("x", {{4}, DType::kFloat32});
  ValueRef r1 = b.unary("relu", x);
  ValueRef r2 = b.unary("relu", r1);
  b.output(r2);
  Graph g = b.build().value();
  EXPECT_EQ(g.node(r1.node).name, "relu");
  EXPECT_EQ(g.node(r2.node).name, "relu_1");
}

}  // namespace
}  // namespace alpa::ir
