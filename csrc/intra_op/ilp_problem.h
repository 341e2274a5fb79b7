// This file implements the intra-op ILP as plain data (Alpa §4): per-node
// strategy costs, per-edge resharding cost matrices, per-strategy memory
// and liveness, with no graph types. The cost graph builds it; the CBC
// solver (ilp_solver.h) and the independent evaluator (evaluator.h) read
// it; JSON lets tests, benchmarks and Python build one without a model.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"
#include "core/status.h"

namespace alpa::intra_op {

/// Index of a node (an op, or a group of follow-merged ops) in IlpProblem.
using NodeIdx = int64_t;
/// Index of a strategy within one node's strategy list.
using StrategyIdx = int64_t;
/// Index into IlpProblem::edges.
using EdgeIdx = int64_t;
/// Index into IlpProblem::liveness (a point in the op schedule).
using TimeIdx = int64_t;

inline constexpr double kInfinity = std::numeric_limits<double>::infinity();
/// Largest finite cost (seconds) and memory entry (bytes) a problem may
/// hold: sums over 2^30 entries stay finite.
inline constexpr double kMaxIlpCost = 1e30;
inline constexpr double kMaxIlpBytes = 1e30;

/// Minimize Σ_i cost(i, k_i) + Σ_(i,j) R_ij[k_i][k_j] subject to
/// Σ_{i live at t} memory(i, k_i) ≤ memory_budget for every time point t.
/// A cost of +inf forbids that strategy (or strategy pair).
struct IlpProblem {
  struct Edge {
    NodeIdx src = 0;
    NodeIdx dst = 0;
    /// costs[k_src][k_dst]: resharding time in seconds; +inf = forbidden.
    std::vector<std::vector<double>> costs;
  };

  /// node_costs[i][k]: compute + communication time of node i under
  /// strategy k, in seconds (c_i + d_i); +inf = forbidden. Node i has
  /// node_costs[i].size() >= 1 strategies.
  std::vector<std::vector<double>> node_costs;
  std::vector<Edge> edges;
  /// node_memory[i][k]: bytes per device node i keeps while live under
  /// strategy k. Empty = no memory terms.
  std::vector<std::vector<double>> node_memory;
  /// liveness[t]: the nodes live at time point t (no duplicates).
  std::vector<std::vector<NodeIdx>> liveness;
  /// Bytes per device; +inf = unconstrained.
  double memory_budget = kInfinity;

  int64_t num_nodes() const { return static_cast<int64_t>(node_costs.size()); }
  int64_t num_strategies(NodeIdx node) const {
    return static_cast<int64_t>(node_costs[static_cast<size_t>(node)].size());
  }
  bool has_memory() const { return !node_memory.empty(); }
  /// memory(i, k) in bytes; 0 when the problem has no memory terms.
  double memory(NodeIdx node, StrategyIdx strategy) const;

  /// OK when sizes agree, indices are in range, every cost is in
  /// [0, kMaxIlpCost] or +inf, every memory value in [0, kMaxIlpBytes], the
  /// budget is >= 0 (or +inf), and there are at most 2^30 entries.
  /// Errors are InvalidArgument and name the offending entry and value.
  core::Status validate() const;

  /// {"node_costs": [[...]], "edges": [{"src","dst","costs"}],
  ///  "node_memory": [[...]], "liveness": [[...]], "memory_budget": x}.
  /// Doubles round-trip bit-exactly; +inf is the string "Infinity" in text
  /// (dump_json), and the bare token Infinity of older files still reads.
  core::Json to_json() const;
  /// Reads to_json()'s form; only "node_costs" is required and an unknown
  /// field is a ParseError. Does not validate(); callers that take user
  /// input should.
  static core::StatusOr<IlpProblem> from_json(const core::Json& json);

  /// Compact JSON text (dump_json(to_json())); from_string reads it back.
  std::string to_string() const;
  static core::StatusOr<IlpProblem> from_string(std::string_view text);
};

/// How the solver ended.
enum class IlpSolveStatus {
  kOptimal,            // proven optimal (or trivial: nothing to choose)
  kTimeLimitFeasible,  // time limit hit; best plan found so far
  kWithinGap           // proven within IlpOptions.memory_gap of the optimum
};

const char* ilp_solve_status_name(IlpSolveStatus status);

struct IlpSolution {
  /// choice[i]: the strategy picked for node i.
  std::vector<StrategyIdx> choice;
  /// Seconds, as re-evaluated by evaluate() on `choice`.
  double objective = 0.0;
  /// Bytes per device at the busiest time point (0 without memory terms).
  double memory_peak = 0.0;
  /// Seconds: no plan is cheaper than this (the objective when optimal;
  /// below it by the proven gap when kWithinGap; 0 when unknown, after a
  /// time limit).
  double lower_bound = 0.0;
  IlpSolveStatus status = IlpSolveStatus::kOptimal;
  /// Wall-clock seconds spent in solve_ilp (presolve + CBC).
  double solve_seconds = 0.0;
  /// Size of the model handed to CBC (0 and 0 when CBC was not needed).
  int64_t num_variables = 0;
  int64_t num_constraints = 0;

  /// "optimal objective=... s peak=... choice=[0,2,1]".
  std::string to_string() const;
};

/// "2.50 GiB (2684354560 bytes)" for messages about memory.
std::string format_bytes(double bytes);

}  // namespace alpa::intra_op
