// This file implements the candidate-stage pruning rules of the pipeshard
// planner: exact device/stage-count feasibility, Alpa's FLOP/device balance
// tolerance, and idle logical mesh axes.
#include "inter_op/stage_pruning.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <set>

namespace alpa::inter_op {

std::string stage_verdict_name(StageVerdict v) {
  switch (v) {
    case StageVerdict::kCandidate: return "candidate";
    case StageVerdict::kNoRoom: return "no room";
    case StageVerdict::kImbalanced: return "imbalanced";
  }
  return "?";
}

core::StatusOr<StagePruner> StagePruner::create(std::vector<double> layer_flops,
                                                int64_t num_devices, double imbalance_tolerance,
                                                std::optional<int64_t> max_num_stages) {
  if (layer_flops.empty()) return core::invalid_argument("stage pruning needs at least one layer");
  if (num_devices < 1) {
    return core::invalid_argument(fmt::format("num_devices must be >= 1, got {}", num_devices));
  }
  if (std::isnan(imbalance_tolerance) || imbalance_tolerance < 0) {
    return core::invalid_argument(fmt::format(
        "imbalance_tolerance must be >= 0 (+inf disables the rule), got {}", imbalance_tolerance));
  }
  if (max_num_stages && *max_num_stages < 1) {
    return core::invalid_argument(fmt::format("max_num_stages must be >= 1, got {}",
                                              *max_num_stages));
  }
  StagePruner p;
  p.prefix_.push_back(0);
  for (size_t l = 0; l < layer_flops.size(); ++l) {
    const double f = layer_flops[l];
    if (!std::isfinite(f) || f < 0) {
      return core::invalid_argument(fmt::format(
          "layer {} has FLOPs {}; expected a finite value >= 0", l, f));
    }
    p.prefix_.push_back(p.prefix_.back() + f);
  }
  p.num_devices_ = num_devices;
  p.tolerance_ = imbalance_tolerance;
  p.max_num_stages_ = max_num_stages;
  return p;
}

double StagePruner::flop_share(int64_t first, int64_t last) const {
  const double total = prefix_.back();
  if (total <= 0) return 1.0;
  return (prefix_[static_cast<size_t>(last) + 1] - prefix_[static_cast<size_t>(first)]) / total;
}

StageVerdict StagePruner::verdict(int64_t first, int64_t last, int64_t devices) const {
  const int64_t num_layers = static_cast<int64_t>(prefix_.size()) - 1;
  const int64_t others = (first > 0 ? 1 : 0) + (last < num_layers - 1 ? 1 : 0);
  if (others == 0 ? devices != num_devices_ : devices + others > num_devices_) {
    return StageVerdict::kNoRoom;
  }
  if (max_num_stages_ && others > *max_num_stages_ - 1) return StageVerdict::kNoRoom;
  if (std::isinf(tolerance_)) return StageVerdict::kCandidate;
  const double f = flop_share(first, last);
  const double r = static_cast<double>(devices) / static_cast<double>(num_devices_);
  constexpr double kRounding = 1e-9;  // equal shares must pass with τ = 0
  const double slack = (1 + tolerance_) * (1 + kRounding);
  if (r > f * slack || r * slack < f) return StageVerdict::kImbalanced;
  return StageVerdict::kCandidate;
}

std::vector<int64_t> tensor_dim_sizes(const ir::Graph& graph) {
  std::set<int64_t> sizes;
  for (const ir::Node& n : graph.nodes()) {
    for (const ir::TensorMeta& m : n.outputs) {
      for (int64_t d : m.shape) {
        if (d > 1) sizes.insert(d);
      }
    }
  }
  return {sizes.begin(), sizes.end()};
}

bool has_idle_axis(const std::array<int64_t, 2>& shape, const std::vector<int64_t>& dim_sizes) {
  for (int64_t a : shape) {
    if (a <= 1) continue;
    const bool divides_some =
        std::any_of(dim_sizes.begin(), dim_sizes.end(), [&](int64_t d) { return d % a == 0; });
    if (!divides_some) return true;
  }
  return false;
}

}  // namespace alpa::inter_op
