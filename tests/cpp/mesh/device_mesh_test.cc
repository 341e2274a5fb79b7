// Tests cluster presets, validation and logical meshes.
#include "mesh/device_mesh.h"

#include <gtest/gtest.h>

namespace alpa::mesh {
namespace {

TEST(ClusterTest, PresetsValidateAndRoundTrip) {
  for (const std::string& name : cluster_preset_names()) {
    auto c = cluster_preset(name, 2, 4);
    ASSERT_TRUE(c.ok()) << name;
    EXPECT_EQ(c->num_devices(), 8);
    auto back = Cluster::from_json(c->to_json());
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(core::dump_json(back->to_json()), core::dump_json(c->to_json()));
  }
  auto bad = cluster_preset("tpu-v9", 1, 1);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("a100-40gb"), std::string::npos);
  EXPECT_FALSE(cluster_preset("a100-40gb", 0, 8).ok());
}

TEST(DeviceMeshTest, AxisZeroSpansHosts) {
  Cluster c = cluster_preset("a100-40gb", 2, 4).value();
  DeviceMesh m = DeviceMesh::create(c, {2, 4}).value();
  EXPECT_TRUE(m.axis_crosses_hosts(0));
  EXPECT_FALSE(m.axis_crosses_hosts(1));
  EXPECT_DOUBLE_EQ(m.axis_link(0).beta, c.inter_host.beta);
  EXPECT_DOUBLE_EQ(m.axis_link(1).beta, c.intra_host.beta);
  EXPECT_EQ(m.device_at(1, 2), 6);
}

TEST(DeviceMeshTest, OneDimensionalMeshIsAxisZero) {
  Cluster c = cluster_preset("a100-40gb", 1, 8).value();
  DeviceMesh m = DeviceMesh::create(c, {1, 8}).value();
  EXPECT_EQ(m.shape(), (std::array<int64_t, 2>{8, 1}));
  EXPECT_FALSE(m.axis_crosses_hosts(0));
}

TEST(DeviceMeshTest, RejectsBadShapesAndIds) {
  Cluster c = cluster_preset("a100-40gb", 1, 4).value();
  auto big = DeviceMesh::create(c, {2, 4});
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.status().message().find("needs 8 devices but the cluster has 4"), std::string::npos);
  EXPECT_FALSE(DeviceMesh::create(c, {0, 4}).ok());
  EXPECT_FALSE(DeviceMesh::create(c, {1, 2}, {0, 0}).ok());
  EXPECT_FALSE(DeviceMesh::create(c, {1, 2}, {0, 9}).ok());
}

}  // namespace
}  // namespace alpa::mesh
