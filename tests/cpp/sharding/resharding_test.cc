// Tests that resharding picks the right collectives, sizes and duals.
#include "sharding/resharding.h"

#include <gtest/gtest.h>

namespace alpa::sharding {
namespace {

mesh::DeviceMesh mesh_of(int64_t n0, int64_t n1) {
  auto cluster = mesh::cluster_preset("a100-40gb", 1, n0 * n1).value();
  return mesh::DeviceMesh::create(cluster, {n0, n1}).value();
}

ReshardPlan plan(const char* from, const char* to, bool grad = true) {
  ir::TensorMeta meta{{8, 16}, ir::DType::kFloat32};  // 512 bytes
  return plan_reshard(*ShardingSpec::parse(from), *ShardingSpec::parse(to), meta, mesh_of(2, 4), grad);
}

TEST(ReshardingTest, Identity) {
  EXPECT_TRUE(plan("S0R", "S0R").empty());
  EXPECT_TRUE(plan("RR", "RR").forward.empty());
}

TEST(ReshardingTest, GatherAndItsDual) {
  ReshardPlan p = plan("S0R", "RR");  // gather 2 pieces of 256 B on axis 0
  ASSERT_EQ(p.forward.size(), 1u);
  EXPECT_EQ(p.forward[0].kind, CollectiveKind::kAllGather);
  EXPECT_EQ(p.forward[0].axes, MeshAxes{0});
  EXPECT_DOUBLE_EQ(p.forward[0].bytes, 512);
  // the gradient of the replicated value is complete: sliced locally
  EXPECT_TRUE(p.backward.empty());
}

TEST(ReshardingTest, SliceIsFreeForwardAndGathersBackward) {
  ReshardPlan p = plan("RR", "RS1");
  EXPECT_TRUE(p.forward.empty());
  ASSERT_EQ(p.backward.size(), 1u);
  EXPECT_EQ(p.backward[0].kind, CollectiveKind::kAllGather);
  EXPECT_DOUBLE_EQ(p.backward[0].bytes, 512);
}

TEST(ReshardingTest, AllToAllBetweenDimsAndBlockLayouts) {
  ReshardPlan p = plan("S1R", "RS1");  // 512/4 = 128 B per device
  ASSERT_EQ(p.forward.size(), 1u);
  EXPECT_EQ(p.forward[0].kind, CollectiveKind::kAllToAll);
  EXPECT_DOUBLE_EQ(p.forward[0].bytes, 128);
  ReshardPlan q = plan("RS1", "RS1x2");
  ASSERT_EQ(q.forward.size(), 1u);
  EXPECT_EQ(q.forward[0].kind, CollectiveKind::kAllToAll);
}

TEST(ReshardingTest, PartialSums) {
  ReshardPlan ar = plan("RRP1", "RR");
  ASSERT_EQ(ar.forward.size(), 1u);
  EXPECT_EQ(ar.forward[0].kind, CollectiveKind::kAllReduce);
  EXPECT_TRUE(ar.backward.empty());  // all-reduce's dual is the identity
  ReshardPlan rs = plan("RRP1", "S1R");
  ASSERT_EQ(rs.forward.size(), 1u);
  EXPECT_EQ(rs.forward[0].kind, CollectiveKind::kReduceScatter);
  EXPECT_EQ(rs.backward[0].kind, CollectiveKind::kAllGather);
}

TEST(ReshardingTest, SlicesComeBeforeGathers) {
  ReshardPlan p = plan("S0R", "RS1");  // gather axis 0, slice axis 1
  ASSERT_EQ(p.steps.size(), 2u);
  EXPECT_EQ(p.steps[0].op, ReshardOp::kSlice);
  EXPECT_EQ(p.steps[1].op, ReshardOp::kAllGather);
  // after slicing dim 1 by 4, the gather collects 2 × (8/2 × 16/4 × 4 B)
  EXPECT_DOUBLE_EQ(p.forward[0].bytes, 8 * 4 * 4);
}

}  // namespace
}  // namespace alpa::sharding
