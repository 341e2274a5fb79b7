// This file implements plan_reshard(): a walk from spec A to spec B in
// steps that are each a local slice or a one-axis collective.
#include "sharding/resharding.h"

#include <algorithm>
#include <stdexcept>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace alpa::sharding {

const char* reshard_op_name(ReshardOp op) {
  switch (op) {
    case ReshardOp::kAllReduce: return "all_reduce";
    case ReshardOp::kReduceScatter: return "reduce_scatter";
    case ReshardOp::kSlice: return "slice";
    case ReshardOp::kAllToAll: return "all_to_all";
    case ReshardOp::kAllGather: return "all_gather";
  }
  return "?";
}

std::string ReshardPlan::to_string() const {
  std::vector<std::string> parts;
  for (const ReshardStep& s : steps) {
    parts.push_back(fmt::format("{}@{}({}->{})", reshard_op_name(s.op), s.axis, s.from_dim, s.to_dim));
  }
  return parts.empty() ? "identity" : fmt::format("{}", fmt::join(parts, ", "));
}

namespace {

bool has(const MeshAxes& axes, int a) {
  return std::find(axes.begin(), axes.end(), a) != axes.end();
}

// `spec` without the mesh axes of size 1 (they cut nothing: S01 on a
// (1, 4) mesh is S1).
ShardingSpec without_unit_axes(ShardingSpec spec, const mesh::DeviceMesh& mesh) {
  auto unit = [&](int a) { return mesh.axis_size(a) <= 1; };
  for (MeshAxes& axes : spec.dims) axes.erase(std::remove_if(axes.begin(), axes.end(), unit), axes.end());
  spec.partial.erase(std::remove_if(spec.partial.begin(), spec.partial.end(), unit), spec.partial.end());
  for (int64_t d = 0; d < spec.rank(); ++d) {
    if (spec.dims[static_cast<size_t>(d)].empty()) spec.set_block(d, 1);
  }
  return spec;
}

// The layout while the plan is walked: per dim, the mesh axes splitting it
// now (outermost first); a dim holds A's block layout until it is gathered
// whole, then B's.
class Walk {
 public:
  Walk(const ShardingSpec& from, const ShardingSpec& to)
      : from_(from), to_(to), cur_(from.dims) {
    for (const MeshAxes& c : cur_) emptied_.push_back(c.empty());
  }

  /// Dim `d` is on its way to B: its axes are a prefix of B's, in a block
  /// layout B shares (a dim split by nothing has none).
  bool on_track(int64_t d) const {
    const MeshAxes& c = cur_[static_cast<size_t>(d)];
    const MeshAxes& t = to_.dims[static_cast<size_t>(d)];
    if (c.size() > t.size() || !std::equal(c.begin(), c.end(), t.begin())) return false;
    return emptied_[static_cast<size_t>(d)] || from_.block(d) == to_.block(d);
  }
  /// The axis B splits dim `d` by next, or -1 (on track and not done only).
  int next_axis(int64_t d) const {
    const MeshAxes& c = cur_[static_cast<size_t>(d)];
    const MeshAxes& t = to_.dims[static_cast<size_t>(d)];
    return on_track(d) && c.size() < t.size() ? t[c.size()] : -1;
  }
  bool in_use(int a) const {
    for (const MeshAxes& c : cur_) {
      if (has(c, a)) return true;
    }
    return has(partial_, a);
  }
  bool done() const {
    for (int64_t d = 0; d < to_.rank(); ++d) {
      if (!on_track(d) || next_axis(d) >= 0) return false;
    }
    return true;
  }
  int64_t rank() const { return to_.rank(); }
  const MeshAxes& axes(int64_t d) const { return cur_[static_cast<size_t>(d)]; }
  void set_partial(MeshAxes p) { partial_ = std::move(p); }
  void pop(int64_t d) {
    cur_[static_cast<size_t>(d)].pop_back();
    if (cur_[static_cast<size_t>(d)].empty()) emptied_[static_cast<size_t>(d)] = true;
  }
  void push(int64_t d, int a) { cur_[static_cast<size_t>(d)].push_back(a); }

 private:
  const ShardingSpec& from_;
  const ShardingSpec& to_;
  std::vector<MeshAxes> cur_;
  std::vector<bool> emptied_;  ///< split by nothing at some point: in B's blocks
  MeshAxes partial_;
};

// Partial sums B does not keep: a reduce-scatter where the axis can split
// its dim of B at once (that dim of A on track, this axis next), else an
// all-reduce (and a slice later).
void plan_partials(const ShardingSpec& from, const ShardingSpec& to, Walk& walk,
                   std::vector<ReshardStep>& steps) {
  MeshAxes pending;
  for (int a : from.partial) {
    if (!has(to.partial, a)) pending.push_back(a);
  }
  for (bool moved = true; moved;) {
    moved = false;
    for (auto it = pending.begin(); it != pending.end(); ++it) {
      int64_t t = to.dim_of_axis(*it);
      if (t < 0 || walk.next_axis(t) != *it) continue;
      steps.push_back({ReshardOp::kReduceScatter, *it, -1, t});
      walk.push(t, *it);
      pending.erase(it);
      moved = true;
      break;
    }
  }
  for (int a : pending) steps.push_back({ReshardOp::kAllReduce, a, -1, -1});
  walk.set_partial(to.partial);  // the sums B keeps hold their axes
}

// Every slice that is local now: dim d on track, B's next axis free.
void plan_slices(Walk& walk, std::vector<ReshardStep>& steps) {
  for (bool moved = true; moved;) {
    moved = false;
    for (int64_t d = 0; d < walk.rank(); ++d) {
      int a = walk.next_axis(d);
      if (a < 0 || walk.in_use(a)) continue;
      steps.push_back({ReshardOp::kSlice, a, -1, d});
      walk.push(d, a);
      moved = true;
    }
  }
}

// One step off a dim that is off track: its innermost axis leaves it (only
// the innermost piece order is contiguous) — to the dim of B that takes
// that axis next (all-to-all), or to nowhere (all-gather).
ReshardStep plan_pop(const ShardingSpec& to, Walk& walk) {
  std::vector<ReshardStep> candidates;
  for (int64_t f = 0; f < walk.rank(); ++f) {
    if (walk.on_track(f)) continue;
    int a = walk.axes(f).back();
    int64_t t = to.dim_of_axis(a);
    if (t >= 0 && t != f && walk.next_axis(t) == a) return {ReshardOp::kAllToAll, a, f, t};
    candidates.push_back({ReshardOp::kAllGather, a, f, -1});
  }
  if (candidates.empty()) throw std::logic_error("plan_reshard: no step leads on");
  return candidates.front();
}

void add_collectives(const ir::TensorMeta& meta, const ShardingSpec& from,
                     const mesh::DeviceMesh& mesh, bool needs_grad, ReshardPlan& plan) {
  double local = static_cast<double>(meta.bytes()) / static_cast<double>(from.total_shards(mesh));
  for (const ReshardStep& s : plan.steps) {
    double n = static_cast<double>(mesh.axis_size(s.axis));
    MeshAxes axes{s.axis};
    auto add = [&](std::vector<Collective>& list, CollectiveKind kind, double bytes, Phase phase) {
      list.push_back(Collective{kind, axes, bytes, phase, "reshard"});
    };
    switch (s.op) {
      case ReshardOp::kAllReduce:
        add(plan.forward, CollectiveKind::kAllReduce, local, Phase::kForward);
        break;
      case ReshardOp::kReduceScatter:
        add(plan.forward, CollectiveKind::kReduceScatter, local, Phase::kForward);
        if (needs_grad) add(plan.backward, CollectiveKind::kAllGather, local, Phase::kBackward);
        local /= n;
        break;
      case ReshardOp::kSlice:
        if (needs_grad) add(plan.backward, CollectiveKind::kAllGather, local, Phase::kBackward);
        local /= n;
        break;
      case ReshardOp::kAllToAll:
        add(plan.forward, CollectiveKind::kAllToAll, local, Phase::kForward);
        if (needs_grad) add(plan.backward, CollectiveKind::kAllToAll, local, Phase::kBackward);
        break;
      case ReshardOp::kAllGather:
        local *= n;
        add(plan.forward, CollectiveKind::kAllGather, local, Phase::kForward);
        // backward: the complete gradient is sliced locally (no collective)
        break;
    }
  }
}

}  // namespace

core::Status reshard_supported(const ShardingSpec& from, const ShardingSpec& to) {
  for (int a : to.partial) {
    if (has(from.partial, a)) continue;
    return core::not_implemented(fmt::format(
        "resharding '{}' to '{}' would turn whole values into partial sums over mesh axis {}; "
        "no step does that (strategies never read partial inputs): reshard to '{}' without "
        "the P suffix", from.to_string(), to.to_string(), a,
        ShardingSpec{to.dims, {}, to.blocks}.to_string()));
  }
  return core::ok_status();
}

ReshardPlan plan_reshard(const ShardingSpec& from_spec, const ShardingSpec& to_spec,
                         const ir::TensorMeta& meta, const mesh::DeviceMesh& mesh,
                         bool needs_grad) {
  const ShardingSpec from = without_unit_axes(from_spec, mesh);
  const ShardingSpec to = without_unit_axes(to_spec, mesh);
  if (core::Status st = reshard_supported(from, to); !st.ok()) {
    throw std::invalid_argument(st.message());
  }
  ReshardPlan plan;
  Walk walk(from, to);
  plan_partials(from, to, walk, plan.steps);
  plan_slices(walk, plan.steps);
  while (!walk.done()) {
    // each axis leaves a dim at most once and joins one at most twice
    if (plan.steps.size() > 12) throw std::logic_error("plan_reshard: the walk does not end");
    ReshardStep s = plan_pop(to, walk);
    plan.steps.push_back(s);
    walk.pop(s.from_dim);
    if (s.op == ReshardOp::kAllToAll) walk.push(s.to_dim, s.axis);
    plan_slices(walk, plan.steps);
  }
  add_collectives(meta, from, mesh, needs_grad, plan);
  return plan;
}

}  // namespace alpa::sharding
