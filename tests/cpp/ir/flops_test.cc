// Tests FLOP formulas against hand-computed counts (the FlopCounterMode
// convention: a multiply-add is 2 FLOPs; addmm counts only its product).
#include "ir/flops.h"

#include <gtest/gtest.h>

#include "ir/graph_builder.h"

namespace alpa::ir {
namespace {

constexpr DType kF = DType::kFloat32;

TEST(FlopsTest, MatmulFamily) {
  GraphBuilder b("mm");
  ValueRef a = b.input("a", {{4, 8, 16}, kF});
  ValueRef w = b.input("w", {{4, 16, 32}, kF});
  ValueRef bias = b.input("bias", {{8, 32}, kF});
  ValueRef m = b.input("m", {{8, 16}, kF});
  ValueRef n = b.input("n", {{16, 32}, kF});
  ValueRef bmm = b.op("aten.bmm.default", {a, w});
  ValueRef addmm = b.op("aten.addmm.default", {bias, m, n});
  ValueRef matmul = b.op("aten.matmul.default", {a, n});
  b.output(bmm);
  b.output(addmm);
  b.output(matmul);
  Graph g = b.build().value();
  EXPECT_DOUBLE_EQ(g.node(bmm.node).flops, 2.0 * 4 * 8 * 32 * 16);
  EXPECT_DOUBLE_EQ(g.node(addmm.node).flops, 2.0 * 8 * 32 * 16);
  EXPECT_DOUBLE_EQ(g.node(matmul.node).flops, 2.0 * 4 * 8 * 32 * 16);
}

TEST(FlopsTest, ConvolutionAndAttention) {
  GraphBuilder b("conv");
  ValueRef x = b.input("x", {{2, 3, 8, 8}, kF});
  ValueRef w = b.parameter("conv.weight", {{16, 3, 3, 3}, kF});
  ValueRef y = b.op_with_meta("aten.convolution.default", {x, w},
                              {{"input", InputRef{0}}, {"weight", InputRef{1}},
                               {"bias", Attr()}, {"transposed", false}},
                              {{{2, 16, 8, 8}, kF}})[0];
  ValueRef q = b.input("q", {{2, 4, 16, 8}, kF});
  ValueRef k = b.input("k", {{2, 4, 32, 8}, kF});
  ValueRef v = b.input("v", {{2, 4, 32, 8}, kF});
  ValueRef att = b.op("aten.scaled_dot_product_attention.default", {q, k, v});
  b.output(y);
  b.output(att);
  Graph g = b.build().value();
  // batch 2 × out spatial 64 × weight numel (16·3·3·3) × 2
  EXPECT_DOUBLE_EQ(g.node(y.node).flops, 2.0 * 2 * 64 * (16 * 3 * 3 * 3));
  // QK^T and AV: 2·b·h·Sq·Sk·d each
  EXPECT_DOUBLE_EQ(g.node(att.node).flops, 2 * (2.0 * 2 * 4 * 16 * 32 * 8));
  EXPECT_EQ(g.meta(att).to_string(), "f32[2,4,16,8]");
}

TEST(FlopsTest, EinsumCountsEveryIndexOnce) {
  GraphBuilder b("einsum");
  ValueRef x = b.input("x", {{4, 6, 8}, kF});    // e c m
  ValueRef w = b.input("w", {{4, 8, 10}, kF});   // e m h
  ValueRef y = b.op_with_meta("aten.einsum.default", {x, w},
                              {{"equation", std::string("ecm,emh->ech")},
                               {"operands", InputRefs{{0, 1}}}},
                              {{{4, 6, 10}, kF}})[0];
  b.output(y);
  Graph g = b.build().value();
  EXPECT_DOUBLE_EQ(g.node(y.node).flops, 2.0 * 4 * 6 * 8 * 10);
}

TEST(FlopsTest, Categories) {
  EXPECT_EQ(op_category("aten.addmm.default"), OpCategory::kMatmul);
  EXPECT_EQ(op_category("aten.convolution.default"), OpCategory::kConvolution);
  EXPECT_EQ(op_category("aten.layer_norm.default"), OpCategory::kNorm);
  EXPECT_EQ(op_category("aten._softmax.default"), OpCategory::kSoftmax);
  EXPECT_EQ(op_category("aten.sum.dim_IntList"), OpCategory::kReduction);
  EXPECT_EQ(op_category("aten.add.Tensor"), OpCategory::kElementwise);
  EXPECT_EQ(op_category("aten.view.default"), OpCategory::kData);
}

}  // namespace
}  // namespace alpa::ir
