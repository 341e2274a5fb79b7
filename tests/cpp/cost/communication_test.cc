// Tests the α-β collective formulas of DESIGN §5 with hand arithmetic.
#include "cost/communication.h"

#include <gtest/gtest.h>

namespace alpa::cost {
namespace {

using sharding::Collective;
using sharding::CollectiveKind;

mesh::DeviceMesh test_mesh() {
  mesh::Cluster c = mesh::cluster_preset("a100-40gb", 2, 4).value();
  c.intra_host = {1e-6, 1e-9};  // 1 µs, 1 GB/s
  c.inter_host = {1e-5, 1e-8};  // 10 µs, 100 MB/s
  return mesh::DeviceMesh::create(c, {2, 4}).value();
}

TEST(CommunicationTest, FormulasPerKind) {
  auto m = test_mesh();
  CostOptions o;
  double b = 1e6;
  // axis 1: n = 4, α = 1e-6, β = 1e-9
  EXPECT_DOUBLE_EQ(collective_time({CollectiveKind::kAllReduce, {1}, b}, m, o), 1e-6 + 2 * 1e-9 * 3.0 / 4 * b);
  EXPECT_DOUBLE_EQ(collective_time({CollectiveKind::kAllGather, {1}, b}, m, o), 1e-6 + 1e-9 * 3.0 / 4 * b);
  EXPECT_DOUBLE_EQ(collective_time({CollectiveKind::kReduceScatter, {1}, b}, m, o), 1e-6 + 1e-9 * 3.0 / 4 * b);
  // all-to-all: each device sends 3/4 of its buffer b away
  EXPECT_DOUBLE_EQ(collective_time({CollectiveKind::kAllToAll, {1}, b}, m, o), 1e-6 + 1e-9 * 3.0 / 4 * b);
  CostOptions alpa = o;
  alpa.mode = CostOptions::Mode::kAlpa;  // Alpa's all-to-all formula, (n-1)/n^2
  EXPECT_DOUBLE_EQ(collective_time({CollectiveKind::kAllToAll, {1}, b}, m, alpa),
                   1e-6 + 1e-9 * 3.0 / 16 * b + alpa.alpa_collective_penalty);
  // axis 0 crosses hosts: n = 2, α = 1e-5, β = 1e-8
  EXPECT_DOUBLE_EQ(collective_time({CollectiveKind::kAllReduce, {0}, b}, m, o), 1e-5 + 2 * 1e-8 * 1.0 / 2 * b);
  // both axes: n = 8, the slower link
  EXPECT_DOUBLE_EQ(collective_time({CollectiveKind::kAllGather, {0, 1}, b}, m, o), 1e-5 + 1e-8 * 7.0 / 8 * b);
}

TEST(CommunicationTest, FusedGradientsPayNoLatencyAndAlpaModeAddsPenalty) {
  auto m = test_mesh();
  CostOptions o;
  Collective fused{CollectiveKind::kAllReduce, {1}, 1e6};
  fused.fused = true;
  EXPECT_DOUBLE_EQ(collective_time(fused, m, o), 2 * 1e-9 * 3.0 / 4 * 1e6);
  o.mode = CostOptions::Mode::kAlpa;
  EXPECT_DOUBLE_EQ(collective_time({CollectiveKind::kAllGather, {1}, 0}, m, o), 1e-6 + o.alpa_collective_penalty);
}

}  // namespace
}  // namespace alpa::cost
