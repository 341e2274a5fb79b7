// Tests every resharding plan by simulation, exhaustively: each device's
// piece is a list of global indices per dim plus the partial-sum addends it
// holds; the plan's steps are applied as the runtime executes them
// (alpa_torch/emit/local_ops.py reshard_steps, runtime/collectives.cc), and each
// device must end with exactly its piece of the target spec. The backward
// duals, run in reverse on the gradient, must end in the source's layout.
// Every pair of specs of 2-D and 3-D tensors (R, S0, S1, S01, S10 per dim,
// partial sums, block layouts) on meshes up to 8 devices.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "sharding/resharding.h"

namespace alpa::sharding {
namespace {

using Index = std::vector<int64_t>;
/// One addend of a partial sum: the device coordinate it came from on each
/// axis the source holds partial sums over (-1 elsewhere).
using Addend = std::array<int64_t, 2>;

struct Piece {
  std::vector<Index> index;  ///< per dim: global indices, in local order
  std::set<Addend> addends;  ///< the same for every element of the piece
  bool operator==(const Piece& o) const { return index == o.index && addends == o.addends; }
};

bool has(const MeshAxes& axes, int a) { return std::find(axes.begin(), axes.end(), a) != axes.end(); }

// Piece `p` of `count` of a dim of `size` in `block` blocks: from each
// block, its p-th part.
Index piece_of(const Index& whole, int64_t p, int64_t count, int64_t block) {
  int64_t per_block = static_cast<int64_t>(whole.size()) / block, part = per_block / count;
  EXPECT_EQ(part * count * block, static_cast<int64_t>(whole.size())) << "does not divide";
  Index out;
  for (int64_t b = 0; b < block; ++b) {
    for (int64_t i = 0; i < part; ++i) out.push_back(whole[static_cast<size_t>(b * per_block + p * part + i)]);
  }
  return out;
}

// The pieces of one dim, in rank order, joined block by block.
Index join(const std::vector<const Index*>& parts, int64_t block) {
  Index out;
  for (int64_t b = 0; b < block; ++b) {
    for (const Index* p : parts) {
      int64_t per_block = static_cast<int64_t>(p->size()) / block;
      out.insert(out.end(), p->begin() + b * per_block, p->begin() + (b + 1) * per_block);
    }
  }
  return out;
}

class Simulator {
 public:
  Simulator(std::array<int64_t, 2> mesh, ir::Shape shape) : mesh_(mesh), shape_(std::move(shape)) {}

  int64_t devices() const { return mesh_[0] * mesh_[1]; }
  Addend coord(int64_t k) const { return {k / mesh_[1], k % mesh_[1]}; }

  /// Device k's piece of a tensor laid out as `spec`; `addends`: what its
  /// elements sum (empty: the whole value, one addend with no coordinate).
  Piece expected(const ShardingSpec& spec, int64_t k, std::set<Addend> addends) const {
    Piece piece;
    for (int64_t d = 0; d < spec.rank(); ++d) {
      Index whole(static_cast<size_t>(shape_[static_cast<size_t>(d)]));
      for (size_t i = 0; i < whole.size(); ++i) whole[i] = static_cast<int64_t>(i);
      int64_t p = 0, count = 1;
      for (int a : spec.dims[static_cast<size_t>(d)]) {
        p = p * mesh_[static_cast<size_t>(a)] + coord(k)[static_cast<size_t>(a)];
        count *= mesh_[static_cast<size_t>(a)];
      }
      piece.index.push_back(piece_of(whole, p, count, spec.block(d)));
    }
    piece.addends = std::move(addends);
    return piece;
  }

  /// The devices of k's group on `axis`, in rank order.
  std::vector<int64_t> group(int64_t k, int axis) const {
    std::vector<int64_t> out;
    for (int64_t r = 0; r < mesh_[static_cast<size_t>(axis)]; ++r) {
      Addend c = coord(k);
      c[static_cast<size_t>(axis)] = r;
      out.push_back(c[0] * mesh_[1] + c[1]);
    }
    return out;
  }

  void slice(std::vector<Piece>& ps, int axis, int64_t dim, int64_t block) const {
    for (int64_t k = 0; k < devices(); ++k) {
      Index& ix = ps[static_cast<size_t>(k)].index[static_cast<size_t>(dim)];
      ix = piece_of(ix, coord(k)[static_cast<size_t>(axis)], mesh_[static_cast<size_t>(axis)], block);
    }
  }

  /// All-gather along `dim`; false when the group's pieces differ
  /// elsewhere (the concatenation would mix values).
  bool gather(std::vector<Piece>& ps, int axis, int64_t dim, int64_t block) const {
    std::vector<Piece> out = ps;
    for (int64_t k = 0; k < devices(); ++k) {
      std::vector<const Index*> parts;
      for (int64_t m : group(k, axis)) {
        const Piece& other = ps[static_cast<size_t>(m)];
        for (size_t d = 0; d < other.index.size(); ++d) {
          if (static_cast<int64_t>(d) != dim && other.index[d] != ps[static_cast<size_t>(k)].index[d]) return false;
        }
        if (other.addends != ps[static_cast<size_t>(k)].addends) return false;
        parts.push_back(&other.index[static_cast<size_t>(dim)]);
      }
      out[static_cast<size_t>(k)].index[static_cast<size_t>(dim)] = join(parts, block);
    }
    ps = std::move(out);
    return true;
  }

  /// All-reduce: false unless the group holds the same elements and
  /// distinct addends (else the sum mixes or double counts).
  bool all_reduce(std::vector<Piece>& ps, int axis) const {
    std::vector<Piece> out = ps;
    for (int64_t k = 0; k < devices(); ++k) {
      std::set<Addend> sum;
      size_t total = 0;
      for (int64_t m : group(k, axis)) {
        const Piece& other = ps[static_cast<size_t>(m)];
        if (other.index != ps[static_cast<size_t>(k)].index) return false;
        sum.insert(other.addends.begin(), other.addends.end());
        total += other.addends.size();
      }
      if (sum.size() != total) return false;
      out[static_cast<size_t>(k)].addends = sum;
    }
    ps = std::move(out);
    return true;
  }

  /// Runs `steps` forward as local_ops.reshard_steps does.
  bool forward(std::vector<Piece>& ps, const ReshardPlan& plan, const ShardingSpec& from,
               const ShardingSpec& to) const {
    for (const ReshardStep& s : plan.steps) {
      bool ok = true;
      switch (s.op) {
        case ReshardOp::kAllReduce: ok = all_reduce(ps, s.axis); break;
        case ReshardOp::kReduceScatter:
          ok = all_reduce(ps, s.axis);
          slice(ps, s.axis, s.to_dim, to.block(s.to_dim));
          break;
        case ReshardOp::kSlice: slice(ps, s.axis, s.to_dim, to.block(s.to_dim)); break;
        case ReshardOp::kAllToAll:
          ok = gather(ps, s.axis, s.from_dim, from.block(s.from_dim));
          slice(ps, s.axis, s.to_dim, to.block(s.to_dim));
          break;
        case ReshardOp::kAllGather: ok = gather(ps, s.axis, s.from_dim, from.block(s.from_dim)); break;
      }
      if (!ok) return false;
    }
    return true;
  }

  /// Runs the steps' backward duals in reverse on a gradient (complete:
  /// no addends), as autograd does with the runtime's ops.
  bool backward(std::vector<Piece>& ps, const ReshardPlan& plan, const ShardingSpec& from,
                const ShardingSpec& to) const {
    for (auto it = plan.steps.rbegin(); it != plan.steps.rend(); ++it) {
      const ReshardStep& s = *it;
      bool ok = true;
      switch (s.op) {
        case ReshardOp::kAllReduce: break;  // identity
        case ReshardOp::kReduceScatter:
        case ReshardOp::kSlice: ok = gather(ps, s.axis, s.to_dim, to.block(s.to_dim)); break;
        case ReshardOp::kAllToAll:
          ok = gather(ps, s.axis, s.to_dim, to.block(s.to_dim));
          slice(ps, s.axis, s.from_dim, from.block(s.from_dim));
          break;
        case ReshardOp::kAllGather: slice(ps, s.axis, s.from_dim, from.block(s.from_dim)); break;
      }
      if (!ok) return false;
    }
    return true;
  }

 private:
  std::array<int64_t, 2> mesh_;
  ir::Shape shape_;
};

// Every spec of a rank-`rank` tensor: each mesh axis unused, splitting a
// dim (both axes on one dim in either order) or holding partial sums; each
// split dim also in blocks of 2.
std::vector<ShardingSpec> all_specs(int64_t rank) {
  std::vector<ShardingSpec> out;
  const int64_t kUnused = -1, kPartial = rank;
  for (int64_t c0 = kUnused; c0 <= kPartial; ++c0) {
    for (int64_t c1 = kUnused; c1 <= kPartial; ++c1) {
      for (bool one_first : {true, false}) {
        if (!one_first && (c0 != c1 || c0 < 0 || c0 == kPartial)) continue;
        ShardingSpec spec = ShardingSpec::replicated(rank);
        std::array<std::pair<int, int64_t>, 2> order{{{0, c0}, {1, c1}}};
        if (!one_first) std::swap(order[0], order[1]);
        for (const auto& [axis, choice] : order) {
          if (choice == kPartial) spec.partial.push_back(axis);
          if (choice >= 0 && choice < rank) spec.dims[static_cast<size_t>(choice)].push_back(axis);
        }
        out.push_back(spec);
        for (int64_t d = 0; d < rank; ++d) {
          if (spec.dims[static_cast<size_t>(d)].empty()) continue;
          ShardingSpec blocked = spec;
          blocked.set_block(d, 2);
          out.push_back(blocked);
        }
      }
    }
  }
  return out;
}

std::set<Addend> source_addends(const ShardingSpec& from, Addend at) {
  Addend a{-1, -1};
  for (int axis : from.partial) a[static_cast<size_t>(axis)] = at[static_cast<size_t>(axis)];
  return {a};
}

std::set<Addend> target_addends(const ShardingSpec& from, const ShardingSpec& to, Addend at,
                                std::array<int64_t, 2> mesh) {
  std::set<Addend> out{{-1, -1}};
  for (int axis : from.partial) {
    std::set<Addend> next;
    for (Addend a : out) {
      for (int64_t c = 0; c < mesh[static_cast<size_t>(axis)]; ++c) {
        if (has(to.partial, axis) && c != at[static_cast<size_t>(axis)]) continue;
        a[static_cast<size_t>(axis)] = c;
        next.insert(a);
      }
    }
    out = next;
  }
  return out;
}

ShardingSpec without_partial(ShardingSpec s) {
  s.partial.clear();
  return s;
}

// "" when `plan` turns `from` into `to` exactly, forward and backward;
// else what went wrong.
std::string check_pair(const Simulator& sim, std::array<int64_t, 2> mesh, const ShardingSpec& from,
                       const ShardingSpec& to, const ReshardPlan& plan) {
  std::vector<Piece> ps, want, grads, want_grads;
  for (int64_t k = 0; k < sim.devices(); ++k) {
    ps.push_back(sim.expected(from, k, source_addends(from, sim.coord(k))));
    want.push_back(sim.expected(to, k, target_addends(from, to, sim.coord(k), mesh)));
    grads.push_back(sim.expected(without_partial(to), k, {}));
    want_grads.push_back(sim.expected(without_partial(from), k, {}));
  }
  if (!sim.forward(ps, plan, from, to)) return "a collective mixes pieces that differ";
  for (int64_t k = 0; k < sim.devices(); ++k) {
    if (!(ps[static_cast<size_t>(k)] == want[static_cast<size_t>(k)])) {
      return fmt::format("device {} ends with the wrong piece", k);
    }
  }
  if (!sim.backward(grads, plan, from, to)) return "a backward collective mixes pieces that differ";
  if (grads != want_grads) return "the gradient ends in the wrong layout";
  return "";
}

TEST(ReshardingExhaustiveTest, EveryPairOfSpecsMovesEveryElementRight) {
  const std::vector<std::array<int64_t, 2>> meshes{{2, 2}, {2, 4}, {4, 2}, {1, 4}, {4, 1}, {2, 3}};
  int64_t checked = 0;
  for (int64_t rank : {2, 3}) {
    ir::Shape shape(static_cast<size_t>(rank), 48);  // divides by 2 × (up to 8 devices), and 12
    shape.back() = 96;
    const std::vector<ShardingSpec> specs = all_specs(rank);
    for (const auto& m : meshes) {
      auto cluster = mesh::cluster_preset("a100-40gb", 1, m[0] * m[1]).value();
      mesh::DeviceMesh mesh = mesh::DeviceMesh::create(cluster, m).value();
      Simulator sim(mesh.shape(), shape);  // (1, n) is read as (n, 1)
      ir::TensorMeta meta{shape, ir::DType::kFloat32};
      for (const ShardingSpec& from : specs) {
        for (const ShardingSpec& to : specs) {
          if (!from.check(shape, mesh).ok() || !to.check(shape, mesh).ok()) continue;
          if (!reshard_supported(from, to).ok()) continue;
          ReshardPlan plan = plan_reshard(from, to, meta, mesh, true);
          std::string error = check_pair(sim, mesh.shape(), from, to, plan);
          ASSERT_EQ(error, "") << from.to_string() << " -> " << to.to_string() << " on (" << m[0]
                               << ", " << m[1] << "): " << plan.to_string();
          ++checked;
        }
      }
    }
  }
  EXPECT_GT(checked, 10000);
}

}  // namespace
}  // namespace alpa::sharding
