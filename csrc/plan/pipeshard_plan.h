// This file implements the pipeshard planner (Alpa §5): cluster the graph
// into layers, cost every candidate stage (layers i..k on sub-mesh m with
// logical shape c) with the intra-op ILP, choose stages and sub-meshes with
// the stage DP, place the sub-meshes on devices, and plan each chosen stage.
//
//   graph ──cluster_layers──▶ L layers
//     for i ≤ k, m, c:  t(i,k,m,c) = ILP(stage graph i..k on m as c)
//                       (solved in parallel; equal stage graphs — the
//                        identical blocks of a transformer — solved once)
//     stage_dp(t, B) ──▶ stages (i..k, m, c) ──place_submeshes──▶ device ids
//     each stage: plan_stage() on its own DeviceMesh ──▶ Plan
//
// Manual stages skip the DP: layer boundaries and one logical mesh per
// stage are given, and only those stages are solved.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "inter_op/layer_clustering.h"
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
  int num_threads = 1;  ///< candidate ILPs solved at once
};

struct PipeshardStats {
  int64_t num_layers = 0;
  int64_t num_candidates = 0;  ///< (i, k, m, c) entries of the cost table
  int64_t num_solved = 0;      ///< distinct ILPs solved (the rest were equal)
  double clustering_seconds = 0;
  double profiling_seconds = 0;  ///< building and solving candidate ILPs
  double dp_seconds = 0;
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
