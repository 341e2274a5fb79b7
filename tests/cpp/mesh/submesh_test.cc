// Tests sub-mesh enumeration (goldens), logical mesh shapes, the text form,
// and placement onto device ids, cross-checked against an exhaustive packer.
#include "mesh/submesh.h"

#include <algorithm>
#include <functional>
#include <random>

#include <gtest/gtest.h>

namespace alpa::mesh {
namespace {

Cluster make_cluster(int64_t hosts, int64_t per_host) {
  return cluster_preset("a100-40gb", hosts, per_host).value();
}

std::string join(const std::vector<SubmeshShape>& shapes) {
  std::string out;
  for (const auto& s : shapes) out += (out.empty() ? "" : " ") + s.to_string();
  return out;
}

std::string join(const std::vector<std::array<int64_t, 2>>& shapes) {
  std::string out;
  for (const auto& s : shapes) {
    out += (out.empty() ? "(" : " (") + std::to_string(s[0]) + ", " + std::to_string(s[1]) + ")";
  }
  return out;
}

TEST(SubmeshTest, EnumerationGoldens) {
  EXPECT_EQ(join(enumerate_submeshes(make_cluster(1, 8))), "(1, 1) (1, 2) (1, 4) (1, 8)");
  EXPECT_EQ(join(enumerate_submeshes(make_cluster(2, 4))), "(1, 1) (1, 2) (1, 4) (2, 4)");
  EXPECT_EQ(join(enumerate_submeshes(make_cluster(8, 8))),
            "(1, 1) (1, 2) (1, 4) (1, 8) (2, 8) (3, 8) (4, 8) (5, 8) (6, 8) (7, 8) (8, 8)");
  EXPECT_EQ(join(enumerate_submeshes(make_cluster(1, 1))), "(1, 1)");
  // A host of 6 devices: powers of two, then the whole host.
  EXPECT_EQ(join(enumerate_submeshes(make_cluster(2, 6))), "(1, 1) (1, 2) (1, 4) (1, 6) (2, 6)");
}

TEST(SubmeshTest, LogicalMeshShapes) {
  EXPECT_EQ(join(logical_mesh_shapes({1, 1})), "(1, 1)");
  EXPECT_EQ(join(logical_mesh_shapes({1, 2})), "(2, 1)");
  EXPECT_EQ(join(logical_mesh_shapes({1, 8})), "(8, 1) (4, 2) (2, 4)");
  EXPECT_EQ(join(logical_mesh_shapes({2, 8})), "(16, 1) (8, 2) (4, 4) (2, 8)");
  EXPECT_EQ(join(logical_mesh_shapes({3, 8})), "(24, 1) (12, 2) (6, 4) (3, 8)");
  EXPECT_EQ(join(logical_mesh_shapes({1, 6})), "(6, 1) (3, 2)");
  EXPECT_EQ(join(logical_mesh_shapes({3, 6})), "(18, 1) (9, 2) (3, 6)");
  for (const auto& s : logical_mesh_shapes({4, 8})) {
    EXPECT_EQ(s[0] * s[1], 32);
    EXPECT_NE(s[0], 1) << "canonical: (1, n) is written (n, 1)";
  }
}

TEST(SubmeshTest, TextRoundTrip) {
  for (SubmeshShape s : {SubmeshShape{1, 4}, SubmeshShape{8, 8}, SubmeshShape{3, 6}}) {
    auto back = SubmeshShape::parse(s.to_string());
    ASSERT_TRUE(back.ok()) << back.status().to_string();
    EXPECT_EQ(*back, s);
  }
  EXPECT_EQ(SubmeshShape::parse(" (2,8) ").value(), (SubmeshShape{2, 8}));
  for (const char* bad : {"(1, 4", "1, 4", "(1; 4)", "(1, 4) x", "(a, 4)", "(0, 4)"}) {
    auto r = SubmeshShape::parse(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), core::StatusCode::kParseError);
  }
  EXPECT_EQ(SubmeshShape::parse("(1; 4)").status().message(),
            "expected a sub-mesh written as '(hosts, devices_per_host)', e.g. '(1, 4)'; got '(1; 4)'");
}

using Ids = std::vector<std::vector<int64_t>>;

TEST(SubmeshTest, PlacementGoldens) {
  Cluster c24 = make_cluster(2, 4);
  // Slices are packed largest first: (1, 4) takes host 0, the two (1, 2) host 1.
  EXPECT_EQ(place_submeshes(c24, {{1, 2}, {1, 4}, {1, 2}}).value(),
            (Ids{{4, 5}, {0, 1, 2, 3}, {6, 7}}));
  EXPECT_EQ(place_submeshes(c24, {{2, 4}}).value(), (Ids{{0, 1, 2, 3, 4, 5, 6, 7}}));
  EXPECT_EQ(place_submeshes(c24, {{1, 1}, {1, 2}, {1, 1}, {1, 4}}).value(),
            (Ids{{6}, {4, 5}, {7}, {0, 1, 2, 3}}));
  Cluster c48 = make_cluster(4, 8);
  // Whole-host stages take hosts first, in pipeline order.
  EXPECT_EQ(place_submeshes(c48, {{1, 8}, {2, 8}, {1, 4}, {1, 4}}).value(),
            (Ids{{16, 17, 18, 19, 20, 21, 22, 23},
                 {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
                 {24, 25, 26, 27},
                 {28, 29, 30, 31}}));
}

TEST(SubmeshTest, PlacementErrors) {
  Cluster c24 = make_cluster(2, 4);
  auto short_by_two = place_submeshes(c24, {{1, 4}, {1, 2}});
  ASSERT_FALSE(short_by_two.ok());
  EXPECT_EQ(short_by_two.status().message(),
            "the stages' sub-meshes hold 6 devices but the cluster has 8 (2 hosts × 4); every "
            "device must be used exactly once");
  auto wide = place_submeshes(c24, {{1, 8}});
  ASSERT_FALSE(wide.ok());
  EXPECT_EQ(wide.status().message(),
            "stage 0's sub-mesh (1, 8) does not fit a cluster of 2 hosts × 4 devices: expected "
            "(1, k) with 1 ≤ k ≤ 4 or (h, 4) with 1 ≤ h ≤ 2");
  EXPECT_FALSE(place_submeshes(c24, {{2, 2}, {1, 4}}).ok());
  // Three slices of 4 cannot pack into two hosts of 6, although 12 = 2 × 6.
  auto unpackable = place_submeshes(make_cluster(2, 6), {{1, 4}, {1, 4}, {1, 4}});
  ASSERT_FALSE(unpackable.ok());
  EXPECT_EQ(unpackable.status().code(), core::StatusCode::kInvalidArgument);
  EXPECT_NE(unpackable.status().message().find("cannot place stage 2's sub-mesh (1, 4)"),
            std::string::npos)
      << unpackable.status().message();
}

/// Whether single-host slices `sizes` pack exactly into `hosts` bins of `cap`.
bool packs(std::vector<int64_t> sizes, int64_t hosts, int64_t cap) {
  std::vector<int64_t> free(static_cast<size_t>(hosts), cap);
  std::function<bool(size_t)> go = [&](size_t i) {
    if (i == sizes.size()) return true;
    for (auto& f : free) {
      if (f >= sizes[i]) {
        f -= sizes[i];
        if (go(i + 1)) return true;
        f += sizes[i];
      }
    }
    return false;
  };
  return go(0);
}

TEST(SubmeshTest, PlacementMatchesExhaustivePacking) {
  std::mt19937 rng(7);
  int placed = 0, refused = 0;
  for (int trial = 0; trial < 300; ++trial) {
    int64_t hosts = 1 + static_cast<int64_t>(rng() % 3);
    int64_t per_host = std::vector<int64_t>{2, 3, 4, 6, 8}[rng() % 5];
    Cluster c = make_cluster(hosts, per_host);
    std::vector<SubmeshShape> choices = enumerate_submeshes(c);
    std::vector<SubmeshShape> stages;
    int64_t total = 0;
    while (total < c.num_devices()) {
      SubmeshShape s = choices[rng() % choices.size()];
      if (total + s.num_devices() > c.num_devices()) continue;
      stages.push_back(s);
      total += s.num_devices();
    }
    std::vector<int64_t> slices;
    int64_t free_hosts = hosts;
    for (const auto& s : stages) {
      if (s.num_hosts == 1) slices.push_back(s.devices_per_host);
      else free_hosts -= s.num_hosts;
    }
    bool expected = free_hosts >= 0 && packs(slices, free_hosts, per_host);
    auto ids = place_submeshes(c, stages);
    ASSERT_EQ(ids.ok(), expected) << c.to_string() << " " << join(stages);
    if (!ids.ok()) {
      ++refused;
      continue;
    }
    ++placed;
    std::vector<int64_t> all;
    for (size_t s = 0; s < stages.size(); ++s) {
      const auto& list = (*ids)[s];
      ASSERT_EQ(static_cast<int64_t>(list.size()), stages[s].num_devices());
      if (stages[s].num_hosts == 1) {
        EXPECT_EQ(c.host_of(list.front()), c.host_of(list.back())) << "straddles hosts";
      }
      all.insert(all.end(), list.begin(), list.end());
    }
    std::sort(all.begin(), all.end());
    for (int64_t d = 0; d < c.num_devices(); ++d) ASSERT_EQ(all[static_cast<size_t>(d)], d);
  }
  EXPECT_GT(placed, 100);
  EXPECT_GT(refused, 0);  // hosts of 3 or 6 devices leave some unpackable
}

}  // namespace
}  // namespace alpa::mesh
