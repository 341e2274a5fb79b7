// This file implements the cost graph of Alpa's intra-op pass (Alpa §4):
// for every node its sharding strategies with compute, communication and
// memory costs, for every edge the resharding cost between the producer's
// and the consumer's specs, and follow-merging — a single-input elementwise
// or view node follows its producer (for each producer strategy it takes its
// cheapest matching strategy), so it joins the producer's ILP variable.
// to_ilp() yields the plain-data IlpProblem; expand() maps an ILP choice
// back to every graph node.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "cost/communication.h"
#include "intra_op/ilp_problem.h"
#include "ir/graph.h"
#include "mesh/device_mesh.h"
#include "sharding/resharding.h"
#include "sharding/strategy.h"

namespace alpa::intra_op {

struct IntraOpOptions {
  cost::CostOptions cost;
  /// Bytes per device; +inf = no bound.
  double memory_budget = kInfinity;
  /// Pinned specs by parameter FQN or node name ("fc1.weight" -> S0R).
  std::map<std::string, sharding::ShardingSpec> pinned;
  /// Pinned strategies of op nodes, by node name ("linear" -> "RS0 = RR x S0R x S0").
  std::map<std::string, std::string> pinned_strategies;
  bool merge_followers = true;
  /// Pinned names absent from the graph are not an error (a pipeline
  /// stage's graph holds only some of the model's parameters).
  bool pins_may_name_other_stages = false;
  double time_limit_s = 60;
  int num_threads = 1;
  /// Memory-bound ILPs stop once the plan is proven within this fraction
  /// of the optimum (IlpOptions.memory_gap; 0: exact). The cost model's own
  /// error is far larger; closing the last 0.1-0.7% took minutes.
  double memory_gap = 0.01;
};

struct NodeCosts {
  std::vector<sharding::Strategy> strategies;
  std::vector<double> compute;  ///< seconds per strategy (forward + backward)
  std::vector<double> comm;     ///< seconds of the strategy's own collectives
  std::vector<double> memory;   ///< bytes per device
  /// Seconds of the forward pass alone per strategy (compute and forward
  /// collectives): what recomputing the op in backward costs.
  std::vector<double> forward;
  /// Set when no sharding rule covers the op: why ("no sharding rule for
  /// aten.X"), and where it is and what the planner does instead.
  std::string warning;
  std::string warning_detail;
};

/// One graph edge: node `dst`'s input `dst_input` reads `src`'s output.
struct CostEdge {
  ir::NodeId src;
  int64_t src_output = 0;
  ir::NodeId dst;
  int64_t dst_input = 0;
  std::vector<std::vector<double>> costs;  ///< [src strategy][dst strategy], seconds
};

class CostGraph {
 public:
  static core::StatusOr<CostGraph> build(const ir::Graph& graph, const mesh::DeviceMesh& mesh,
                                         const IntraOpOptions& options);

  const std::vector<NodeCosts>& nodes() const { return nodes_; }
  const std::vector<CostEdge>& edges() const { return edges_; }
  /// Whether node i's outputs receive gradients.
  const std::vector<bool>& needs_grad() const { return needs_grad_; }
  /// ILP variable of each graph node (followers share their producer's).
  const std::vector<int64_t>& ilp_node() const { return ilp_node_; }
  int64_t num_ilp_nodes() const { return num_ilp_nodes_; }

  IlpProblem to_ilp(double memory_budget) const;
  /// Strategy of every graph node for an ILP choice.
  std::vector<int64_t> expand(const std::vector<StrategyIdx>& ilp_choice) const;
  /// Resharding plan of an edge under the given strategies.
  sharding::ReshardPlan edge_plan(const CostEdge& e, int64_t src_strategy,
                                  int64_t dst_strategy) const;

 private:
  core::Status add_node(const ir::Node& node, const IntraOpOptions& options);
  void add_edges();
  void merge_followers();

  const ir::Graph* graph_ = nullptr;
  std::shared_ptr<const ir::Graph> autocast_;  // graph_ under mixed precision
  mesh::DeviceMesh mesh_;
  cost::CostOptions cost_options_;
  std::vector<NodeCosts> nodes_;
  std::vector<CostEdge> edges_;
  std::vector<bool> needs_grad_;
  sharding::BlockHints block_hints_;
  // follow-merging: for graph node i, its ILP node and, per strategy of that
  // ILP node, the strategy node i takes.
  std::vector<int64_t> ilp_node_;
  std::vector<int64_t> ilp_rep_;  // graph node that is each ILP node
  std::vector<std::vector<int64_t>> follow_map_;
  std::vector<bool> follow_edge_;  // edge i is merged into a follower
  int64_t num_ilp_nodes_ = 0;
  bool merge_ = true;
};

/// OK when every pinned spec names a node or parameter FQN of `graph`.
core::Status check_pins(const ir::Graph& graph, const IntraOpOptions& options);

/// Per value: whether a gradient flows into it (forward propagation from
/// parameters and inputs with requires_grad, through floating outputs).
std::vector<bool> compute_needs_grad(const ir::Graph& graph);

}  // namespace alpa::intra_op
