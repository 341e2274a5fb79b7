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
  // another block layout of the same dim moves uneven pieces: the runtime
  // gathers and cuts again, and the cost says so
  ReshardPlan q = plan("RS1", "RS1x2");
  EXPECT_EQ(q.to_string(), "all_gather@1(1->-1), slice@1(-1->1)");
  ASSERT_EQ(q.forward.size(), 1u);
  EXPECT_EQ(q.forward[0].kind, CollectiveKind::kAllGather);
}

ReshardPlan plan22(const char* from, const char* to) {
  ir::TensorMeta meta{{8, 16}, ir::DType::kFloat32};
  return plan_reshard(*ShardingSpec::parse(from), *ShardingSpec::parse(to), meta, mesh_of(2, 2), true);
}

// S01 on (2, 2): device (i, j) holds piece 2i + j. Only the inner axis
// gathers into contiguous pieces; gathering axis 0 alone would give device
// (0, 1) pieces 1 and 3 (issue 12: batch rows 1 and 2 swapped).
TEST(ReshardingTest, MultiAxisDimsGatherInnerAxisFirst) {
  EXPECT_EQ(plan22("S01R", "S0R").to_string(), "all_gather@1(0->-1)");
  EXPECT_EQ(plan22("S01R", "S1R").to_string(),
            "all_gather@1(0->-1), all_gather@0(0->-1), slice@1(-1->0)");
  EXPECT_EQ(plan22("S10R", "S0R").to_string(),
            "all_gather@0(0->-1), all_gather@1(0->-1), slice@0(-1->0)");
  EXPECT_EQ(plan22("S0R", "S01R").to_string(), "slice@1(-1->0)");  // cut inside: local
  EXPECT_EQ(plan22("S1R", "S01R").to_string(), "all_gather@1(0->-1), slice@0(-1->0), slice@1(-1->0)");
  EXPECT_EQ(plan22("S0R", "S1R").to_string(), "all_gather@0(0->-1), slice@1(-1->0)");
}

TEST(ReshardingTest, AllToAllOnlyMovesTheInnerAxisToTheNextPlace) {
  EXPECT_EQ(plan22("S01R", "RS10").to_string(), "all_to_all@1(0->1), all_to_all@0(0->1)");
  EXPECT_EQ(plan22("S01R", "RS1").to_string(), "all_to_all@1(0->1), all_gather@0(0->-1)");
  EXPECT_EQ(plan22("S0S1", "S1S0").to_string(),
            "all_gather@0(0->-1), all_to_all@1(1->0), slice@0(-1->1)");
}

TEST(ReshardingTest, ReduceScatterInTheTargetsAxisOrder) {
  EXPECT_EQ(plan22("RRP01", "S10R").to_string(), "reduce_scatter@1(-1->0), reduce_scatter@0(-1->0)");
  // axis 1 cannot cut dim 0 before axis 0 does: all-reduce, slice later
  EXPECT_EQ(plan22("S0RP1", "S10R").to_string(),
            "all_reduce@1(-1->-1), all_gather@0(0->-1), slice@1(-1->0), slice@0(-1->0)");
}

TEST(ReshardingTest, UnitAxesCutNothing) {
  ir::TensorMeta meta{{8, 16}, ir::DType::kFloat32};
  auto p = plan_reshard(*ShardingSpec::parse("S01R"), *ShardingSpec::parse("S0R"), meta, mesh_of(4, 1), true);
  EXPECT_TRUE(p.empty());
}

TEST(ReshardingTest, WholeValuesDoNotBecomePartialSums) {
  core::Status st = reshard_supported(*ShardingSpec::parse("S0R"), *ShardingSpec::parse("RRP0"));
  EXPECT_EQ(st.code(), core::StatusCode::kNotImplemented);
  EXPECT_NE(st.message().find("reshard to 'RR' without the P suffix"), std::string::npos) << st.message();
  EXPECT_TRUE(reshard_supported(*ShardingSpec::parse("S0RP1"), *ShardingSpec::parse("RS0P1")).ok());
  EXPECT_THROW(plan22("S0R", "RRP0"), std::invalid_argument);
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
