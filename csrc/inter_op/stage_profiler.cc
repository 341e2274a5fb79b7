// This file implements the stage profiler: candidate admission under the
// pruning rules, stage graphs shared by structural hash, ILPs built in
// parallel and solved under one lock, composed long spans, and refinement.
#include "inter_op/stage_profiler.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <exception>
#include <limits>
#include <mutex>
#include <thread>

#include "inter_op/stage_graph.h"
#include "intra_op/intra_op_solver.h"
#include "mesh/device_mesh.h"

namespace alpa::inter_op {
namespace {

using Clock = std::chrono::steady_clock;
constexpr double kInf = std::numeric_limits<double>::infinity();

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

/// CBC's solver entry (CbcMain1) keeps global state and is not reentrant:
/// two solves at once in one process corrupt each other ("CBC stopped
/// without a verdict"). Candidate ILPs are built in parallel and solved one
/// at a time under this lock.
std::mutex& cbc_mutex() {
  static std::mutex mu;
  return mu;
}

}  // namespace

struct StageProfiler::Span {
  uint64_t hash = 0;
  std::shared_ptr<const ir::Graph> graph;
  std::vector<int64_t> dim_sizes;  // tensor_dim_sizes(*graph)
};

struct StageProfiler::Job {
  std::shared_ptr<const ir::Graph> graph;
  int64_t submesh = 0;
  int64_t config = 0;
  bool solved = false;
  bool feasible = false;  // false: over the budget or dims that do not divide
  bool time_limited = false;
  double seconds = kInf;
  double memory_bytes = 0;  // per device, one microbatch
  double param_bytes = 0;   // per device: parameters, gradients, optimizer state
  double input_bytes = 0;   // per device: the stage's inputs, one microbatch
  double forward_seconds = 0;  // one forward pass (what remat runs again)
  core::Status status;      // errors other than infeasibility
  CandidateSolution solution;
};

struct StageProfiler::Entry {
  int64_t first = 0, last = 0, submesh = 0, config = 0;
  int64_t job = -1;        // the whole span's ILP; -1 while composed
  bool composed = false;   // costed from its one- and two-layer pieces
  bool optimistic = false;  // composed memory over the budget: assumed to fit
  double composed_seconds = kInf;
  // A composed entry's figures (from its pieces).
  double seconds = kInf;
  double memory_bytes = 0, param_bytes = 0, input_bytes = 0, forward_seconds = 0;
};

namespace {

// Successors allowed when the first microbatch in flight needs `first`
// bytes per device (parameters included) and each further one `extra`.
int64_t in_flight_bound(double first, double extra, double budget, int64_t num_micro_batches,
                        const std::string& schedule) {
  if (first > budget) return kNeverFits;
  if (std::isinf(budget) || extra <= 0) return kUnboundedSuccessors;
  const double fit = 1.0 + std::floor((budget - first) / extra);  // microbatches in flight
  if (schedule == "gpipe") {
    return fit >= static_cast<double>(num_micro_batches) ? kUnboundedSuccessors : kNeverFits;
  }
  if (fit >= static_cast<double>(num_micro_batches)) return kUnboundedSuccessors;
  return static_cast<int64_t>(fit) - 1;
}

}  // namespace

int64_t max_successors(double param_bytes, double memory_bytes, double budget,
                       int64_t num_micro_batches, const std::string& schedule) {
  const double act = std::max(0.0, memory_bytes - param_bytes);
  return in_flight_bound(param_bytes + act, act, budget, num_micro_batches, schedule);
}

int64_t max_successors_remat(double param_bytes, double memory_bytes, double input_bytes,
                             double budget, int64_t num_micro_batches,
                             const std::string& schedule) {
  const double act = std::max(0.0, memory_bytes - param_bytes);
  return in_flight_bound(param_bytes + act, std::min(act, std::max(0.0, input_bytes)), budget,
                         num_micro_batches, schedule);
}

const char* remat_name(Remat remat) {
  switch (remat) {
    case Remat::kNone: return "none";
    case Remat::kAuto: return "auto";
    case Remat::kAll: return "all";
  }
  return "?";
}

core::StatusOr<Remat> parse_remat(const std::string& text) {
  for (Remat r : {Remat::kNone, Remat::kAuto, Remat::kAll}) {
    if (text == remat_name(r)) return r;
  }
  return core::invalid_argument(fmt::format(
      "unknown remat '{}'; use 'auto' (the planner picks per stage), 'none' or 'all'", text));
}

int64_t StageProfiler::num_configs(int64_t m) const {
  const auto n = static_cast<int64_t>(shapes_[static_cast<size_t>(m)].size());
  return options_.remat == Remat::kNone ? n : 2 * n;
}

std::array<int64_t, 2> StageProfiler::logical_mesh(int64_t m, int64_t c) const {
  const auto& shapes = shapes_[static_cast<size_t>(m)];
  return shapes[static_cast<size_t>(c) % shapes.size()];
}

bool StageProfiler::recomputes(int64_t m, int64_t c) const {
  return c >= static_cast<int64_t>(shapes_[static_cast<size_t>(m)].size());
}

StageProfiler::StageProfiler(const ir::Graph& graph, std::vector<int64_t> layer_of_node,
                             int64_t num_layers, const mesh::Cluster& cluster,
                             const StagePruner& pruner, StageProfilerOptions options)
    : graph_(graph), layer_of_node_(std::move(layer_of_node)), num_layers_(num_layers),
      cluster_(cluster), pruner_(pruner), options_(std::move(options)),
      submeshes_(mesh::enumerate_submeshes(cluster)) {
  for (const auto& m : submeshes_) shapes_.push_back(mesh::logical_mesh_shapes(m));
  span_at_.assign(static_cast<size_t>(num_layers * num_layers), nullptr);
}

StageProfiler::~StageProfiler() = default;

core::Status StageProfiler::prepare() {
  if (options_.exact_span_layers == 1 || options_.exact_span_layers < 0) {
    return core::invalid_argument(fmt::format(
        "exact_span_layers must be 0 (solve every span whole) or >= 2, got {}",
        options_.exact_span_layers));
  }
  for (int64_t i = 0; i < num_layers_; ++i) {
    for (int64_t k = i; k < num_layers_; ++k) {
      for (int64_t m = 0; m < static_cast<int64_t>(submeshes_.size()); ++m) {
        const auto configs = static_cast<int64_t>(shapes_[static_cast<size_t>(m)].size());
        stats_.num_candidates += configs;
        switch (pruner_.verdict(i, k, submeshes_[static_cast<size_t>(m)].num_devices())) {
          case StageVerdict::kNoRoom: stats_.num_pruned_no_room += configs; break;
          case StageVerdict::kImbalanced: imbalanced_.push_back({i, k, m}); break;
          case StageVerdict::kCandidate: ALPA_RETURN_IF_ERROR(admit(i, k, m)); break;
        }
      }
    }
  }
  count_imbalanced();
  return core::ok_status();
}

core::StatusOr<bool> StageProfiler::admit_imbalanced() {
  if (imbalanced_.empty()) return false;
  for (const auto& [i, k, m] : imbalanced_) ALPA_RETURN_IF_ERROR(admit(i, k, m));
  imbalanced_.clear();
  count_imbalanced();
  return true;
}

void StageProfiler::count_imbalanced() {
  stats_.num_pruned_imbalance = 0;
  for (const auto& e : imbalanced_) {
    stats_.num_pruned_imbalance += static_cast<int64_t>(shapes_[static_cast<size_t>(e[2])].size());
  }
}

core::Status StageProfiler::admit(int64_t i, int64_t k, int64_t m) {
  ALPA_ASSIGN_OR_RETURN(const Span* span, span_of(i, k));
  const auto& shapes = shapes_[static_cast<size_t>(m)];
  const bool whole = options_.exact_span_layers == 0 || k - i + 1 <= options_.exact_span_layers;
  for (int64_t c = 0; c < static_cast<int64_t>(shapes.size()); ++c) {
    if (options_.skip_idle_mesh_axes &&
        has_idle_axis(shapes[static_cast<size_t>(c)], span->dim_sizes)) {
      ++stats_.num_pruned_idle_axes;
      continue;
    }
    Entry e{i, k, m, c};
    if (whole) {
      ALPA_ASSIGN_OR_RETURN(e.job, job_for(i, k, m, c));
    } else {
      e.composed = true;
      for (int64_t l = i; l < k; ++l) ALPA_RETURN_IF_ERROR(job_for(l, l + 1, m, c).status());
      for (int64_t l = i + 1; l < k; ++l) ALPA_RETURN_IF_ERROR(job_for(l, l, m, c).status());
    }
    entry_index_[{i, k, m, c}] = entries_.size();
    entries_.push_back(e);
  }
  return core::ok_status();
}

core::StatusOr<const StageProfiler::Span*> StageProfiler::span_of(int64_t i, int64_t k) {
  const Span*& slot = span_at_[static_cast<size_t>(i * num_layers_ + k)];
  if (slot != nullptr) return slot;
  const auto t0 = Clock::now();
  ALPA_ASSIGN_OR_RETURN(StageGraph sg,
                        extract_stage_graph(graph_, layer_of_node_, i, k, num_layers_));
  const uint64_t hash = structural_hash(sg.graph);
  auto it = span_of_hash_.find(hash);
  if (it == span_of_hash_.end()) {
    auto span = std::make_unique<Span>();
    span->hash = hash;
    span->dim_sizes = tensor_dim_sizes(sg.graph);
    span->graph = std::make_shared<const ir::Graph>(std::move(sg.graph));
    it = span_of_hash_.emplace(hash, span.get()).first;
    owned_spans_.push_back(std::move(span));
  }
  slot = it->second;
  ++stats_.num_stage_graphs;
  stats_.num_distinct_stage_graphs = static_cast<int64_t>(owned_spans_.size());
  stats_.extraction_seconds += seconds_since(t0);
  return slot;
}

core::StatusOr<int64_t> StageProfiler::job_for(int64_t i, int64_t k, int64_t m, int64_t c) {
  ALPA_ASSIGN_OR_RETURN(const Span* span, span_of(i, k));
  auto [it, fresh] = job_index_.emplace(std::make_tuple(span->hash, m, c),
                                        static_cast<int64_t>(jobs_.size()));
  if (fresh) {
    auto job = std::make_unique<Job>();
    job->graph = span->graph;
    job->submesh = m;
    job->config = c;
    jobs_.push_back(std::move(job));
  }
  return it->second;
}

void StageProfiler::solve_jobs() {
  std::vector<Job*> todo;
  for (auto& job : jobs_) {
    if (!job->solved) todo.push_back(job.get());
  }
  std::atomic<size_t> next{0};
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::exception_ptr error;
  auto worker = [&] {
    for (size_t t = next++; t < todo.size() && !stop; t = next++) {
      solve_job(*todo[t]);
      std::lock_guard<std::mutex> lock(mu);
      ++num_done_;
      if (!options_.progress || error) continue;
      try {
        options_.progress(num_done_, static_cast<int64_t>(jobs_.size()));
      } catch (...) {
        error = std::current_exception();
        stop = true;
      }
    }
  };
  const int threads = std::max(1, std::min<int>(options_.num_threads,
                                                static_cast<int>(todo.size())));
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

void StageProfiler::solve_job(Job& job) const {
  job.solved = true;
  const mesh::SubmeshShape& sm = submeshes_[static_cast<size_t>(job.submesh)];
  const auto shape = shapes_[static_cast<size_t>(job.submesh)][static_cast<size_t>(job.config)];
  std::vector<int64_t> ids(static_cast<size_t>(sm.num_devices()));
  for (size_t d = 0; d < ids.size(); ++d) ids[d] = static_cast<int64_t>(d);
  auto mesh = mesh::DeviceMesh::create(cluster_, shape, ids);
  if (!mesh.ok()) {
    job.status = mesh.status();
    return;
  }
  intra_op::IntraOpOptions options = options_.options;
  options.num_threads = 1;
  auto cg = intra_op::CostGraph::build(*job.graph, *mesh, options);
  core::StatusOr<intra_op::IntraOpResult> result = cg.status();
  if (cg.ok()) {
    std::lock_guard<std::mutex> lock(cbc_mutex());
    result = intra_op::solve_intra_op(*cg, options);
  }
  if (!result.ok()) {
    // A stage that cannot fit the budget, or whose dims do not divide over
    // this mesh, is simply not a candidate.
    const core::StatusCode code = result.status().code();
    if (code != core::StatusCode::kInfeasible && code != core::StatusCode::kInvalidArgument) {
      job.status = result.status();
    }
    return;
  }
  job.solution.graph = job.graph;
  for (const ir::Node& n : job.graph->nodes()) {
    const intra_op::NodeCosts& costs = cg->nodes()[n.id.index()];
    const size_t choice = static_cast<size_t>(result->choice[n.id.index()]);
    const sharding::Strategy& s = costs.strategies[choice];
    job.solution.strategies.push_back(s.name);
    job.solution.output_specs.push_back(s.outputs.empty() ? sharding::ShardingSpec()
                                                          : s.outputs[0]);
    if (n.kind == ir::NodeKind::kParameter || n.kind == ir::NodeKind::kBuffer) {
      job.param_bytes += costs.memory[choice];
    } else if (n.kind == ir::NodeKind::kInput) {
      job.input_bytes += costs.memory[choice];
    }
  }
  job.feasible = true;
  job.time_limited = result->status == intra_op::IlpSolveStatus::kTimeLimitFeasible;
  job.seconds = result->objective;
  job.memory_bytes = result->memory_bytes;
  job.forward_seconds = result->forward_time;
}

core::Status StageProfiler::compose(Entry& e) {
  double seconds = 0, memory = 0, params = 0, forward = 0;
  bool feasible = true;
  auto add = [&](int64_t i, int64_t k, double sign) -> core::Status {
    ALPA_ASSIGN_OR_RETURN(int64_t j, job_for(i, k, e.submesh, e.config));
    const Job& piece = *jobs_[static_cast<size_t>(j)];
    seconds += sign * piece.seconds;
    memory += sign * piece.memory_bytes;
    params += sign * piece.param_bytes;
    forward += sign * piece.forward_seconds;
    feasible = feasible && piece.feasible;
    return core::ok_status();
  };
  for (int64_t l = e.first; l < e.last; ++l) ALPA_RETURN_IF_ERROR(add(l, l + 1, 1.0));
  for (int64_t l = e.first + 1; l < e.last; ++l) ALPA_RETURN_IF_ERROR(add(l, l, -1.0));
  e.composed_seconds = feasible ? seconds : kInf;
  e.seconds = e.composed_seconds;
  e.optimistic = feasible && memory > options_.options.memory_budget;
  e.memory_bytes = memory;
  e.param_bytes = params;
  e.forward_seconds = forward;
  // The span's inputs are its first layers' (the first piece's inputs).
  ALPA_ASSIGN_OR_RETURN(int64_t first, job_for(e.first, e.first + 1, e.submesh, e.config));
  e.input_bytes = jobs_[static_cast<size_t>(first)]->input_bytes;
  if (!feasible) e.seconds = kInf;
  return core::ok_status();
}

core::StatusOr<bool> StageProfiler::refine(const std::vector<StageChoice>& stages) {
  bool changed = false;
  for (const StageChoice& s : stages) {
    const int64_t base = s.config % static_cast<int64_t>(shapes_[static_cast<size_t>(s.submesh)].size());
    auto it = entry_index_.find({s.start_layer, s.end_layer, s.submesh, base});
    if (it == entry_index_.end()) continue;
    Entry& e = entries_[it->second];
    if (e.job >= 0) continue;
    ALPA_ASSIGN_OR_RETURN(e.job, job_for(e.first, e.last, e.submesh, e.config));
    ++stats_.num_refined;
    changed = true;
  }
  return changed;
}

core::StatusOr<StageCostTable> StageProfiler::solve() {
  const auto t0 = Clock::now();
  solve_jobs();
  for (const auto& job : jobs_) ALPA_RETURN_IF_ERROR(job->status);
  for (Entry& e : entries_) {
    if (e.job < 0) ALPA_RETURN_IF_ERROR(compose(e));
  }
  stats_.solve_seconds += seconds_since(t0);
  return table();
}

core::StatusOr<StageCostTable> StageProfiler::table() {
  std::vector<int64_t> configs;
  for (int64_t m = 0; m < static_cast<int64_t>(shapes_.size()); ++m) configs.push_back(num_configs(m));
  ALPA_ASSIGN_OR_RETURN(auto table, StageCostTable::create(num_layers_, submeshes_, configs));
  const double budget = options_.options.memory_budget;
  const int64_t B = options_.num_micro_batches;
  StageProfilerStats& stats = stats_;  // recounted from scratch
  stats.num_costed = static_cast<int64_t>(entries_.size());
  stats.num_composed = 0;
  stats.num_optimistic = 0;
  stats.num_solved = static_cast<int64_t>(jobs_.size());
  stats.num_time_limited = 0;
  for (const auto& job : jobs_) stats.num_time_limited += job->time_limited ? 1 : 0;
  for (const Entry& e : entries_) {
    double seconds = e.seconds, memory = e.memory_bytes, params = e.param_bytes;
    double inputs = e.input_bytes, forward = e.forward_seconds;
    bool feasible = !std::isinf(e.seconds), optimistic = e.optimistic;
    if (e.job >= 0) {
      const Job& job = *jobs_[static_cast<size_t>(e.job)];
      seconds = job.feasible ? job.seconds : kInf;
      memory = job.memory_bytes;
      params = job.param_bytes;
      inputs = job.input_bytes;
      forward = job.forward_seconds;
      feasible = job.feasible;
      optimistic = false;
      if (e.composed && !e.optimistic && job.feasible && job.seconds > 0 &&
          !std::isinf(e.composed_seconds)) {  // refined: how far off was the composition?
        const double error = std::abs(job.seconds - e.composed_seconds) / job.seconds;
        stats.max_composition_error = std::max(stats.max_composition_error, error);
      }
    } else {
      ++stats.num_composed;
      stats.num_optimistic += e.optimistic ? 1 : 0;
    }
    const std::string& schedule = options_.schedule;
    auto bound = [&](bool remat) {
      if (!feasible) return kNeverFits;
      if (optimistic) return kUnboundedSuccessors;
      return remat ? max_successors_remat(params, memory, inputs, budget, B, schedule)
                   : max_successors(params, memory, budget, B, schedule);
    };
    if (options_.remat != Remat::kAll) {
      table.set_cost(e.first, e.last, e.submesh, e.config, seconds);
      table.set_max_n_succ_stages(e.first, e.last, e.submesh, e.config, bound(false));
    }
    if (options_.remat != Remat::kNone) {
      const int64_t c = e.config + static_cast<int64_t>(shapes_[static_cast<size_t>(e.submesh)].size());
      table.set_cost(e.first, e.last, e.submesh, c, seconds + forward);
      table.set_max_n_succ_stages(e.first, e.last, e.submesh, c, bound(true));
    }
  }
  return table;
}

const CandidateSolution* StageProfiler::solution(int64_t i, int64_t k, int64_t m,
                                                 int64_t c) const {
  c %= static_cast<int64_t>(shapes_[static_cast<size_t>(m)].size());
  auto it = entry_index_.find({i, k, m, c});
  if (it == entry_index_.end()) return nullptr;
  const Entry& e = entries_[it->second];
  if (e.job < 0) return nullptr;
  const Job& job = *jobs_[static_cast<size_t>(e.job)];
  return job.feasible ? &job.solution : nullptr;
}

}  // namespace alpa::inter_op
