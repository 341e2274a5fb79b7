// This file implements make_pipeshard_plan(): layering, the stage DP over
// the stage profiler's table (with the balance-rule fallback and the
// refinement of composed stages), the notes explaining the choice, and the
// assembly of the chosen stages from their candidates' solutions.
#include "plan/pipeshard_plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <optional>

#include "core/check.h"
#include "inter_op/stage_dp.h"
#include "inter_op/stage_graph.h"
#include "inter_op/stage_profiler.h"
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

/// Adds the seconds `f` takes to `seconds`.
template <typename F>
auto timed(double& seconds, F&& f) {
  const auto t0 = Clock::now();
  auto result = f();
  seconds += seconds_since(t0);
  return result;
}

mesh::SubmeshShape submesh_of(const mesh::Cluster& cluster, int64_t devices) {
  if (devices <= cluster.devices_per_host) return {1, devices};
  return {devices / cluster.devices_per_host, cluster.devices_per_host};
}

/// Layering of the graph: manual boundaries or clustering.
struct Layering {
  std::vector<int64_t> layer_of_node;
  int64_t num_layers = 0;

  /// Forward FLOPs of each layer's op nodes.
  std::vector<double> layer_flops(const ir::Graph& graph) const {
    std::vector<double> flops(static_cast<size_t>(num_layers), 0.0);
    for (const ir::Node& n : graph.nodes()) {
      if (!n.is_placeholder()) flops[static_cast<size_t>(layer_of_node[n.id.index()])] += n.flops;
    }
    return flops;
  }
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

struct ChosenStage {
  int64_t first_layer = 0;
  int64_t last_layer = 0;
  mesh::SubmeshShape submesh;
  std::array<int64_t, 2> mesh_shape{1, 1};
  /// The candidate ILP's solution for this stage (DP stages), if exact.
  const inter_op::CandidateSolution* solution = nullptr;
  bool remat = false;  ///< the stage recomputes its forward in backward
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

/// `options` with every node of `stage` pinned to the strategy the candidate
/// ILP chose for the node at the same position of its (structurally equal)
/// graph, so plan_stage reproduces the candidate's plan without CBC. nullopt
/// when the graphs do not line up.
std::optional<intra_op::IntraOpOptions> pinned_to_candidate(
    const ir::Graph& stage, const inter_op::CandidateSolution& solution,
    intra_op::IntraOpOptions options) {
  const ir::Graph& g = *solution.graph;
  if (g.num_nodes() != stage.num_nodes() ||
      static_cast<int64_t>(solution.strategies.size()) != g.num_nodes()) {
    return std::nullopt;
  }
  for (int64_t i = 0; i < g.num_nodes(); ++i) {
    const ir::Node& a = g.nodes()[static_cast<size_t>(i)];
    const ir::Node& b = stage.nodes()[static_cast<size_t>(i)];
    if (a.kind != b.kind || a.op != b.op) return std::nullopt;
    if (b.is_placeholder()) {
      options.pinned[b.name] = solution.output_specs[static_cast<size_t>(i)];
    } else {
      options.pinned_strategies[b.name] = solution.strategies[static_cast<size_t>(i)];
    }
  }
  options.pins_may_name_other_stages = true;
  return options;
}

/// Plans chosen stage `s` on its devices: from its candidate's strategies
/// when there is one, else with a full ILP solve.
core::StatusOr<SolvedStage> plan_chosen_stage(const inter_op::StageGraph& sg,
                                              const mesh::DeviceMesh& mesh,
                                              const PipeshardRequest& request,
                                              const ChosenStage& c, int64_t s) {
  if (c.solution != nullptr) {
    if (auto pinned = pinned_to_candidate(sg.graph, *c.solution, request.options)) {
      auto solved = plan_stage(sg.graph, mesh, *pinned, s);
      if (solved.ok()) return solved;
    }
  }
  return plan_stage(sg.graph, mesh, request.options, s);
}

/// Each stage's peak bytes per device with its microbatches in flight, as
/// the stage DP's memory bound counts them (inter_op/stage_profiler.h).
void set_peak_memory(Plan& plan) {
  const auto S = static_cast<int64_t>(plan.stages.size());
  for (int64_t s = 0; s < S; ++s) {
    StagePlan& st = plan.stages[static_cast<size_t>(s)];
    const int64_t f = plan.schedule == "gpipe" ? plan.num_micro_batches
                                               : std::min(S - s, plan.num_micro_batches);
    const double act = std::max(0.0, st.memory_bytes - st.parameter_memory_bytes);
    const double kept = st.remat ? act + static_cast<double>(f - 1) *
                                             std::min(act, st.input_memory_bytes)
                                 : static_cast<double>(f) * act;
    st.peak_memory_bytes = st.parameter_memory_bytes + kept;
  }
}

core::StatusOr<Plan> assemble(const ir::Graph& graph, const mesh::Cluster& cluster,
                              const PipeshardRequest& request, const Layering& layering,
                              const std::vector<ChosenStage>& chosen) {
  std::vector<mesh::SubmeshShape> shapes;
  for (const ChosenStage& c : chosen) shapes.push_back(c.submesh);
  ALPA_ASSIGN_OR_RETURN(auto placement, mesh::place_submeshes(cluster, shapes));
  Plan plan = empty_plan(graph, cluster, request.options);
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
    auto solved = plan_chosen_stage(sg, mesh, request, c, static_cast<int64_t>(s));
    if (!solved.ok()) {
      return solved.status().with_context(fmt::format(
          "planning stage {} (layers {}..{}) on logical mesh ({}, {})", s, c.first_layer,
          c.last_layer, c.mesh_shape[0], c.mesh_shape[1]));
    }
    StagePlan stage = std::move(solved->stage);
    stage.input_memory_bytes = solved->input_bytes;
    if (c.remat) {
      stage.remat = true;
      stage.recompute_time = solved->result.forward_time;
      stage.predicted_time += stage.recompute_time;
    }
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
  set_peak_memory(plan);
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
    out.push_back(ChosenStage{s, s, submesh_of(cluster, count), shape, nullptr,
                              r.remat == inter_op::Remat::kAll});
    devices += count;
  }
  if (devices != cluster.num_devices()) {
    return core::invalid_argument(fmt::format(
        "the stage meshes use {} devices but the cluster has {}; every device must belong to "
        "exactly one stage", devices, cluster.num_devices()));
  }
  return out;
}

std::string describe_stages(const inter_op::StageDPResult& r, const inter_op::StageCostTable& t) {
  std::string out;
  for (const inter_op::StageChoice& s : r.stages) {
    if (!out.empty()) out += ", ";
    out += fmt::format("layers {}..{} on {}", s.start_layer, s.end_layer,
                       t.submesh(s.submesh).to_string());
  }
  return out;
}

/// Notes explaining the DP's choice against the best single stage on the
/// whole cluster (pure intra-op) or, when that won, the best pipeline.
void explain_choice(const inter_op::StageDPRequest& dp, const inter_op::StageDPResult& result,
                    const inter_op::StageProfiler& profiler, int64_t num_devices,
                    std::vector<std::string>& notes) {
  const inter_op::StageCostTable& table = dp.table;
  const double B = static_cast<double>(dp.num_micro_batches);
  notes.push_back(fmt::format(
      "stage DP (Alpa §5.2) over {} layers x {} sub-meshes, {} microbatches: chose {} stage(s) "
      "[{}], predicted {:.6g} s per step (Σ stage times + (B-1)·t_max, t_max {:.6g} s)",
      table.num_layers(), table.num_submeshes(), dp.num_micro_batches, result.stages.size(),
      describe_stages(result, table), result.total_time, result.t_max));
  const int64_t whole = table.num_submeshes() - 1, last = table.num_layers() - 1;
  double single = std::numeric_limits<double>::infinity();
  bool composed = false;
  for (int64_t c = 0; c < table.num_configs(whole); ++c) {
    const double t = table.cost(0, last, whole, c);
    if (table.max_n_succ_stages(0, last, whole, c) >= 0 && t < single) {
      single = t;
      composed = profiler.solution(0, last, whole, c) == nullptr;
    }
  }
  if (result.stages.size() > 1) {
    notes.push_back(std::isinf(single)
        ? fmt::format("best single stage on all {} devices (pure intra-op): none fits the "
                      "memory budget (or divides over the cluster's logical meshes), so the "
                      "model must be pipelined", num_devices)
        : fmt::format("best single stage on all {} devices (pure intra-op): {:.6g} s per step "
                      "(B x {:.6g} s{}); pipelining is {:.1f}% faster", num_devices, single * B,
                      single, composed ? ", composed from 1- and 2-layer ILPs" : "",
                      100.0 * (1.0 - result.total_time / (single * B))));
    return;
  }
  // The single stage won: what would the best pipeline of >= 2 stages cost?
  inter_op::StageDPRequest pipelined = dp;
  for (int64_t c = 0; c < table.num_configs(whole); ++c) {
    pipelined.table.set_cost(0, table.num_layers() - 1, whole, c,
                             std::numeric_limits<double>::infinity());
  }
  auto best = inter_op::stage_dp(pipelined);
  notes.push_back(best.ok()
      ? fmt::format("pure intra-op: a single stage on all {} devices ({:.6g} s per step) beats "
                    "the best pipeline of >= 2 stages [{}] ({:.6g} s per step, {:.1f}% slower)",
                    num_devices, result.total_time, describe_stages(*best, table),
                    best->total_time, 100.0 * (best->total_time / result.total_time - 1.0))
      : fmt::format("pure intra-op: a single stage on all {} devices ({:.6g} s per step); no "
                    "pipeline of >= 2 stages is feasible", num_devices, result.total_time));
}

/// Runs the stage DP over the profiler's table until its choice holds only
/// exactly solved stages: when the balance rule left no feasible pipeline,
/// the skipped candidates are costed too; when the DP chose composed
/// stages, they are solved whole and the DP runs again.
core::StatusOr<std::vector<ChosenStage>> dp_stages(const mesh::Cluster& cluster,
                                                   const PipeshardRequest& r,
                                                   inter_op::StageProfiler& profiler,
                                                   PipeshardStats& stats,
                                                   std::vector<std::string>& notes) {
  inter_op::StageDPRequest dp;
  dp.num_devices = cluster.num_devices();
  dp.num_micro_batches = r.num_micro_batches;
  dp.max_num_stages = r.max_num_stages;
  core::StatusOr<inter_op::StageDPResult> result = core::internal_error("not run");
  for (;;) {
    ALPA_ASSIGN_OR_RETURN(dp.table, profiler.solve());
    result = timed(stats.dp_seconds, [&] { return inter_op::stage_dp(dp); });
    if (!result.ok()) {
      if (result.status().code() != core::StatusCode::kInfeasible) return result.status();
      ALPA_ASSIGN_OR_RETURN(bool admitted, profiler.admit_imbalanced());
      if (!admitted) return result.status();
      stats.imbalance_fallback = true;
      notes.push_back(fmt::format(
          "the balance rule (imbalance tolerance {}) left no feasible pipeline; the stages it "
          "skipped were costed too", r.imbalance_tolerance));
      continue;
    }
    ALPA_ASSIGN_OR_RETURN(bool refined, profiler.refine(result->stages));
    if (!refined) break;
    ++stats.refinement_rounds;
  }
  timed(stats.dp_seconds, [&] {
    explain_choice(dp, *result, profiler, cluster.num_devices(), notes);
    return 0;
  });
  std::vector<ChosenStage> out;
  for (const inter_op::StageChoice& s : result->stages) {
    const mesh::SubmeshShape& sm = dp.table.submesh(s.submesh);
    out.push_back(ChosenStage{s.start_layer, s.end_layer, sm,
                              profiler.logical_mesh(s.submesh, s.config),
                              profiler.solution(s.start_layer, s.end_layer, s.submesh, s.config),
                              profiler.recomputes(s.submesh, s.config)});
  }
  return out;
}

inter_op::StageProfilerOptions profiler_options(const PipeshardRequest& r) {
  inter_op::StageProfilerOptions p;
  p.options = r.options;
  p.num_micro_batches = r.num_micro_batches;
  p.schedule = r.schedule;
  p.num_threads = r.num_threads;
  p.skip_idle_mesh_axes = r.skip_idle_mesh_axes;
  p.exact_span_layers = r.exact_span_layers;
  p.remat = r.remat;
  p.progress = r.progress;
  return p;
}

/// Copies the profiler's figures into `s`.
void take_profiler_stats(const inter_op::StageProfilerStats& p, PipeshardStats& s) {
  s.num_candidates = p.num_candidates;
  s.num_pruned_no_room = p.num_pruned_no_room;
  s.num_pruned_imbalance = p.num_pruned_imbalance;
  s.num_pruned_idle_axes = p.num_pruned_idle_axes;
  s.num_costed = p.num_costed;
  s.num_composed = p.num_composed;
  s.num_optimistic = p.num_optimistic;
  s.num_refined = p.num_refined;
  s.max_composition_error = p.max_composition_error;
  s.num_solved = p.num_solved;
  s.num_time_limited = p.num_time_limited;
  s.num_stage_graphs = p.num_stage_graphs;
  s.num_distinct_stage_graphs = p.num_distinct_stage_graphs;
  s.extraction_seconds = p.extraction_seconds;
  s.profiling_seconds = p.solve_seconds;
}

std::string profiling_note(const PipeshardRequest& r, const PipeshardStats& s) {
  std::string note = fmt::format(
      "costed {} of {} candidate stages (layers i..k x sub-mesh x logical mesh) with {} distinct "
      "ILPs ({} distinct of {} stage graphs); skipped {} with no room for the other stages, {} "
      "beyond the imbalance tolerance {}, {} with an idle mesh axis",
      s.num_costed, s.num_candidates, s.num_solved, s.num_distinct_stage_graphs,
      s.num_stage_graphs, s.num_pruned_no_room, s.num_pruned_imbalance, r.imbalance_tolerance,
      s.num_pruned_idle_axes);
  if (s.num_composed + s.num_refined > 0) {
    note += fmt::format("; {} spans of more than {} layers composed from their 1- and 2-layer "
                        "pieces ({} over the memory budget, assumed to fit), {} of them chosen by "
                        "the DP and then solved whole in {} round(s) (largest composition error "
                        "{:.2g})", s.num_composed + s.num_refined, r.exact_span_layers,
                        s.num_optimistic, s.num_refined, s.refinement_rounds,
                        s.max_composition_error);
  }
  if (s.num_time_limited > 0) {
    note += fmt::format("; {} ILP(s) stopped at the time limit of {} s (best plan found, not "
                        "proven optimal)", s.num_time_limited, r.options.time_limit_s);
  }
  return note;
}

core::Status validate_request(const PipeshardRequest& request) {
  if (request.num_micro_batches < 1) {
    return core::invalid_argument(fmt::format("num_micro_batches must be >= 1, got {}",
                                              request.num_micro_batches));
  }
  if (request.schedule != "gpipe" && request.schedule != "1f1b") {
    return core::invalid_argument(fmt::format(
        "unknown pipeline schedule '{}'; use 'gpipe' or '1f1b'", request.schedule));
  }
  if (request.num_threads < 1) {
    return core::invalid_argument(fmt::format("num_threads must be >= 1, got {}",
                                              request.num_threads));
  }
  return core::ok_status();
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

core::StatusOr<Plan> make_pipeshard_plan(const ir::Graph& graph, const mesh::Cluster& cluster,
                                         const PipeshardRequest& request, PipeshardStats* stats) {
  if (!request.options.pins_may_name_other_stages) {
    // Pinned names are checked against the whole model once; each stage's
    // graph then holds only some of them.
    ALPA_RETURN_IF_ERROR(intra_op::check_pins(graph, request.options));
    PipeshardRequest relaxed = request;
    relaxed.options.pins_may_name_other_stages = true;
    return make_pipeshard_plan(graph, cluster, relaxed, stats);
  }
  const auto t0 = Clock::now();
  PipeshardStats local;
  ALPA_RETURN_IF_ERROR(ir::verify_graph(graph));
  ALPA_RETURN_IF_ERROR(cluster.validate());
  ALPA_RETURN_IF_ERROR(validate_request(request));
  ALPA_ASSIGN_OR_RETURN(Layering layering, make_layering(graph, request));
  local.num_layers = layering.num_layers;
  local.clustering_seconds = seconds_since(t0);
  std::vector<ChosenStage> chosen;
  std::vector<std::string> notes;
  // The profiler owns the candidate solutions the chosen stages point to.
  std::unique_ptr<inter_op::StagePruner> pruner;
  std::unique_ptr<inter_op::StageProfiler> profiler;
  if (!request.stage_meshes.empty()) {
    ALPA_ASSIGN_OR_RETURN(chosen, manual_stages(cluster, request, layering));
    notes.push_back(fmt::format("{} manual stage(s)", chosen.size()));
  } else {
    ALPA_ASSIGN_OR_RETURN(inter_op::StagePruner rules,
                          inter_op::StagePruner::create(layering.layer_flops(graph),
                                                        cluster.num_devices(),
                                                        request.imbalance_tolerance,
                                                        request.max_num_stages));
    pruner = std::make_unique<inter_op::StagePruner>(std::move(rules));
    profiler = std::make_unique<inter_op::StageProfiler>(
        graph, layering.layer_of_node, layering.num_layers, cluster, *pruner,
        profiler_options(request));
    ALPA_RETURN_IF_ERROR(profiler->prepare());
    auto dp = dp_stages(cluster, request, *profiler, local, notes);
    take_profiler_stats(profiler->stats(), local);
    ALPA_RETURN_IF_ERROR(dp.status());
    chosen = std::move(dp).value();
    notes.insert(notes.begin(), profiling_note(request, local));
  }
  const auto t2 = Clock::now();
  ALPA_ASSIGN_OR_RETURN(Plan plan, assemble(graph, cluster, request, layering, chosen));
  local.assembly_seconds = seconds_since(t2);
  plan.notes = std::move(notes);
  local.total_seconds = seconds_since(t0);
  if (stats) *stats = local;
  return plan;
}

}  // namespace alpa::plan
