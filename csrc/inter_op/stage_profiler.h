// This file implements the stage profiler of the pipeshard planner: the cost
// table t(i, k, m, c) of the stage DP (Alpa §5.2), one intra-op ILP per
// candidate stage (layers i..k on sub-mesh m with logical mesh c), over the
// candidates the rules of stage_pruning.h keep.
//
//   spans i..k ──extract_stage_graph──▶ stage graphs ──structural_hash──▶
//     equal graphs (the identical blocks of a transformer) share one ILP
//     per logical mesh; ILPs built in parallel, solved one at a time (CBC is
//     not reentrant)
//
// Composition. Only spans of at most `exact_span_layers` layers are solved
// as a whole; a longer span's cost (and memory) is composed from the spans
// of one and two layers it is made of (a two-body expansion, exact when
// neighbouring layers are the only ones that interact, e.g. equal blocks
// whose optimal layouts repeat):
//
//   t(i..k) ≈ Σ_{l=i}^{k-1} t(l..l+1) − Σ_{l=i+1}^{k-1} t(l..l)
//
// A span with an infeasible piece is infeasible (it holds at least that
// piece's memory). A composed span whose memory exceeds the budget is
// entered optimistically (its pieces' time, no memory bound): each piece's
// layout fits alone, a costlier layout of the whole may fit, and only the
// DP can tell whether it matters. refine() marks the composed entries the
// stage DP chose to be solved whole, and the planner reruns the DP until
// every chosen stage has an exact cost (lazy evaluation: composed costs only
// steer the search; the final plan reports exact ILP solutions).
//
// Rematerialization (issue 14) is a per-stage choice of the DP: with remat
// allowed the table has two configs per logical mesh, c (activations kept)
// and c + C (C = logical meshes of the sub-mesh; the stage's forward runs
// again in backward, microbatch by microbatch). A remat config costs the
// ILP's time plus its forward time, and each microbatch in flight keeps
// only the stage's inputs; the one being recomputed holds its whole
// activations (max_successors_remat).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "core/status.h"
#include "inter_op/stage_dp.h"
#include "inter_op/stage_pruning.h"
#include "intra_op/cost_graph.h"
#include "ir/graph.h"
#include "mesh/cluster.h"
#include "mesh/submesh.h"
#include "sharding/sharding_spec.h"

namespace alpa::inter_op {

/// Which stages recompute their forward in backward.
enum class Remat { kNone, kAuto, kAll };
/// "none" | "auto" | "all".
const char* remat_name(Remat remat);
core::StatusOr<Remat> parse_remat(const std::string& text);

struct StageProfilerOptions {
  /// Options of every candidate ILP; `memory_budget` (bytes per device) also
  /// bounds the microbatches in flight (Alpa §5.2).
  intra_op::IntraOpOptions options;
  int64_t num_micro_batches = 1;
  std::string schedule = "1f1b";  ///< "gpipe" | "1f1b"
  int num_threads = 1;            ///< ILPs built at once (≥ 1)
  bool skip_idle_mesh_axes = true;
  /// Spans of at most this many layers (≥ 2) are solved whole, longer ones
  /// composed (file header); 0 solves every span whole.
  int64_t exact_span_layers = 2;
  /// kAuto: the DP picks per stage; kAll: every stage recomputes.
  Remat remat = Remat::kAuto;
  /// Called after each distinct ILP is solved with (solved so far, distinct
  /// ILPs known so far); serialized. If it throws, no further ILP starts and
  /// the exception propagates out of the call that was solving.
  std::function<void(int64_t done, int64_t total)> progress;
};

struct StageProfilerStats {
  int64_t num_candidates = 0;        ///< (i, k, m, c) entries in all
  int64_t num_pruned_no_room = 0;
  int64_t num_pruned_imbalance = 0;  ///< still skipped by the balance rule
  int64_t num_pruned_idle_axes = 0;
  int64_t num_costed = 0;            ///< entries with a cost (solved or composed)
  int64_t num_composed = 0;          ///< of those, composed from shorter spans
  int64_t num_optimistic = 0;        ///< of those, over the budget, assumed to fit
  int64_t num_refined = 0;           ///< composed entries later solved whole
  /// max |whole − composed| / whole over the refined entries that fit the
  /// budget when composed (optimistic ones are off by design).
  double max_composition_error = 0;
  int64_t num_solved = 0;            ///< distinct ILPs solved
  int64_t num_time_limited = 0;      ///< of those, stopped by the time limit
  int64_t num_stage_graphs = 0;      ///< spans cut out of the graph
  int64_t num_distinct_stage_graphs = 0;
  double extraction_seconds = 0;     ///< cutting and hashing stage graphs
  double solve_seconds = 0;          ///< building and solving ILPs
};

/// The strategies a candidate's ILP chose, by node position in its stage
/// graph (structurally equal to every span that shares the ILP).
struct CandidateSolution {
  std::shared_ptr<const ir::Graph> graph;
  std::vector<std::string> strategies;              ///< strategy name per node
  std::vector<sharding::ShardingSpec> output_specs;  ///< output 0's spec per node
};

class StageProfiler {
 public:
  /// `layer_of_node`: layer of every node of `graph` (L = num_layers).
  StageProfiler(const ir::Graph& graph, std::vector<int64_t> layer_of_node, int64_t num_layers,
                const mesh::Cluster& cluster, const StagePruner& pruner,
                StageProfilerOptions options);
  ~StageProfiler();

  /// Applies the pruning rules and lists the ILPs to solve.
  core::Status prepare();
  /// Solves the ILPs not solved yet, composes the long spans, and returns
  /// the cost table (+inf where skipped or infeasible).
  core::StatusOr<StageCostTable> solve();
  /// Admits the candidates the balance rule skipped; false when none were.
  core::StatusOr<bool> admit_imbalanced();
  /// Marks the composed entries among `stages` to be solved whole by the
  /// next solve(); false when all of them are already exact.
  core::StatusOr<bool> refine(const std::vector<StageChoice>& stages);
  /// The solution of the exact entry (i, k, m, c); nullptr when composed,
  /// skipped or infeasible.
  const CandidateSolution* solution(int64_t i, int64_t k, int64_t m, int64_t c) const;

  /// Configs of the table for sub-mesh m: its logical meshes, twice over
  /// when remat is allowed. The logical mesh of table config c, and whether
  /// it recomputes.
  int64_t num_configs(int64_t m) const;
  std::array<int64_t, 2> logical_mesh(int64_t m, int64_t c) const;
  bool recomputes(int64_t m, int64_t c) const;

  const std::vector<mesh::SubmeshShape>& submeshes() const { return submeshes_; }
  const StageProfilerStats& stats() const { return stats_; }

 private:
  struct Job;
  struct Span;
  struct Entry;

  core::Status admit(int64_t i, int64_t k, int64_t m);
  core::StatusOr<const Span*> span_of(int64_t i, int64_t k);
  core::StatusOr<int64_t> job_for(int64_t i, int64_t k, int64_t m, int64_t c);
  void solve_jobs();
  void solve_job(Job& job) const;
  core::Status compose(Entry& e);
  core::StatusOr<StageCostTable> table();
  void count_imbalanced();

  const ir::Graph& graph_;
  std::vector<int64_t> layer_of_node_;
  int64_t num_layers_ = 0;
  const mesh::Cluster& cluster_;
  const StagePruner& pruner_;
  StageProfilerOptions options_;
  std::vector<mesh::SubmeshShape> submeshes_;
  std::vector<std::vector<std::array<int64_t, 2>>> shapes_;  // logical meshes per sub-mesh
  std::vector<const Span*> span_at_;                        // [i·L + k]; null: not cut yet
  std::vector<std::unique_ptr<Span>> owned_spans_;           // one per distinct hash
  std::map<uint64_t, const Span*> span_of_hash_;
  std::vector<std::unique_ptr<Job>> jobs_;
  std::map<std::tuple<uint64_t, int64_t, int64_t>, int64_t> job_index_;
  std::vector<Entry> entries_;
  std::map<std::array<int64_t, 4>, size_t> entry_index_;
  std::vector<std::array<int64_t, 3>> imbalanced_;  // (i, k, m) skipped by the balance rule
  StageProfilerStats stats_;
  int64_t num_done_ = 0;
};

/// Alpa §5.2's memory bound: how many stages may follow a stage holding
/// `param_bytes` per device of parameters, gradients and optimizer state
/// and `memory_bytes` in all for one microbatch, under a per-device
/// `budget`. 1F1B: a stage followed by s stages keeps min(s + 1, B)
/// microbatches of activations; GPipe: all B. kNeverFits when even one
/// microbatch does not fit, kUnboundedSuccessors when any count does.
int64_t max_successors(double param_bytes, double memory_bytes, double budget,
                       int64_t num_micro_batches, const std::string& schedule);

/// The same bound for a stage that recomputes its forward: each microbatch
/// in flight keeps `input_bytes` per device (the stage's inputs), and one,
/// recomputed for its backward, holds `memory_bytes − param_bytes` of
/// activations. kUnboundedSuccessors when inputs take no memory.
int64_t max_successors_remat(double param_bytes, double memory_bytes, double input_bytes,
                             double budget, int64_t num_micro_batches,
                             const std::string& schedule);

}  // namespace alpa::inter_op
