// This file implements the rules that decide which candidate stages the
// pipeshard planner costs with the intra-op ILP (Alpa §5.2 profiles every
// (layers i..k, sub-mesh m, logical mesh c); these rules skip the ones that
// cannot, or are unlikely to, appear in the optimal pipeline):
//
//   exact     the stage DP uses every device and gives every stage at least
//             one layer and one device, so layers i..k on n of D devices
//             need D - n ≥ (i > 0) + (k < L - 1), all L layers need n = D,
//             and with at most S stages (i > 0) + (k < L - 1) ≤ S - 1;
//   balance   Alpa's stage_imbalance_tolerance τ: the stage's share of the
//             FLOPs f and of the devices n / D must agree within a factor
//             1 + τ: f / (1 + τ) ≤ n / D ≤ f · (1 + τ). A pipeline's
//             latency is ~B·t_max, so a stage with far more work than its
//             devices' share (or far less) makes a slow (or starved)
//             pipeline. Heuristic: the planner costs the skipped stages too
//             when the stage DP finds no plan without them;
//   idle axes a logical mesh axis of size a > 1 that divides no dim of any
//             tensor of the stage can only replicate: every device along it
//             computes the same values, so the stage costs what it costs on
//             the mesh without that axis while holding a more devices.
//             Such (stage, logical mesh) pairs are skipped.
#pragma once

#include <array>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "ir/graph.h"

namespace alpa::inter_op {

/// Default τ of the balance rule (see the file header).
inline constexpr double kDefaultImbalanceTolerance = 1.0;

enum class StageVerdict {
  kCandidate,   ///< cost it
  kNoRoom,      ///< exact rule: no pipeline can contain it
  kImbalanced,  ///< balance rule: costed only if the DP needs it
};

/// "candidate", "no room", "imbalanced".
std::string stage_verdict_name(StageVerdict v);

class StagePruner {
 public:
  /// `layer_flops`: forward FLOPs of each layer (≥ 0); `num_devices`: D;
  /// `imbalance_tolerance`: τ ≥ 0, +inf disables the balance rule;
  /// `max_num_stages`: S ≥ 1 when set. InvalidArgument for a negative or NaN
  /// τ, no layers, D < 1, S < 1, or a negative or non-finite layer FLOP count.
  static core::StatusOr<StagePruner> create(std::vector<double> layer_flops,
                                            int64_t num_devices, double imbalance_tolerance,
                                            std::optional<int64_t> max_num_stages);

  /// Verdict on layers first..last (inclusive) on `devices` devices.
  StageVerdict verdict(int64_t first, int64_t last, int64_t devices) const;

  /// Share of the FLOPs in layers first..last, in [0, 1] (1 when the graph
  /// has no FLOPs).
  double flop_share(int64_t first, int64_t last) const;

 private:
  std::vector<double> prefix_;  // FLOPs of layers [0, l)
  int64_t num_devices_ = 1;
  double tolerance_ = kDefaultImbalanceTolerance;
  std::optional<int64_t> max_num_stages_;
};

/// The distinct sizes > 1 of every dim of every tensor in `graph` (node
/// outputs), ascending.
std::vector<int64_t> tensor_dim_sizes(const ir::Graph& graph);

/// Whether a logical mesh `shape` has an axis of size > 1 that divides none
/// of `dim_sizes` (see "idle axes" in the file header).
bool has_idle_axis(const std::array<int64_t, 2>& shape, const std::vector<int64_t>& dim_sizes);

}  // namespace alpa::inter_op
