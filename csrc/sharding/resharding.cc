// This file implements plan_reshard().
#include "sharding/resharding.h"

#include <algorithm>

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

// Splitting dim `d` further over axis `a` is a local slice only when `a`
// comes after every axis that already splits it (S1 -> S10 is local:
// each piece is cut again; S1 -> S01 is not: piece i·n1 + j was on
// another device).
bool slice_is_local(const ShardingSpec& from, const ShardingSpec& to, int a, int64_t d) {
  const MeshAxes& target = to.dims[static_cast<size_t>(d)];
  auto pos = std::find(target.begin(), target.end(), a);
  for (int existing : from.dims[static_cast<size_t>(d)]) {
    if (std::find(target.begin(), target.end(), existing) > pos) return false;
  }
  return true;
}

}  // namespace

ReshardPlan plan_reshard(const ShardingSpec& from, const ShardingSpec& to,
                         const ir::TensorMeta& meta, const mesh::DeviceMesh& mesh,
                         bool needs_grad) {
  ReshardPlan plan;
  double local = static_cast<double>(meta.bytes()) / static_cast<double>(from.total_shards(mesh));
  std::vector<ReshardStep> partials, slices, all_to_alls, gathers;
  for (int a = 0; a < 2; ++a) {
    if (mesh.axis_size(a) <= 1) continue;
    int64_t f = from.dim_of_axis(a), t = to.dim_of_axis(a);
    bool fp = has(from.partial, a), tp = has(to.partial, a);
    if (fp) {
      if (tp) continue;
      partials.push_back({t >= 0 ? ReshardOp::kReduceScatter : ReshardOp::kAllReduce, a, -1, t});
    } else if (tp) {
      // R -> P: keep the value on one coordinate, zeros elsewhere; local.
      continue;
    } else if (f < 0 && t >= 0 && slice_is_local(from, to, a, t)) {
      slices.push_back({ReshardOp::kSlice, a, -1, t});
    } else if (f < 0 && t >= 0) {
      // a new outer split of a dim already split inside: the pieces move
      all_to_alls.push_back({ReshardOp::kAllToAll, a, t, t});
    } else if (f >= 0 && t >= 0 && (f != t || from.block(f) != to.block(t))) {
      // another dim, or the same dim with another block layout: a permutation
      all_to_alls.push_back({ReshardOp::kAllToAll, a, f, t});
    } else if (f >= 0 && t < 0) {
      gathers.push_back({ReshardOp::kAllGather, a, f, -1});
    }
  }
  for (auto* group : {&partials, &slices, &all_to_alls, &gathers}) {
    for (const ReshardStep& s : *group) plan.steps.push_back(s);
  }
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
  return plan;
}

}  // namespace alpa::sharding
