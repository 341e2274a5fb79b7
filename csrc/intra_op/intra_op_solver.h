// This file implements the intra-op pass end to end (Alpa §4): build the
// cost graph of a graph on a mesh, solve its ILP with CBC, and return every
// node's strategy with the predicted step time and memory, re-evaluated
// independently of the solver.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "intra_op/cost_graph.h"
#include "intra_op/ilp_solver.h"

namespace alpa::intra_op {

struct IntraOpResult {
  std::vector<int64_t> choice;     ///< strategy of every graph node
  double objective = 0;            ///< seconds: compute + communication
  double compute_time = 0;         ///< seconds
  double communication_time = 0;   ///< seconds (op collectives + resharding)
  double memory_bytes = 0;         ///< per device
  /// Seconds to run the forward pass again (rematerialization): forward
  /// compute and collectives of every op, and half of the resharding
  /// between ops (the forward half of a reshard and its gradient's dual).
  double forward_time = 0;
  int64_t num_graph_nodes = 0;
  int64_t num_ilp_nodes = 0;       ///< after follow-merging
  int64_t num_ilp_edges = 0;
  int64_t num_ilp_variables = 0;   ///< columns of the CBC model (0: solved without CBC)
  double build_seconds = 0;
  double solve_seconds = 0;
  IlpSolveStatus status = IlpSolveStatus::kOptimal;
  std::vector<std::string> warnings;  ///< ops without a sharding rule
};

core::StatusOr<IntraOpResult> solve_intra_op(const CostGraph& cost_graph,
                                             const IntraOpOptions& options);

}  // namespace alpa::intra_op
