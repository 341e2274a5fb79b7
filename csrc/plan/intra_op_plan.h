// This file implements the single-stage planner: the whole graph on one
// logical mesh, sharded by the intra-op ILP, returned as a Plan.
#pragma once

#include <array>
#include <optional>

#include "core/status.h"
#include "intra_op/cost_graph.h"
#include "intra_op/intra_op_solver.h"
#include "ir/graph.h"
#include "mesh/cluster.h"
#include "plan/plan.h"

namespace alpa::plan {

struct IntraOpRequest {
  std::array<int64_t, 2> mesh_shape{1, 1};
  /// Per-axis α/β overriding the cluster's links (Alpa's mesh_alpha/beta).
  std::optional<std::array<mesh::LinkSpec, 2>> axis_links;
  intra_op::IntraOpOptions options;
};

/// A plan with no stages yet: the graph's name and fingerprint, the
/// cluster, and the cost mode and memory budget of `options`.
Plan empty_plan(const ir::Graph& graph, const mesh::Cluster& cluster,
                const intra_op::IntraOpOptions& options);

/// A stage planned by the intra-op pass, with the solver's figures.
struct SolvedStage {
  StagePlan stage;
  intra_op::IntraOpResult result;
  double input_bytes = 0;  ///< per device: the stage graph's inputs, one microbatch
};

/// Plans `graph` as stage `index` on `mesh` (its devices may be any
/// sub-mesh of the cluster): every node's strategy, parameter specs,
/// collectives, predicted time and memory.
core::StatusOr<SolvedStage> plan_stage(const ir::Graph& graph, const mesh::DeviceMesh& mesh,
                                       const intra_op::IntraOpOptions& options, int64_t index);

/// Plans `graph` on the first mesh_shape[0]·mesh_shape[1] devices of
/// `cluster`. `stats` (optional) receives sizes and solver timings.
core::StatusOr<Plan> make_intra_op_plan(const ir::Graph& graph, const mesh::Cluster& cluster,
                                        const IntraOpRequest& request,
                                        intra_op::IntraOpResult* stats = nullptr);

}  // namespace alpa::plan
