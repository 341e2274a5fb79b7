// Tests plan_cross_mesh(): a golden plan, local copies, sender balance and
// host preference, block-interleaved pieces, the α-β estimate, the text
// round trip, error messages, and a brute-force simulation of random plans
// element by element against an independent "which elements does a device
// hold" reference.
#include "plan/cross_mesh.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <tuple>

#include <fmt/format.h>
#include <gtest/gtest.h>

namespace alpa::plan {
namespace {

using sharding::ShardingSpec;

mesh::Cluster cluster(int64_t hosts, int64_t per_host) {
  return mesh::cluster_preset("cpu-gloo", hosts, per_host).value();
}

mesh::DeviceMesh make_mesh(const mesh::Cluster& c, std::array<int64_t, 2> shape,
                           std::vector<int64_t> ids) {
  return mesh::DeviceMesh::create(c, shape, std::move(ids)).value();
}

ShardingSpec spec(const std::string& text) { return ShardingSpec::parse(text).value(); }

CrossMeshPlan plan_ok(const ir::Shape& shape, const mesh::DeviceMesh& a, const std::string& sa,
                      const mesh::DeviceMesh& b, const std::string& sb, int64_t itemsize = 4) {
  auto p = plan_cross_mesh(shape, itemsize, a, spec(sa), b, spec(sb));
  EXPECT_TRUE(p.ok()) << p.status().to_string();
  return p.ok() ? *p : CrossMeshPlan{};
}

TEST(CrossMeshTest, GoldenRowsToColumns) {
  mesh::Cluster c = cluster(1, 4);
  CrossMeshPlan p = plan_ok({4, 4}, make_mesh(c, {2, 1}, {0, 1}), "S0R",
                            make_mesh(c, {2, 1}, {2, 3}), "RS0");
  EXPECT_EQ(p.to_string(),
            "cross-mesh plan for [4,4] x 4 B: 4 transfers\n"
            "dev 0 -> dev 2: [0:2, 0:2] 16 B; local [0:2, 0:2] -> [0:2, 0:2]\n"
            "dev 1 -> dev 2: [2:4, 0:2] 16 B; local [0:2, 0:2] -> [2:4, 0:2]\n"
            "dev 0 -> dev 3: [0:2, 2:4] 16 B; local [0:2, 2:4] -> [0:2, 0:2]\n"
            "dev 1 -> dev 3: [2:4, 2:4] 16 B; local [0:2, 2:4] -> [2:4, 0:2]\n");
  EXPECT_EQ(p.network_bytes(), 4 * 16);
  EXPECT_EQ(p.link_bytes(), (std::vector<LinkBytes>{{0, 2, 16}, {0, 3, 16}, {1, 2, 16}, {1, 3, 16}}));
  DeviceSchedule s0 = p.schedule_of(0);
  EXPECT_EQ(s0.sends, (std::vector<int64_t>{0, 2}));
  EXPECT_TRUE(s0.receives.empty() && s0.local_copies.empty());
  EXPECT_EQ(p.schedule_of(3).receives, (std::vector<int64_t>{2, 3}));
  // Each device sends (and each receives) two 16-byte messages, one host.
  EXPECT_DOUBLE_EQ(cross_mesh_seconds(p, c), 2 * (c.intra_host.alpha + 16 * c.intra_host.beta));
}

TEST(CrossMeshTest, TextRoundTripsAndParseErrorsExplain) {
  mesh::Cluster c = cluster(1, 4);
  CrossMeshPlan p = plan_ok({4, 6}, make_mesh(c, {2, 2}, {0, 1, 2, 3}), "S01R",
                            make_mesh(c, {2, 1}, {3, 1}), "RS0x3");
  auto back = CrossMeshPlan::parse(p.to_string());
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(*back, p);
  EXPECT_EQ(parse_box("[]").value(), Box{});
  EXPECT_EQ(parse_box("[1:3, 0:2]").value(), (Box{{1, 3}, {0, 2}}));
  EXPECT_EQ(parse_box("[1:3,").status().message(),
            "bad box '[1:3,': expected '[begin:end, ...]' with one range per dim, e.g. '[0:4, 0:8]'");
  auto bad = CrossMeshPlan::parse("cross-mesh plan for [4] x 4 B: 1 transfers\ndev 0 -> 1");
  EXPECT_EQ(bad.status().message(),
            "bad transfer on line 2 'dev 0 -> 1': expected 'dev 0 -> dev 2: [0:2, 0:4] 32 B; "
            "local [0:2, 0:4] -> [0:2, 0:4]'");
  EXPECT_EQ(CrossMeshPlan::parse("cross-mesh plan for [4] x 4 B: 2 transfers\n").status().message(),
            "cross-mesh plan header announces 2 transfers, got 0");
}

TEST(CrossMeshTest, SharedDeviceCopiesLocally) {
  mesh::Cluster c = cluster(1, 4);
  // R on {0,1} -> S0 on {1,2}: device 1 already holds everything it needs.
  CrossMeshPlan p = plan_ok({8}, make_mesh(c, {2, 1}, {0, 1}), "R",
                            make_mesh(c, {2, 1}, {1, 2}), "S0");
  ASSERT_EQ(p.transfers.size(), 2u);
  EXPECT_EQ(p.transfers[0].to_string(), "dev 1 -> dev 1: [0:4] 16 B; local [0:4] -> [0:4]");
  EXPECT_EQ(p.transfers[1].to_string(), "dev 0 -> dev 2: [4:8] 16 B; local [4:8] -> [0:4]");
  EXPECT_EQ(p.schedule_of(1).local_copies, (std::vector<int64_t>{0}));
  EXPECT_EQ(p.network_bytes(), 16);
  EXPECT_DOUBLE_EQ(cross_mesh_seconds(p, c), c.intra_host.alpha + 16 * c.intra_host.beta);
}

TEST(CrossMeshTest, ReplicasShareTheSends) {
  mesh::Cluster c = cluster(2, 4);
  // R on host 0's four devices -> R on host 1's four: one sender each.
  CrossMeshPlan p = plan_ok({4, 4}, make_mesh(c, {4, 1}, {0, 1, 2, 3}), "RR",
                            make_mesh(c, {2, 2}, {4, 5, 6, 7}), "RR");
  ASSERT_EQ(p.transfers.size(), 4u);
  for (int64_t i = 0; i < 4; ++i) {
    EXPECT_EQ(p.transfers[static_cast<size_t>(i)].src_device, i);
    EXPECT_EQ(p.transfers[static_cast<size_t>(i)].dst_device, 4 + i);
  }
  EXPECT_DOUBLE_EQ(cross_mesh_seconds(p, c), c.inter_host.alpha + 64 * c.inter_host.beta);
}

TEST(CrossMeshTest, PrefersSenderOnTheReceiversHost) {
  mesh::Cluster c = cluster(2, 2);  // host 0: {0,1}, host 1: {2,3}
  CrossMeshPlan p = plan_ok({4}, make_mesh(c, {2, 1}, {0, 2}), "R",
                            make_mesh(c, {2, 1}, {1, 3}), "R");
  ASSERT_EQ(p.transfers.size(), 2u);
  EXPECT_EQ(p.transfers[0].src_device, 0);  // -> dev 1 on host 0
  EXPECT_EQ(p.transfers[1].src_device, 2);  // -> dev 3 on host 1
}

TEST(CrossMeshTest, BlockInterleavedPiecesAreSeparateNarrows) {
  mesh::Cluster c = cluster(1, 4);
  // S0x3 on 2 devices of a [6] tensor: dev 0 holds {0, 2, 4}, dev 1 {1, 3, 5}.
  CrossMeshPlan p = plan_ok({6}, make_mesh(c, {2, 1}, {0, 1}), "S0x3",
                            make_mesh(c, {1, 1}, {2}), "R", 2);
  std::string text;
  for (const Transfer& t : p.transfers) text += t.to_string() + "\n";
  EXPECT_EQ(text,
            "dev 0 -> dev 2: [0:1] 2 B; local [0:1] -> [0:1]\n"
            "dev 0 -> dev 2: [2:3] 2 B; local [1:2] -> [2:3]\n"
            "dev 0 -> dev 2: [4:5] 2 B; local [2:3] -> [4:5]\n"
            "dev 1 -> dev 2: [1:2] 2 B; local [0:1] -> [1:2]\n"
            "dev 1 -> dev 2: [3:4] 2 B; local [1:2] -> [3:4]\n"
            "dev 1 -> dev 2: [5:6] 2 B; local [2:3] -> [5:6]\n");
  // Same layout on both sides: all local copies, one per run (a device's
  // runs are not one box in global coordinates).
  CrossMeshPlan same = plan_ok({6}, make_mesh(c, {2, 1}, {0, 1}), "S0x3",
                               make_mesh(c, {2, 1}, {0, 1}), "S0x3");
  ASSERT_EQ(same.transfers.size(), 6u);
  EXPECT_EQ(same.network_bytes(), 0);
  EXPECT_EQ(same.transfers[1].to_string(), "dev 0 -> dev 0: [2:3] 4 B; local [1:2] -> [1:2]");
}

TEST(CrossMeshTest, ScalarAndEmptyTensors) {
  mesh::Cluster c = cluster(1, 4);
  CrossMeshPlan scalar = plan_ok({}, make_mesh(c, {2, 1}, {0, 1}), "",
                                 make_mesh(c, {2, 1}, {2, 3}), "", 8);
  EXPECT_EQ(scalar.to_string(),
            "cross-mesh plan for [] x 8 B: 2 transfers\n"
            "dev 0 -> dev 2: [] 8 B; local [] -> []\n"
            "dev 1 -> dev 3: [] 8 B; local [] -> []\n");
  EXPECT_EQ(CrossMeshPlan::parse(scalar.to_string()).value(), scalar);
  CrossMeshPlan empty = plan_ok({0, 4}, make_mesh(c, {2, 1}, {0, 1}), "S0R",
                                make_mesh(c, {2, 1}, {2, 3}), "RS0");
  EXPECT_TRUE(empty.transfers.empty());
}

TEST(CrossMeshTest, ErrorsExplain) {
  mesh::Cluster c = cluster(1, 4);
  mesh::DeviceMesh a = make_mesh(c, {2, 1}, {0, 1});
  mesh::DeviceMesh b = make_mesh(c, {2, 1}, {2, 3});
  auto partial = plan_cross_mesh({4, 4}, 4, a, spec("RRP0"), b, spec("S0R"));
  EXPECT_EQ(partial.status().code(), core::StatusCode::kInvalidArgument);
  EXPECT_EQ(partial.status().message(),
            "cross-mesh resharding: the source spec 'RRP0' holds partial sums (P); the sender "
            "must reduce first (all-reduce or reduce-scatter on its own mesh), then reshard a "
            "spec without P");
  auto indivisible = plan_cross_mesh({3, 4}, 4, a, spec("RR"), b, spec("S0R"));
  EXPECT_EQ(indivisible.status().message(),
            "cross-mesh resharding destination: sharding spec 'S0R' splits dim 0 (size 3) into "
            "2 pieces on mesh (2, 1) over devices [2, 3], which does not divide it; pick a spec "
            "or mesh whose axis sizes divide the dim");
  auto rank = plan_cross_mesh({4}, 4, a, spec("S0R"), b, spec("S0"));
  EXPECT_EQ(rank.status().message(),
            "cross-mesh resharding source: sharding spec 'S0R' has 2 dims but the tensor [4] has 1");
  auto itemsize = plan_cross_mesh({4}, 0, a, spec("S0"), b, spec("S0"));
  EXPECT_EQ(itemsize.status().message(),
            "cross-mesh resharding: itemsize must be at least 1 byte, got 0");
}

// ---- brute force ------------------------------------------------------------------

// Reference layout, written from sharding_spec.h's definition: on dim d the
// device's piece index i is the mixed-radix number of its coordinates on
// the dim's axes (in spec order); with n pieces and block factor b the dim
// is viewed as [b, N/b] and the inner part split in n, so global element x
// is held iff (x mod N/b) div (N/(b·n)) == i. The local shard keeps held
// elements in increasing global order. Returns, per dim, the held globals.
std::vector<std::vector<int64_t>> held(const ir::Shape& shape, const ShardingSpec& s,
                                       const mesh::DeviceMesh& m, int64_t k) {
  std::array<int64_t, 2> c = m.coordinate(k);
  std::vector<std::vector<int64_t>> out;
  for (size_t d = 0; d < shape.size(); ++d) {
    int64_t i = 0, n = 1;
    for (int a : s.dims[d]) {
      i = i * m.axis_size(a) + c[static_cast<size_t>(a)];
      n *= m.axis_size(a);
    }
    int64_t b = s.block(static_cast<int64_t>(d)), len = shape[d] / b;
    std::vector<int64_t> xs;
    for (int64_t x = 0; x < shape[d]; ++x) {
      if ((x % len) / (len / n) == i) xs.push_back(x);
    }
    out.push_back(xs);
  }
  return out;
}

int64_t flat(const std::vector<int64_t>& index, const std::vector<int64_t>& dims) {
  int64_t f = 0;
  for (size_t d = 0; d < dims.size(); ++d) f = f * dims[d] + index[d];
  return f;
}

// Calls fn(offset per dim) for every element of a box of `sizes`.
template <typename Fn>
void for_each_index(const std::vector<int64_t>& sizes, Fn fn) {
  if (std::any_of(sizes.begin(), sizes.end(), [](int64_t n) { return n == 0; })) return;
  std::vector<int64_t> at(sizes.size(), 0);
  while (true) {
    fn(at);
    size_t d = at.size();
    while (d > 0 && ++at[d - 1] == sizes[d - 1]) at[--d] = 0;
    if (d == 0) return;
  }
}

struct Side {
  mesh::DeviceMesh mesh;
  ShardingSpec spec;
  std::map<int64_t, std::vector<std::vector<int64_t>>> held;  // device -> per dim
  std::vector<int64_t> local_dims(int64_t device) const {
    std::vector<int64_t> dims;
    for (const auto& xs : held.at(device)) dims.push_back(static_cast<int64_t>(xs.size()));
    return dims;
  }
};

Side make_side(const ir::Shape& shape, mesh::DeviceMesh m, ShardingSpec s) {
  Side side{m, s, {}};
  for (int64_t k = 0; k < m.num_devices(); ++k) {
    side.held[m.device_ids()[static_cast<size_t>(k)]] = held(shape, s, m, k);
  }
  return side;
}

// Applies `p` element by element; checks every destination shard and that
// no element arrives twice.
void simulate(const ir::Shape& shape, const Side& src, const Side& dst, const CrossMeshPlan& p) {
  std::map<int64_t, std::vector<int64_t>> out, hits;  // dst device -> flat shard
  for (const auto& [dev, xs] : dst.held) {
    std::vector<int64_t> dims = dst.local_dims(dev);
    int64_t n = std::accumulate(dims.begin(), dims.end(), int64_t{1}, std::multiplies<>());
    out[dev].assign(static_cast<size_t>(n), -1);
    hits[dev].assign(static_cast<size_t>(n), 0);
  }
  for (const Transfer& t : p.transfers) {
    ASSERT_TRUE(src.held.count(t.src_device) && dst.held.count(t.dst_device)) << t.to_string();
    const auto& sh = src.held.at(t.src_device);
    const auto& dh = dst.held.at(t.dst_device);
    std::vector<int64_t> sizes;
    for (const Range& r : t.box) sizes.push_back(r.size());
    ASSERT_EQ(t.bytes, box_numel(t.box) * p.itemsize);
    for_each_index(sizes, [&](const std::vector<int64_t>& off) {
      std::vector<int64_t> g, sl, dl;
      for (size_t d = 0; d < off.size(); ++d) {
        g.push_back(t.box[d].begin + off[d]);
        sl.push_back(t.src_local[d].begin + off[d]);
        dl.push_back(t.dst_local[d].begin + off[d]);
        ASSERT_LT(t.src_local[d].end, static_cast<int64_t>(sh[d].size()) + 1);
        ASSERT_LT(t.dst_local[d].end, static_cast<int64_t>(dh[d].size()) + 1);
        ASSERT_EQ(sh[d][static_cast<size_t>(sl[d])], g[d]) << t.to_string();  // src local ↔ global
        ASSERT_EQ(dh[d][static_cast<size_t>(dl[d])], g[d]) << t.to_string();  // dst local ↔ global
      }
      size_t at = static_cast<size_t>(flat(dl, dst.local_dims(t.dst_device)));
      out[t.dst_device][at] = flat(g, shape);  // the source value: distinct per element
      ++hits[t.dst_device][at];
    });
    if (!t.is_local_copy() && src.held.count(t.dst_device)) {
      // The receiver holds none of these elements on the source side.
      const auto& own = src.held.at(t.dst_device);
      bool holds_all = true;
      for (size_t d = 0; d < t.box.size(); ++d) {
        holds_all &= std::binary_search(own[d].begin(), own[d].end(), t.box[d].begin);
      }
      EXPECT_FALSE(holds_all) << "should copy locally: " << t.to_string();
    }
  }
  for (const auto& [dev, xs] : dst.held) {
    std::vector<int64_t> dims = dst.local_dims(dev);
    for_each_index(dims, [&](const std::vector<int64_t>& loc) {
      std::vector<int64_t> g;
      for (size_t d = 0; d < loc.size(); ++d) g.push_back(xs[d][static_cast<size_t>(loc[d])]);
      size_t at = static_cast<size_t>(flat(loc, dims));
      ASSERT_EQ(hits[dev][at], 1) << "device " << dev << " element " << at;
      ASSERT_EQ(out[dev][at], flat(g, shape));
    });
  }
}

ShardingSpec random_spec(int64_t rank, const mesh::DeviceMesh& m, std::mt19937& rng) {
  ShardingSpec s = ShardingSpec::replicated(rank);
  std::vector<int> axes{0, 1};
  if (rng() % 2) std::swap(axes[0], axes[1]);  // S10 as well as S01
  for (int a : axes) {
    int64_t pick = static_cast<int64_t>(rng() % static_cast<uint32_t>(rank + 1)) - 1;
    if (pick >= 0 && (m.axis_size(a) > 1 || rng() % 4 == 0)) s.dims[static_cast<size_t>(pick)].push_back(a);
  }
  for (int64_t d = 0; d < rank; ++d) {
    if (!s.dims[static_cast<size_t>(d)].empty() && rng() % 3 == 0) s.set_block(d, 2 + rng() % 2);
  }
  return s;
}

TEST(CrossMeshTest, BruteForceRandomPlans) {
  mesh::Cluster c = cluster(2, 4);
  const std::vector<std::array<int64_t, 2>> shapes{{1, 1}, {2, 1}, {4, 1}, {2, 2}, {1, 2}};
  const std::vector<int64_t> sizes{1, 2, 4, 6, 12, 24};
  std::mt19937 rng(20240611);
  int checked = 0, with_blocks = 0, with_shared = 0;
  for (int trial = 0; trial < 1000; ++trial) {
    int64_t rank = 1 + rng() % 3;
    ir::Shape shape;
    for (int64_t d = 0; d < rank; ++d) shape.push_back(sizes[rng() % (rank == 3 ? 4 : 6)]);
    std::vector<int64_t> ids(8);
    std::iota(ids.begin(), ids.end(), 0);
    std::shuffle(ids.begin(), ids.end(), rng);
    auto ms = shapes[rng() % shapes.size()], md = shapes[rng() % shapes.size()];
    std::vector<int64_t> sid(ids.begin(), ids.begin() + ms[0] * ms[1]);
    if (rng() % 2) std::shuffle(ids.begin(), ids.end(), rng);  // overlap possible, else disjoint
    std::vector<int64_t> did(ids.end() - md[0] * md[1], ids.end());
    mesh::DeviceMesh a = make_mesh(c, ms, sid), b = make_mesh(c, md, did);
    ShardingSpec sa = random_spec(rank, a, rng), sb = random_spec(rank, b, rng);
    if (!sa.check(shape, a).ok() || !sb.check(shape, b).ok()) continue;
    auto p = plan_cross_mesh(shape, 2, a, sa, b, sb);
    ASSERT_TRUE(p.ok()) << p.status().to_string();
    SCOPED_TRACE(fmt::format("{} {} {} -> {} {}", ir::shape_to_string(shape), a.to_string(),
                             sa.to_string(), b.to_string(), sb.to_string()));
    simulate(shape, make_side(shape, a, sa), make_side(shape, b, sb), *p);
    EXPECT_TRUE(std::is_sorted(p->transfers.begin(), p->transfers.end(),
                               [](const Transfer& x, const Transfer& y) {
                                 return std::tie(x.dst_device, x.src_device, x.box) <
                                        std::tie(y.dst_device, y.src_device, y.box);
                               }));
    EXPECT_EQ(*p, plan_cross_mesh(shape, 2, a, sa, b, sb).value());  // deterministic
    EXPECT_EQ(CrossMeshPlan::parse(p->to_string()).value(), *p);
    ++checked;
    with_blocks += !sa.normalized_blocks().empty() || !sb.normalized_blocks().empty();
    std::set<int64_t> both(sid.begin(), sid.end());
    with_shared += std::any_of(did.begin(), did.end(), [&](int64_t d) { return both.count(d) > 0; });
  }
  EXPECT_GT(checked, 400);
  EXPECT_GT(with_blocks, 80);
  EXPECT_GT(with_shared, 100);
}

}  // namespace
}  // namespace alpa::plan
