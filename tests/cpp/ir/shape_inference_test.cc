// Tests shape inference for views, broadcasting, reductions and matmuls.
#include "ir/shape_inference.h"

#include <gtest/gtest.h>

#include "ir/graph_builder.h"

namespace alpa::ir {
namespace {

constexpr DType kF = DType::kFloat32;

TEST(ShapeInferenceTest, Broadcast) {
  EXPECT_EQ(*broadcast_shapes({8, 1, 4}, {3, 1}), (Shape{8, 3, 4}));
  EXPECT_FALSE(broadcast_shapes({2, 3}, {4}).ok());
}

TEST(ShapeInferenceTest, ViewsAndReductions) {
  GraphBuilder b("shapes");
  ValueRef x = b.input("x", {{2, 3, 4}, kF});
  ValueRef v = b.op("aten.view.default", {x}, {{"size", std::vector<int64_t>{6, -1}}});
  ValueRef p = b.op("aten.permute.default", {x}, {{"dims", std::vector<int64_t>{2, 0, 1}}});
  ValueRef t = b.op("aten.transpose.int", {x}, {{"dim0", int64_t{-1}}, {"dim1", int64_t{0}}});
  ValueRef u = b.op("aten.unsqueeze.default", {x}, {{"dim", int64_t{-1}}});
  ValueRef e = b.op("aten.expand.default", {u}, {{"size", std::vector<int64_t>{-1, -1, -1, 5}}});
  ValueRef s = b.op("aten.sum.dim_IntList", {x}, {{"dim", std::vector<int64_t>{1}}, {"keepdim", true}});
  ValueRef m = b.op("aten.mean.dim", {x}, {{"dim", std::vector<int64_t>{-1}}, {"keepdim", false}});
  for (ValueRef r : {v, p, t, e, s, m}) b.output(r);
  Graph g = b.build().value();
  EXPECT_EQ(g.meta(v).to_string(), "f32[6,4]");
  EXPECT_EQ(g.meta(p).to_string(), "f32[4,2,3]");
  EXPECT_EQ(g.meta(t).to_string(), "f32[4,3,2]");
  EXPECT_EQ(g.meta(e).to_string(), "f32[2,3,4,5]");
  EXPECT_EQ(g.meta(s).to_string(), "f32[2,1,4]");
  EXPECT_EQ(g.meta(m).to_string(), "f32[2,3]");
}

TEST(ShapeInferenceTest, BadViewIsRejected) {
  GraphBuilder b("bad");
  ValueRef x = b.input("x", {{2, 3}, kF});
  b.output(b.op("aten.view.default", {x}, {{"size", std::vector<int64_t>{4, 2}}}));
  auto g = b.build();
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("cannot view f32[2,3] (6 elements) as [4,2] (8 elements)"),
            std::string::npos) << g.status().message();
}

TEST(ShapeInferenceTest, MatmulBroadcastsBatch) {
  GraphBuilder b("mm");
  ValueRef a = b.input("a", {{5, 1, 2, 3}, kF});
  ValueRef c = b.input("c", {{4, 3, 7}, kF});
  ValueRef v = b.input("v", {{3}, kF});
  ValueRef m = b.op("aten.matmul.default", {a, c});
  ValueRef mv = b.op("aten.matmul.default", {a, v});
  b.output(m);
  b.output(mv);
  Graph g = b.build().value();
  EXPECT_EQ(g.meta(m).to_string(), "f32[5,4,2,7]");
  EXPECT_EQ(g.meta(mv).to_string(), "f32[5,1,2]");
}

}  // namespace
}  // namespace alpa::ir
