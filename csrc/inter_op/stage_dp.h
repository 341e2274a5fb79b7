// This file implements Alpa's inter-operator stage DP (Alpa §5.2): given the
// cost of every contiguous run of layers on every sub-mesh and logical mesh
// shape, choose the pipeline stages, their sub-meshes and shapes that
// minimize the pipeline latency of B microbatches on exactly D devices.
//
// Notation: L layers 0..L-1; sub-mesh m has n_m devices; t(i,k,m,c) is the
// time (seconds) of layers i..k (inclusive) as one stage on sub-mesh m with
// logical shape c, +inf when infeasible. A stage fits in memory only when at
// most max_n_succ(i,k,m,c) stages follow it (under 1F1B the stage with s
// successors holds s+1 microbatches' activations).
//
//   F(0, L, 0) = 0;   F(s, i, d) = min over k ≥ i, m, c with
//                                   t(i,k,m,c) ≤ t_max and s-1 ≤ max_n_succ(i,k,m,c)
//                     of F(s-1, k+1, d - n_m) + t(i,k,m,c)
//   G(t_max) = min_s F(s, 0, D)
//   T*       = min over t_max of G(t_max) + (B-1)·t_max
//
// F(s, i, d): least summed stage time of layers i..L-1 as s stages on d
// devices. The pipeline latency of a plan whose slowest stage takes t is
// Σ stage times + (B-1)·t.
//
// How it stays fast and exact:
//  * Config collapse: for each (i,k,m) and s only the cheapest config whose
//    memory bound admits s-1 successors matters; if that one exceeds t_max
//    every admissible config does.
//  * Stage-count buckets: memory bounds ≥ min(L, D) - 1 are unbounded, and
//    when the largest remaining bound is K all counts s ≥ K+2 behave alike,
//    so they share one bucket (one bucket when no bound binds).
//  * The device dimension is innermost and contiguous: each (s,i,k,m) step
//    is one vectorizable min-plus over a row of F.
//  * G is non-increasing in t_max, and the plan traced back for t_max = t has
//    a slowest stage t' ≤ t with G(t') = G(t): G is constant on [t', t]. The
//    candidate t_max values (distinct admissible costs, sorted) are searched
//    by best-first branch and bound on index intervals [a, b): any t there
//    has latency ≥ G(c_b) + (B-1)·c_a, so intervals whose bound reaches the
//    best latency found are dropped; the rest are split at their midpoint.
//  * No argmin tables: the plan is traced back by recomputing the same sums,
//    which reproduce F's entries bit for bit.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "mesh/submesh.h"

namespace alpa::inter_op {

/// Sizes the stage DP accepts (InvalidArgument beyond them, before anything
/// is allocated): they keep every device count, index and sum far from
/// int64 overflow and the DP's tables within 512 MiB.
inline constexpr int64_t kMaxStageDevices = int64_t{1} << 16;  ///< D, and n_m per sub-mesh
inline constexpr int64_t kMaxStageLayers = int64_t{1} << 12;   ///< L
inline constexpr int64_t kMaxSubmeshes = int64_t{1} << 12;     ///< M
inline constexpr int64_t kMaxConfigs = int64_t{1} << 10;       ///< C_m per sub-mesh
inline constexpr int64_t kMaxTableEntries = int64_t{1} << 24;  ///< L·L·Σ_m C_m
inline constexpr int64_t kMaxDpEntries = int64_t{1} << 26;     ///< F: buckets·(L+1)·(D+1)
inline constexpr int64_t kMaxMicroBatches = int64_t{1} << 30;  ///< B
/// Min-plus steps of one DP run (feasible stages × stage counts × device
/// counts): about a minute; beyond it the DP would not end in useful time.
inline constexpr double kMaxDpWork = 68719476736.0;  // 2^36
/// Largest finite stage cost, in seconds: Σ over a plan stays finite.
inline constexpr double kMaxStageCost = 1e30;

/// max_n_succ_stages value: the stage fits whatever follows it.
inline constexpr int64_t kUnboundedSuccessors = std::numeric_limits<int64_t>::max();
/// max_n_succ_stages value: the stage never fits in memory.
inline constexpr int64_t kNeverFits = -1;

/// Stage costs t(i,k,m,c) and memory bounds, stored densely:
/// index ((i·L + k)·Σ_m C_m + offset_m + c). Entries with k < i are unused.
class StageCostTable {
 public:
  StageCostTable() = default;
  /// A table with every cost +inf and every memory bound unbounded.
  /// InvalidArgument when num_layers is not in [1, kMaxStageLayers], the
  /// sub-meshes are none or more than kMaxSubmeshes, a sub-mesh is empty or
  /// has more than kMaxStageDevices devices, num_configs is not one count in
  /// [1, kMaxConfigs] per sub-mesh, or the table would exceed
  /// kMaxTableEntries.
  static core::StatusOr<StageCostTable> create(int64_t num_layers,
                                               std::vector<mesh::SubmeshShape> submeshes,
                                               std::vector<int64_t> num_configs);

  int64_t num_layers() const { return num_layers_; }
  int64_t num_submeshes() const { return static_cast<int64_t>(submeshes_.size()); }
  const std::vector<mesh::SubmeshShape>& submeshes() const { return submeshes_; }
  const mesh::SubmeshShape& submesh(int64_t m) const { return submeshes_[static_cast<size_t>(m)]; }
  /// Number of logical mesh shapes (configs) tried on sub-mesh m.
  int64_t num_configs(int64_t m) const { return num_configs_[static_cast<size_t>(m)]; }

  /// Seconds to run layers i..k (inclusive) on sub-mesh m with config c; +inf
  /// when infeasible. Requires 0 ≤ i ≤ k < L (checked: throws InternalError).
  double cost(int64_t i, int64_t k, int64_t m, int64_t c) const { return costs_[index(i, k, m, c)]; }
  void set_cost(int64_t i, int64_t k, int64_t m, int64_t c, double seconds) {
    costs_[index(i, k, m, c)] = seconds;
  }
  /// Most stages that may follow this stage (memory bound); kNeverFits (-1)
  /// when it never fits, kUnboundedSuccessors by default.
  int64_t max_n_succ_stages(int64_t i, int64_t k, int64_t m, int64_t c) const {
    return max_n_succ_[index(i, k, m, c)];
  }
  void set_max_n_succ_stages(int64_t i, int64_t k, int64_t m, int64_t c, int64_t stages) {
    max_n_succ_[index(i, k, m, c)] = stages;
  }

  /// InvalidArgument for a NaN, negative or too large (> kMaxStageCost)
  /// cost or a bound below -1, naming the entry.
  core::Status validate() const;

 private:
  size_t index(int64_t i, int64_t k, int64_t m, int64_t c) const;

  int64_t num_layers_ = 0;
  std::vector<mesh::SubmeshShape> submeshes_;
  std::vector<int64_t> num_configs_;
  std::vector<int64_t> config_offset_;  // Σ of num_configs_ before m
  int64_t total_configs_ = 0;
  std::vector<double> costs_;
  std::vector<int64_t> max_n_succ_;
};

/// The stage DP's input, as plain data.
struct StageDPRequest {
  StageCostTable table;
  int64_t num_devices = 1;       ///< D in [1, kMaxStageDevices]: devices every plan uses exactly
  int64_t num_micro_batches = 1; ///< B in [1, kMaxMicroBatches]
  std::optional<int64_t> max_num_stages;  ///< at most this many stages (≥ 1)
};

/// One pipeline stage: layers start_layer..end_layer (inclusive) on
/// table.submesh(submesh) with logical config `config`.
struct StageChoice {
  int64_t start_layer = 0;
  int64_t end_layer = 0;
  int64_t submesh = 0;
  int64_t config = 0;
  double cost = 0;  ///< seconds, t(start_layer, end_layer, submesh, config)

  /// "layers [0, 3] submesh 1 config 0 cost 0.25"
  std::string to_string() const;
  bool operator==(const StageChoice& o) const {
    return start_layer == o.start_layer && end_layer == o.end_layer && submesh == o.submesh &&
           config == o.config && cost == o.cost;
  }
};

struct StageDPResult {
  double total_time = 0;  ///< seconds: Σ stage costs + (B-1)·t_max
  double t_max = 0;       ///< seconds: the slowest stage's cost
  std::vector<StageChoice> stages;  ///< pipeline order (stage 0 holds layer 0)
  int64_t num_t_max_evaluated = 0;  ///< DP runs (one per t_max tried)

  /// Text form, one stage per line:
  ///   total_time 2.5 t_max 0.5 num_t_max_evaluated 3
  ///   stage 0: layers [0, 1] submesh 1 config 0 cost 0.5
  std::string to_string() const;
  /// Reads to_string()'s form back (doubles round-trip exactly).
  static core::StatusOr<StageDPResult> parse(const std::string& text);
};

/// The optimal pipeline (Alpa §5.2; algorithm above). InvalidArgument for a
/// malformed request (sizes beyond the limits above included, and a DP
/// table beyond kMaxDpEntries); Infeasible when no plan covers all L layers on exactly
/// D devices within the memory bounds, with the most specific reason found
/// (a layer no stage can hold, device counts that cannot add up to D, or the
/// memory bounds).
core::StatusOr<StageDPResult> stage_dp(const StageDPRequest& request);

/// Independent check of a plan: the stages must cover layers 0..L-1 in order,
/// use exactly D devices, respect max_num_stages and every memory bound, and
/// have finite costs. Returns Σ t + (B-1)·max t in seconds, or
/// InvalidArgument naming the violated rule.
core::StatusOr<double> evaluate_stages(const StageDPRequest& request,
                                       const std::vector<StageChoice>& stages);

}  // namespace alpa::inter_op
