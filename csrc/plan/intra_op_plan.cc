// This file implements make_intra_op_plan().
#include "plan/intra_op_plan.h"

#include <cmath>

#include <fmt/format.h>

#include "ir/verifier.h"

namespace alpa::plan {

namespace {

void add_records(StagePlan& stage, const std::string& node,
                 const std::vector<sharding::Collective>& list, const std::string& what_prefix) {
  for (const sharding::Collective& c : list) {
    stage.collectives.push_back(CollectiveRecord{stage.index, node, c.kind, c.axes, c.bytes, c.phase,
                                                 what_prefix.empty() ? c.what : what_prefix,
                                                 c.input, c.role});
  }
}

}  // namespace

Plan empty_plan(const ir::Graph& graph, const mesh::Cluster& cluster,
                const intra_op::IntraOpOptions& options) {
  Plan plan;
  plan.graph_name = graph.name();
  plan.graph_fingerprint = fmt::format("{:016x}", graph.fingerprint());
  plan.cluster = cluster;
  plan.cost_mode = options.cost.mode == cost::CostOptions::Mode::kAlpa ? "alpa" : "seconds";
  plan.memory_budget = options.memory_budget;
  switch (options.cost.compute_dtype) {
    case ir::DType::kBFloat16: plan.precision = "bf16"; break;
    case ir::DType::kFloat16: plan.precision = "fp16"; break;
    default: plan.precision = "fp32"; break;
  }
  return plan;
}

core::StatusOr<SolvedStage> plan_stage(const ir::Graph& graph, const mesh::DeviceMesh& mesh,
                                       const intra_op::IntraOpOptions& options, int64_t index) {
  ALPA_ASSIGN_OR_RETURN(intra_op::CostGraph cg, intra_op::CostGraph::build(graph, mesh, options));
  ALPA_ASSIGN_OR_RETURN(intra_op::IntraOpResult result, intra_op::solve_intra_op(cg, options));
  SolvedStage solved;
  StagePlan& stage = solved.stage;
  stage.index = index;
  stage.mesh_shape = mesh.shape();
  stage.device_ids = mesh.device_ids();
  stage.predicted_time = result.objective;
  stage.compute_time = result.compute_time;
  stage.communication_time = result.communication_time;
  stage.memory_bytes = result.memory_bytes;
  for (const ir::Node& n : graph.nodes()) {
    const intra_op::NodeCosts& costs = cg.nodes()[n.id.index()];
    const size_t choice = static_cast<size_t>(result.choice[n.id.index()]);
    const sharding::Strategy& s = costs.strategies[choice];
    stage.nodes.push_back(NodeSharding{n.name, s.name, s.inputs, s.outputs});
    if (n.kind == ir::NodeKind::kParameter) stage.param_specs.emplace_back(n.target, s.outputs[0]);
    if (n.kind == ir::NodeKind::kInput) stage.input_specs.emplace_back(n.target, s.outputs[0]);
    if (n.kind == ir::NodeKind::kParameter || n.kind == ir::NodeKind::kBuffer) {
      stage.parameter_memory_bytes += costs.memory[choice];
    } else if (n.kind == ir::NodeKind::kInput) {
      solved.input_bytes += costs.memory[choice];
    }
    add_records(stage, n.name, s.collectives, "");
  }
  for (const intra_op::CostEdge& e : cg.edges()) {
    sharding::ReshardPlan rp = cg.edge_plan(e, result.choice[e.src.index()], result.choice[e.dst.index()]);
    if (rp.empty()) continue;
    std::string what = fmt::format("reshard input {} from %{}", e.dst_input, graph.node(e.src).name);
    const std::string& node = graph.node(e.dst).name;
    for (const auto* list : {&rp.forward, &rp.backward}) {
      for (sharding::Collective c : *list) {
        c.input = e.dst_input;
        stage.collectives.push_back(CollectiveRecord{stage.index, node, c.kind, c.axes, c.bytes,
                                                     c.phase, what, c.input,
                                                     sharding::CollectiveRole::kReshard});
      }
    }
  }
  solved.result = std::move(result);
  return solved;
}

core::StatusOr<Plan> make_intra_op_plan(const ir::Graph& graph, const mesh::Cluster& cluster,
                                        const IntraOpRequest& request,
                                        intra_op::IntraOpResult* stats) {
  ALPA_RETURN_IF_ERROR(ir::verify_graph(graph));
  ALPA_ASSIGN_OR_RETURN(mesh::DeviceMesh mesh, mesh::DeviceMesh::create(cluster, request.mesh_shape));
  if (request.axis_links && request.options.cost.mode != cost::CostOptions::Mode::kAlpa) {
    return core::invalid_argument(
        "per-axis links (mesh_alpha/mesh_beta) apply to cost mode 'alpa'; for cost mode "
        "'seconds' describe the links in the cluster instead");
  }
  if (request.axis_links) {
    mesh.set_axis_link(0, (*request.axis_links)[0]);
    mesh.set_axis_link(1, (*request.axis_links)[1]);
  }
  ALPA_ASSIGN_OR_RETURN(SolvedStage solved, plan_stage(graph, mesh, request.options, 0));
  Plan plan = empty_plan(graph, cluster, request.options);
  plan.warnings = solved.result.warnings;
  solved.stage.submesh = {1, mesh.num_devices()};
  plan.stages.push_back(std::move(solved.stage));
  if (stats) *stats = std::move(solved.result);
  return plan;
}

}  // namespace alpa::plan
