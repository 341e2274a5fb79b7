// This file implements the pipeshard planner (Alpa §5): cluster the graph
// into layers, cost candidate stages (layers i..k on sub-mesh m with logical
// shape c) with the intra-op ILP, choose stages and sub-meshes with the
// stage DP, place the sub-meshes on devices, and assemble each chosen
// stage's plan from its candidate's solution.
//
//   graph ──cluster_layers──▶ L layers
//     for i ≤ k, m, c:  skip what inter_op/stage_pruning.h rules out
//                       (no room for the other stages, FLOP/device share
//                        imbalance, logical mesh axes that divide nothing)
//                       t(i,k,m,c) = ILP(stage graph i..k on m as c), or for
//                       spans of > 2 layers composed from 1- and 2-layer
//                       ILPs (inter_op/stage_profiler.h); equal stage graphs
//                       — the identical blocks of a transformer — solved once
//     stage_dp(t, B) ──▶ stages (i..k, m, c)     (no plan? cost the
//                                                  imbalanced ones; composed
//                                                  stages chosen? solve them
//                                                  whole; rerun)
//     place_submeshes ──▶ device ids; each stage's plan re-derived from its
//     candidate's strategies (pinned: no second solve) ──▶ Plan
//
// Manual stages skip the DP: layer boundaries and one logical mesh per
// stage are given, and only those stages are solved.
//
// Determinism: with the same inputs the plan is the same, whatever
// num_threads (ILPs are built in parallel, CBC solves one at a time), unless
// a candidate ILP hits options.time_limit_s: CBC counts the process's CPU
// time, so whether a limit is hit depends on the machine (and on the other
// threads); such ILPs are counted in PipeshardStats::num_time_limited and
// named in the plan's notes. The limit applies to each candidate ILP; the
// chosen stages reuse their candidates' solutions.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "inter_op/layer_clustering.h"
#include "inter_op/stage_profiler.h"
#include "inter_op/stage_pruning.h"
#include "intra_op/cost_graph.h"
#include "ir/graph.h"
#include "mesh/cluster.h"
#include "plan/plan.h"

namespace alpa::plan {

struct PipeshardRequest {
  /// Options of every stage's intra-op ILP. `memory_budget` is per device
  /// (bytes) and also bounds the microbatches in flight (Alpa §5.2).
  intra_op::IntraOpOptions options;
  inter_op::LayerClusteringOptions clustering;
  /// Manual layers: module FQN prefixes that start a new layer
  /// ("transformer.h.2"); layer 0 starts at the first op. Empty = clustering.
  std::vector<std::string> layer_boundaries;
  /// Manual stages: one logical mesh shape per stage (stage k = layer k).
  /// Empty = chosen by the stage DP.
  std::vector<std::array<int64_t, 2>> stage_meshes;
  int64_t num_micro_batches = 1;
  std::string schedule = "1f1b";  ///< "gpipe" | "1f1b"
  std::optional<int64_t> max_num_stages;
  /// Candidate ILPs solved at once (threads); 1 is enough to be exact and
  /// deterministic, more only saves time.
  int num_threads = 1;
  /// τ of the balance rule (inter_op/stage_pruning.h); +inf costs every
  /// stage with room for the others.
  double imbalance_tolerance = inter_op::kDefaultImbalanceTolerance;
  /// Skip logical meshes with an axis that divides no tensor dim of the
  /// stage (inter_op/stage_pruning.h).
  bool skip_idle_mesh_axes = true;
  /// Spans of more layers are costed by composition and solved whole only
  /// when the DP chooses them (inter_op/stage_profiler.h); 0 solves every
  /// span whole.
  int64_t exact_span_layers = 2;
  /// Rematerialization per stage (inter_op/stage_profiler.h): kAuto lets
  /// the stage DP choose, kAll makes every stage recompute. Manual stages
  /// (stage_meshes) recompute only with kAll.
  inter_op::Remat remat = inter_op::Remat::kAuto;
  /// Called after each distinct candidate ILP is solved with (solved so
  /// far, distinct ILPs known so far); `total` grows when the planner solves
  /// chosen composed stages whole or costs the imbalanced candidates after
  /// all. Calls are serialized. If the callback throws, no further ILP
  /// starts and the exception propagates out of make_pipeshard_plan.
  std::function<void(int64_t done, int64_t total)> progress;
};

struct PipeshardStats {
  int64_t num_layers = 0;
  /// (i, k, m, c) entries of the cost table: L(L+1)/2 spans × Σ_m configs.
  int64_t num_candidates = 0;
  int64_t num_pruned_no_room = 0;     ///< skipped: no pipeline can hold them
  int64_t num_pruned_imbalance = 0;   ///< skipped by the balance rule (in the end)
  int64_t num_pruned_idle_axes = 0;   ///< skipped: a logical mesh axis divides nothing
  int64_t num_costed = 0;             ///< entries that got a cost
  int64_t num_composed = 0;           ///< of those, composed from 1- and 2-layer spans
  int64_t num_optimistic = 0;         ///< of those, over the memory budget, assumed to fit
  int64_t num_refined = 0;            ///< composed entries the DP chose, then solved whole
  double max_composition_error = 0;   ///< max relative error of those compositions
  int64_t refinement_rounds = 0;      ///< DP reruns after solving chosen composed stages
  int64_t num_solved = 0;             ///< distinct ILPs solved (equal stage graphs share)
  int64_t num_time_limited = 0;       ///< of those, stopped by the time limit
  int64_t num_stage_graphs = 0;       ///< spans cut out of the graph
  int64_t num_distinct_stage_graphs = 0;  ///< of those, structurally distinct
  bool imbalance_fallback = false;    ///< the DP needed the imbalanced candidates
  double clustering_seconds = 0;
  double extraction_seconds = 0;  ///< cutting and hashing stage graphs
  double profiling_seconds = 0;   ///< building and solving candidate ILPs
  double dp_seconds = 0;
  double assembly_seconds = 0;    ///< placement and the chosen stages' plans
  double total_seconds = 0;
};

/// Plans `graph` (captured with one microbatch) as a pipeline on `cluster`.
core::StatusOr<Plan> make_pipeshard_plan(const ir::Graph& graph, const mesh::Cluster& cluster,
                                         const PipeshardRequest& request,
                                         PipeshardStats* stats = nullptr);

/// Layer of every node from manual boundaries (see PipeshardRequest);
/// placeholders take the layer of their first reader. InvalidArgument when a
/// boundary matches no op after the previous boundary.
core::StatusOr<std::vector<int64_t>> layers_from_boundaries(
    const ir::Graph& graph, const std::vector<std::string>& boundaries);

}  // namespace alpa::plan
