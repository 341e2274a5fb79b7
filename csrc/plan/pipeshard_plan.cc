// This file implements make_pipeshard_plan().
#include "plan/pipeshard_plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <map>
#include <mutex>
#include <memory>
#include <thread>
#include <tuple>

#include "core/check.h"
#include "inter_op/stage_dp.h"
#include "inter_op/stage_graph.h"
#include "ir/verifier.h"
#include "mesh/device_mesh.h"
#include "mesh/submesh.h"
#include "plan/intra_op_plan.h"

namespace alpa::plan {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

/// What one candidate stage costs: seconds per microbatch and the memory
/// bound on the stages that may follow it.
struct CandidateCost {
  double seconds = std::numeric_limits<double>::infinity();
  int64_t max_n_succ = inter_op::kNeverFits;
};

/// Alpa §5.2's memory bound. Under 1F1B a stage followed by s stages keeps
/// min(s + 1, B) microbatches of activations; under GPipe all B.
int64_t max_successors(const StagePlan& s, double budget, int64_t num_micro_batches,
                       const std::string& schedule) {
  const double params = s.parameter_memory_bytes;
  const double act = std::max(0.0, s.memory_bytes - params);
  if (params + act > budget) return inter_op::kNeverFits;
  if (std::isinf(budget) || act <= 0) return inter_op::kUnboundedSuccessors;
  const double fit = std::floor((budget - params) / act);  // microbatches in flight
  if (schedule == "gpipe") {
    return fit >= static_cast<double>(num_micro_batches) ? inter_op::kUnboundedSuccessors
                                                         : inter_op::kNeverFits;
  }
  if (fit >= static_cast<double>(num_micro_batches)) return inter_op::kUnboundedSuccessors;
  return static_cast<int64_t>(fit) - 1;
}

mesh::SubmeshShape submesh_of(const mesh::Cluster& cluster, int64_t devices) {
  if (devices <= cluster.devices_per_host) return {1, devices};
  return {devices / cluster.devices_per_host, cluster.devices_per_host};
}

/// Layering of the graph: manual boundaries or clustering.
struct Layering {
  std::vector<int64_t> layer_of_node;
  int64_t num_layers = 0;
};

core::StatusOr<Layering> make_layering(const ir::Graph& graph, const PipeshardRequest& r) {
  Layering out;
  if (!r.layer_boundaries.empty()) {
    ALPA_ASSIGN_OR_RETURN(out.layer_of_node, layers_from_boundaries(graph, r.layer_boundaries));
    out.num_layers = static_cast<int64_t>(r.layer_boundaries.size()) + 1;
    return out;
  }
  inter_op::LayerClusteringOptions options = r.clustering;
  if (!r.stage_meshes.empty()) options.num_layers = static_cast<int64_t>(r.stage_meshes.size());
  ALPA_ASSIGN_OR_RETURN(inter_op::LayerClustering c, inter_op::cluster_layers(graph, options));
  out.layer_of_node = c.layer_of_node;
  out.num_layers = c.num_layers();
  return out;
}

/// The cost table t(i, k, m, c), each distinct stage graph solved once.
class CandidateProfiler {
 public:
  CandidateProfiler(const ir::Graph& graph, const Layering& layering, const mesh::Cluster& cluster,
                    const PipeshardRequest& request)
      : graph_(graph), layering_(layering), cluster_(cluster), request_(request) {}

  core::StatusOr<inter_op::StageCostTable> run(PipeshardStats& stats) {
    const int64_t L = layering_.num_layers;
    submeshes_ = mesh::enumerate_submeshes(cluster_);
    std::vector<int64_t> num_configs;
    for (const auto& m : submeshes_) {
      num_configs.push_back(static_cast<int64_t>(mesh::logical_mesh_shapes(m).size()));
    }
    ALPA_ASSIGN_OR_RETURN(auto table, inter_op::StageCostTable::create(L, submeshes_, num_configs));
    // Entry (i, k, m, c) -> job index; equal stage graphs share a job.
    std::map<std::tuple<uint64_t, int64_t, int64_t>, size_t> job_of;
    std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t, size_t>> entries;
    for (int64_t i = 0; i < L; ++i) {
      for (int64_t k = i; k < L; ++k) {
        ALPA_ASSIGN_OR_RETURN(inter_op::StageGraph sg, inter_op::extract_stage_graph(
                                                           graph_, layering_.layer_of_node, i, k, L));
        const uint64_t hash = inter_op::structural_hash(sg.graph);
        auto shared = std::make_shared<ir::Graph>(std::move(sg.graph));
        for (int64_t m = 0; m < table.num_submeshes(); ++m) {
          for (int64_t c = 0; c < table.num_configs(m); ++c) {
            auto [it, fresh] = job_of.emplace(std::make_tuple(hash, m, c), jobs_.size());
            if (fresh) jobs_.push_back(Job{shared, m, c, {}, core::ok_status()});
            entries.emplace_back(i, k, m, c, it->second);
          }
        }
      }
    }
    stats.num_candidates = static_cast<int64_t>(entries.size());
    stats.num_solved = static_cast<int64_t>(jobs_.size());
    solve_all();
    for (const Job& job : jobs_) ALPA_RETURN_IF_ERROR(job.status);
    for (const auto& [i, k, m, c, j] : entries) {
      table.set_cost(i, k, m, c, jobs_[j].cost.seconds);
      table.set_max_n_succ_stages(i, k, m, c, jobs_[j].cost.max_n_succ);
    }
    return table;
  }

 private:
  struct Job {
    std::shared_ptr<ir::Graph> graph;
    int64_t submesh;
    int64_t config;
    CandidateCost cost;
    core::Status status;
  };

  void solve_all() {
    std::atomic<size_t> next{0};
    auto worker = [&] {
      for (size_t j = next++; j < jobs_.size(); j = next++) solve(jobs_[j]);
    };
    const int threads = std::max(1, std::min<int>(request_.num_threads,
                                                  static_cast<int>(jobs_.size())));
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
    worker();
    for (auto& t : pool) t.join();
  }

  void solve(Job& job) {
    const mesh::SubmeshShape& sm = submeshes_[static_cast<size_t>(job.submesh)];
    const auto shape = mesh::logical_mesh_shapes(sm)[static_cast<size_t>(job.config)];
    std::vector<int64_t> ids(static_cast<size_t>(sm.num_devices()));
    for (size_t d = 0; d < ids.size(); ++d) ids[d] = static_cast<int64_t>(d);
    auto mesh = mesh::DeviceMesh::create(cluster_, shape, ids);
    if (!mesh.ok()) {
      job.status = mesh.status();
      return;
    }
    intra_op::IntraOpOptions options = request_.options;
    options.num_threads = 1;
    auto solved = plan_stage(*job.graph, *mesh, options, 0);
    if (!solved.ok()) {
      // A stage that cannot fit the budget, or whose dims do not divide
      // over this mesh, is simply not a candidate.
      if (solved.status().code() == core::StatusCode::kInfeasible ||
          solved.status().code() == core::StatusCode::kInvalidArgument) {
        return;
      }
      job.status = solved.status();
      return;
    }
    job.cost.seconds = solved->stage.predicted_time;
    job.cost.max_n_succ = max_successors(solved->stage, options.memory_budget,
                                         request_.num_micro_batches, request_.schedule);
  }

  const ir::Graph& graph_;
  const Layering& layering_;
  const mesh::Cluster& cluster_;
  const PipeshardRequest& request_;
  std::vector<mesh::SubmeshShape> submeshes_;
  std::vector<Job> jobs_;
};

struct ChosenStage {
  int64_t first_layer = 0;
  int64_t last_layer = 0;
  mesh::SubmeshShape submesh;
  std::array<int64_t, 2> mesh_shape{1, 1};
};

/// Boundary values with the specs the stage's plan gives them.
std::vector<StageValue> stage_values(const std::vector<inter_op::BoundaryValue>& values,
                                     const ir::Graph& g, const StagePlan& stage, bool outputs) {
  std::map<std::string, const NodeSharding*> by_name;
  for (const NodeSharding& n : stage.nodes) by_name[n.node] = &n;
  std::vector<StageValue> out;
  for (size_t i = 0; i < values.size(); ++i) {
    const inter_op::BoundaryValue& v = values[i];
    sharding::ShardingSpec spec;
    if (outputs) {
      const ir::ValueRef ref = g.outputs()[i].value;
      spec = by_name.at(g.node(ref.node).name)->outputs[static_cast<size_t>(ref.index)];
    } else {
      spec = by_name.at(v.name)->outputs[0];
    }
    spec.partial.clear();  // the runtime sums partial values before sending
    out.push_back(StageValue{v.name, v.producer, v.index, v.meta, spec, v.requires_grad});
  }
  return out;
}

core::StatusOr<Plan> assemble(const ir::Graph& graph, const mesh::Cluster& cluster,
                              const PipeshardRequest& request, const Layering& layering,
                              const std::vector<ChosenStage>& chosen) {
  std::vector<mesh::SubmeshShape> shapes;
  for (const ChosenStage& c : chosen) shapes.push_back(c.submesh);
  ALPA_ASSIGN_OR_RETURN(auto placement, mesh::place_submeshes(cluster, shapes));
  Plan plan;
  plan.graph_name = graph.name();
  plan.graph_fingerprint = fmt::format("{:016x}", graph.fingerprint());
  plan.cluster = cluster;
  plan.cost_mode = request.options.cost.mode == cost::CostOptions::Mode::kAlpa ? "alpa" : "seconds";
  plan.memory_budget = request.options.memory_budget;
  plan.num_micro_batches = request.num_micro_batches;
  plan.schedule = request.schedule;
  plan.num_layers = layering.num_layers;
  for (size_t s = 0; s < chosen.size(); ++s) {
    const ChosenStage& c = chosen[s];
    ALPA_ASSIGN_OR_RETURN(inter_op::StageGraph sg,
                          inter_op::extract_stage_graph(graph, layering.layer_of_node, c.first_layer,
                                                        c.last_layer, layering.num_layers));
    ALPA_ASSIGN_OR_RETURN(mesh::DeviceMesh mesh,
                          mesh::DeviceMesh::create(cluster, c.mesh_shape, placement[s]));
    auto solved = plan_stage(sg.graph, mesh, request.options, static_cast<int64_t>(s));
    if (!solved.ok()) {
      return solved.status().with_context(fmt::format(
          "planning stage {} (layers {}..{}) on logical mesh ({}, {})", s, c.first_layer,
          c.last_layer, c.mesh_shape[0], c.mesh_shape[1]));
    }
    StagePlan stage = std::move(solved->stage);
    stage.layers = {c.first_layer, c.last_layer};
    stage.submesh = {c.submesh.num_hosts, c.submesh.devices_per_host};
    stage.inputs = stage_values(sg.inputs, sg.graph, stage, false);
    stage.outputs = stage_values(sg.outputs, sg.graph, stage, true);
    stage.graph_outputs = sg.graph_outputs;
    for (const std::string& w : solved->result.warnings) {
      if (std::find(plan.warnings.begin(), plan.warnings.end(), w) == plan.warnings.end()) {
        plan.warnings.push_back(w);
      }
    }
    plan.stages.push_back(std::move(stage));
  }
  return plan;
}

core::StatusOr<std::vector<ChosenStage>> manual_stages(const mesh::Cluster& cluster,
                                                       const PipeshardRequest& r,
                                                       const Layering& layering) {
  const int64_t n = static_cast<int64_t>(r.stage_meshes.size());
  if (layering.num_layers != n) {
    return core::invalid_argument(fmt::format(
        "{} stage meshes given for {} layers; give one logical mesh per stage (and {} layer "
        "boundaries)", n, layering.num_layers, n - 1));
  }
  std::vector<ChosenStage> out;
  int64_t devices = 0;
  for (int64_t s = 0; s < n; ++s) {
    const auto& shape = r.stage_meshes[static_cast<size_t>(s)];
    const int64_t count = shape[0] * shape[1];
    out.push_back(ChosenStage{s, s, submesh_of(cluster, count), shape});
    devices += count;
  }
  if (devices != cluster.num_devices()) {
    return core::invalid_argument(fmt::format(
        "the stage meshes use {} devices but the cluster has {}; every device must belong to "
        "exactly one stage", devices, cluster.num_devices()));
  }
  return out;
}

/// The DP's choice, with notes comparing it to the best single stage.
core::StatusOr<std::vector<ChosenStage>> dp_stages(const mesh::Cluster& cluster,
                                                   const PipeshardRequest& r,
                                                   const inter_op::StageCostTable& table,
                                                   std::vector<std::string>& notes) {
  inter_op::StageDPRequest dp;
  dp.table = table;
  dp.num_devices = cluster.num_devices();
  dp.num_micro_batches = r.num_micro_batches;
  dp.max_num_stages = r.max_num_stages;
  ALPA_ASSIGN_OR_RETURN(inter_op::StageDPResult result, inter_op::stage_dp(dp));
  const double B = static_cast<double>(r.num_micro_batches);
  notes.push_back(fmt::format(
      "stage DP (Alpa §5.2) over {} layers x {} sub-meshes: {} stage(s), predicted {:.6g} s per "
      "step (Σ stage times + (B-1)·t_max, t_max {:.6g} s)",
      table.num_layers(), table.num_submeshes(), result.stages.size(), result.total_time,
      result.t_max));
  // The best pure intra-op alternative: every layer on the whole cluster.
  const int64_t whole = table.num_submeshes() - 1;
  double single = std::numeric_limits<double>::infinity();
  for (int64_t c = 0; c < table.num_configs(whole); ++c) {
    single = std::min(single, table.cost(0, table.num_layers() - 1, whole, c));
  }
  notes.push_back(fmt::format(
      "best single stage on all {} devices (pure intra-op): {:.6g} s per step{}",
      cluster.num_devices(), single * B,
      result.stages.size() > 1
          ? fmt::format("; pipelining saves {:.1f}%", 100.0 * (1.0 - result.total_time / (single * B)))
          : std::string()));
  std::vector<ChosenStage> out;
  for (const inter_op::StageChoice& s : result.stages) {
    const mesh::SubmeshShape& sm = table.submesh(s.submesh);
    out.push_back(ChosenStage{s.start_layer, s.end_layer, sm,
                              mesh::logical_mesh_shapes(sm)[static_cast<size_t>(s.config)]});
  }
  return out;
}

}  // namespace

core::StatusOr<std::vector<int64_t>> layers_from_boundaries(
    const ir::Graph& graph, const std::vector<std::string>& boundaries) {
  std::vector<int64_t> layer(static_cast<size_t>(graph.num_nodes()), -1);
  size_t next = 0;
  int64_t current = 0;
  auto starts_with = [](const std::string& s, const std::string& prefix) {
    return s.compare(0, prefix.size(), prefix) == 0 &&
           (s.size() == prefix.size() || s[prefix.size()] == '.');
  };
  for (const ir::Node& n : graph.nodes()) {
    if (n.kind != ir::NodeKind::kOp) continue;
    if (next < boundaries.size() && starts_with(n.module, boundaries[next])) {
      ++next;
      ++current;
    }
    layer[n.id.index()] = current;
  }
  if (next < boundaries.size()) {
    return core::invalid_argument(fmt::format(
        "layer boundary '{}' matches no op after the previous boundary; boundaries are module "
        "FQN prefixes in forward order, e.g. 'transformer.h.2'", boundaries[next]));
  }
  // Placeholders take the layer of their first reader.
  for (const ir::Node& n : graph.nodes()) {
    if (n.kind != ir::NodeKind::kOp) continue;
    for (ir::ValueRef v : n.inputs) {
      if (layer[v.node.index()] < 0) layer[v.node.index()] = layer[n.id.index()];
    }
  }
  for (int64_t& l : layer) l = std::max<int64_t>(l, 0);
  return layer;
}

namespace {
core::StatusOr<Plan> plan_stages(const ir::Graph& graph, const mesh::Cluster& cluster,
                                 const PipeshardRequest& request, PipeshardStats* stats,
                                 Clock::time_point t0);
}  // namespace

core::StatusOr<Plan> make_pipeshard_plan(const ir::Graph& graph, const mesh::Cluster& cluster,
                                         const PipeshardRequest& request, PipeshardStats* stats) {
  const auto t0 = Clock::now();
  ALPA_RETURN_IF_ERROR(ir::verify_graph(graph));
  ALPA_RETURN_IF_ERROR(cluster.validate());
  if (request.num_micro_batches < 1) {
    return core::invalid_argument(fmt::format("num_micro_batches must be >= 1, got {}",
                                              request.num_micro_batches));
  }
  if (request.schedule != "gpipe" && request.schedule != "1f1b") {
    return core::invalid_argument(fmt::format(
        "unknown pipeline schedule '{}'; use 'gpipe' or '1f1b'", request.schedule));
  }
  ALPA_RETURN_IF_ERROR(intra_op::check_pins(graph, request.options));  // against the whole model
  PipeshardRequest staged = request;
  staged.options.pins_may_name_other_stages = true;
  return plan_stages(graph, cluster, staged, stats, t0);
}

namespace {

core::StatusOr<Plan> plan_stages(const ir::Graph& graph, const mesh::Cluster& cluster,
                                 const PipeshardRequest& request, PipeshardStats* stats,
                                 Clock::time_point t0) {
  PipeshardStats local;
  ALPA_ASSIGN_OR_RETURN(Layering layering, make_layering(graph, request));
  local.num_layers = layering.num_layers;
  local.clustering_seconds = seconds_since(t0);
  std::vector<ChosenStage> chosen;
  std::vector<std::string> notes;
  if (!request.stage_meshes.empty()) {
    ALPA_ASSIGN_OR_RETURN(chosen, manual_stages(cluster, request, layering));
    notes.push_back(fmt::format("{} manual stage(s)", chosen.size()));
  } else {
    const auto t1 = Clock::now();
    CandidateProfiler profiler(graph, layering, cluster, request);
    ALPA_ASSIGN_OR_RETURN(inter_op::StageCostTable table, profiler.run(local));
    local.profiling_seconds = seconds_since(t1);
    const auto t2 = Clock::now();
    ALPA_ASSIGN_OR_RETURN(chosen, dp_stages(cluster, request, table, notes));
    local.dp_seconds = seconds_since(t2);
  }
  ALPA_ASSIGN_OR_RETURN(Plan plan, assemble(graph, cluster, request, layering, chosen));
  plan.notes = std::move(notes);
  local.total_seconds = seconds_since(t0);
  if (stats) *stats = local;
  return plan;
}

}  // namespace

}  // namespace alpa::plan
