// Tests ShardingSpec text form, local shapes and enumeration.
#include "sharding/sharding_spec.h"

#include <gtest/gtest.h>

namespace alpa::sharding {
namespace {

mesh::DeviceMesh mesh_of(int64_t n0, int64_t n1) {
  auto cluster = mesh::cluster_preset("a100-40gb", 1, n0 * n1).value();
  return mesh::DeviceMesh::create(cluster, {n0, n1}).value();
}

TEST(ShardingSpecTest, ParsePrintRoundTrip) {
  for (const char* text : {"S0R", "RS1", "S01R", "RS0x3", "S1S0", "RRP0", "S0P1", "R", "", "S10R"}) {
    auto spec = ShardingSpec::parse(text);
    ASSERT_TRUE(spec.ok()) << text << ": " << spec.status().to_string();
    EXPECT_EQ(spec->to_string(), text);
  }
  EXPECT_EQ(ShardingSpec::parse("S0R")->dims, (std::vector<MeshAxes>{{0}, {}}));
  EXPECT_EQ(ShardingSpec::parse("RS0x3")->block(1), 3);
  for (const char* bad : {"S", "Q0", "S0Px", "P0R", "RS0x", "RS0x0"}) {
    auto spec = ShardingSpec::parse(bad);
    EXPECT_FALSE(spec.ok()) << bad;
    if (!spec.ok()) EXPECT_NE(spec.status().message().find("bad sharding spec"), std::string::npos);
  }
}

TEST(ShardingSpecTest, PiecesInMixedRadix) {
  // S01 on (2, 3): device (i, j) holds piece 3i + j of 6; S10 holds 2j + i.
  auto p = ShardingSpec::parse("S01R").value().pieces({2, 3}, {1, 2});
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0].index, 5);
  EXPECT_EQ(p[0].count, 6);
  EXPECT_EQ(p[1].count, 1);
  p = ShardingSpec::parse("S10").value().pieces({2, 3}, {1, 2});
  EXPECT_EQ(p[0].index, 2 * 2 + 1);
  p = ShardingSpec::parse("RS1x3").value().pieces({2, 3}, {0, 1});
  EXPECT_EQ(p[1].index, 1);
  EXPECT_EQ(p[1].count, 3);
  EXPECT_EQ(p[1].block, 3);
}

TEST(ShardingSpecTest, LocalShapesAndChecks) {
  auto mesh = mesh_of(2, 4);
  EXPECT_EQ(*ShardingSpec::parse("S0S1")->local_shape({8, 16}, mesh), (ir::Shape{4, 4}));
  EXPECT_EQ(*ShardingSpec::parse("S01R")->local_shape({16, 3}, mesh), (ir::Shape{2, 3}));
  auto bad = ShardingSpec::parse("S1R")->local_shape({6, 3}, mesh);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("does not divide"), std::string::npos);
  EXPECT_FALSE(ShardingSpec::parse("S0S0")->check({8, 8}, mesh).ok());   // axis twice
  EXPECT_FALSE(ShardingSpec::parse("S2R")->check({8, 8}, mesh).ok());    // no axis 2
  EXPECT_FALSE(ShardingSpec::parse("S0")->check({8, 8}, mesh).ok());     // rank
  EXPECT_TRUE(ShardingSpec::parse("RS0")->check({8, 4}, mesh).ok());
  EXPECT_FALSE(ShardingSpec::parse("RS0x3")->check({8, 4}, mesh).ok());  // 4 % (3·2)
  EXPECT_TRUE(ShardingSpec::parse("RS1x3")->check({8, 24}, mesh).ok());
}

TEST(ShardingSpecTest, OneDimensionalMeshUsesAxisZero) {
  auto mesh = mesh_of(1, 4);
  EXPECT_EQ(mesh.shape()[0], 4);
  EXPECT_EQ(mesh.shape()[1], 1);
  auto specs = enumerate_specs({8, 8}, mesh);
  std::vector<std::string> names;
  for (const auto& s : specs) names.push_back(s.to_string());
  EXPECT_EQ(names, (std::vector<std::string>{"RR", "S0R", "RS0"}));
}

TEST(ShardingSpecTest, EnumerationOnTwoDimensionalMesh) {
  auto mesh = mesh_of(2, 2);
  std::vector<std::string> names;
  for (const auto& s : enumerate_specs({4, 6}, mesh)) names.push_back(s.to_string());
  // axis 0 ∈ {-, dim0, dim1} × axis 1 ∈ {-, dim0, dim1}; 6 % 4 != 0 drops S01 on dim 1
  EXPECT_EQ(names, (std::vector<std::string>{"RR", "S1R", "RS1", "S0R", "S01R", "S0S1", "RS0", "S1S0"}));
  std::vector<std::string> blocked;
  for (const auto& s : enumerate_specs({4, 12}, mesh, {{12, 3}})) blocked.push_back(s.to_string());
  EXPECT_NE(std::find(blocked.begin(), blocked.end(), "RS0x3"), blocked.end());
}

}  // namespace
}  // namespace alpa::sharding

namespace alpa::sharding {
namespace {

TEST(ShardingSpecTest, BlockFactorOnAnEarlyDimRoundTrips) {
  for (const char* text : {"S0x3S1", "S0x2RR", "RS1x3R"}) {
    ShardingSpec spec = ShardingSpec::parse(text).value();
    EXPECT_EQ(spec.to_string(), text);
    EXPECT_EQ(spec.blocks.size(), spec.dims.size());
  }
}

}  // namespace
}  // namespace alpa::sharding
