// This file implements solve_ilp(): the CBC model of the intra-op ILP (Alpa
// §4, DESIGN.md §5) after the exact presolve of ilp_presolve.h, the search
// rounds that make CBC's answer trustworthy, and reading CBC's answer back.
// It is the only file that includes CBC.
//
// Formulation, for free nodes i with strategies k and edges (i, j):
//   s_ik ∈ {0,1}, Σ_k s_ik = 1                       one strategy per node
//   e_ij,kl ∈ [0,1], Σ_l e_ij,kl = s_ik, Σ_k e_ij,kl = s_jl
//   min Σ_ik cost_ik s_ik + Σ_ij,kl R_ij[k][l] e_ij,kl
//   Σ_{i∈live(t)} Σ_k (m_ik − min_k m_ik) s_ik ≤ M − Σ_{i∈live(t)} min_k m_ik
// The edge rows are DESIGN's "Σ e = 1, rows ≤ s_i, columns ≤ s_j" written
// as equalities: summing the row bounds over k gives 1 ≤ Σ_k s_ik = 1, so
// every row bound is tight anyway. With s integral the marginals of e are
// one-hot, which leaves exactly one feasible e (e_ij,k*l* = 1, the rest 0):
// e can be continuous and CBC branches only on s. A +inf cost leaves its
// column out of the model, so the objective only sees finite coefficients.
//
// CBC's tolerances are absolute, so the model is scaled to the objective:
//  * the objective is divided by S = max(lower bound, largest cost · 1e-6),
//    so a plan's objective reads ≥ 1 whenever the lower bound is positive;
//  * CBC's answer is trusted (called optimal) only when S ≤ 8 × its
//    objective: then CBC's absolute gaps of 1e-9 (and CLP's dual
//    tolerance, set to 1e-10) are ≤ 8e-9 of the objective. Otherwise the search runs again with S re-sized to the plan
//    found, every cost above it left out (costs are ≥ 0, so no cheaper plan
//    uses one) and that plan as the cutoff. Each such round divides the
//    objective by more than 8e6, so there are few (in practice one);
//  * memory rows are divided by their right-hand side; presolve guarantees
//    every term is at most it, so coefficients lie in (0, 1]. Terms below
//    1e-9 of a row are left out, and every plan CBC returns is re-checked
//    exactly by evaluate(): a plan over the budget (by CBC's feasibility
//    tolerance or a dropped term) gets a no-good cut over the strategies of
//    its violated time point and the search runs again. Every plan returned
//    fits the budget exactly.
//
// Memory-bound problems (a memory row can bind) start warm: the model
// without its memory rows is solved first (its LP is almost always
// integral, so this is fast); if that plan fits the budget it is optimal,
// else ilp_heuristic.h fits it to the budget and CBC starts from the result
// as its incumbent. Their LP bound sits a few tenths of a percent below the
// optimum (a knapsack over near-equal layers), so closing that gap exactly
// can take minutes; IlpOptions.memory_gap lets CBC stop once the incumbent
// is proven within that fraction (status kWithinGap, lower_bound reported).
//
// CBC's solver entry (CbcMain1) keeps process-wide state and is not
// reentrant: every CBC call in the process runs under one lock, with CBC's
// output off.
#include "intra_op/ilp_solver.h"

#include <coin/Cbc_C_Interface.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include <fmt/format.h>

#include "core/check.h"
#include "intra_op/evaluator.h"
#include "intra_op/ilp_heuristic.h"
#include "intra_op/ilp_presolve.h"

namespace alpa::intra_op {
namespace {

using core::Status;
using core::StatusOr;
using detail::kFree;
using detail::Matrix;
using detail::MemoryRow;
using detail::Presolved;
using Clock = std::chrono::steady_clock;

constexpr int kNoColumn = -1;
// Objective scale: S ≥ largest cost · kCostRange keeps the scaled costs ≤ 1e6.
constexpr double kCostRange = 1e-6;
// CBC's answer is trusted when S ≤ kTrustedScale × the plan's objective.
constexpr double kTrustedScale = 8.0;
// CBC's relative and absolute (scaled) optimality gaps.
constexpr double kCbcGap = 1e-9;
// Scaled objective coefficients below this are 0; memory terms below this
// fraction of their row are left out (the exact re-check keeps plans in
// budget).
constexpr double kTinyObjective = 1e-12;
constexpr double kTinyMemoryTerm = 1e-9;
// Rounds of no-good cuts before giving up (each removes a plan over the
// budget; only plans within CBC's tolerance of the budget ever need one).
constexpr int kMaxCutRounds = 64;
// Rounds of re-scaling: each divides the objective by > 8e6 (see above), so
// a double's range allows fewer than 100.
constexpr int kMaxScaleRounds = 128;
constexpr double kMaxCbcSeconds = 1e8;
// A start plan's cutoff is this fraction above its objective (CBC keeps the
// start only when it is below the cutoff).
constexpr double kStartCutoffSlack = 1e-7;
// A proven bound this close to the plan (relative) makes the plan optimal.
constexpr double kOptimalGap = 1e-8;

std::mutex& cbc_mutex() {
  static std::mutex mu;
  return mu;
}

/// A plan excluded by a no-good cut: these (node, strategy) picks together.
using Cut = std::vector<std::pair<NodeIdx, StrategyIdx>>;

// Column-wise model for Cbc_loadProblem. Every column is in [0, 1].
struct CbcModelData {
  std::vector<double> obj;
  std::vector<bool> is_integer;
  std::vector<std::vector<std::pair<int, double>>> columns;  // (row, coef)
  std::vector<double> row_lb, row_ub;
  // node_cols[i][k]: the column of s_ik; kNoColumn when node i is fixed
  // (empty vector) or strategy k is forbidden or left out.
  std::vector<std::vector<int>> node_cols;

  int add_col(double cost, bool integer) {
    obj.push_back(cost < kTinyObjective ? 0.0 : cost);
    is_integer.push_back(integer);
    columns.emplace_back();
    return static_cast<int>(columns.size()) - 1;
  }
  int add_row(double lb, double ub) {
    row_lb.push_back(lb);
    row_ub.push_back(ub);
    return static_cast<int>(row_lb.size()) - 1;
  }
  void set(int row, int col, double coef) {
    columns[static_cast<size_t>(col)].emplace_back(row, coef);
  }
};

/// What the model keeps: costs ≤ `prune_above` (seconds), divided by `scale`.
struct ModelScale {
  double scale = 1.0;
  double prune_above = kInfinity;
  bool keeps(double cost) const { return std::isfinite(cost) && cost <= prune_above; }
};

void add_node_columns(const Presolved& ps, const ModelScale& ms, CbcModelData& data) {
  data.node_cols.assign(ps.costs.size(), {});
  for (size_t i = 0; i < ps.costs.size(); ++i) {
    if (ps.fixed[i] != kFree) continue;
    int row = data.add_row(1.0, 1.0);  // Σ_k s_ik = 1
    data.node_cols[i].assign(ps.costs[i].size(), kNoColumn);
    for (size_t k = 0; k < ps.costs[i].size(); ++k) {
      if (!ms.keeps(ps.costs[i][k])) continue;
      int col = data.add_col(ps.costs[i][k] / ms.scale, true);
      data.node_cols[i][k] = col;
      data.set(row, col, 1.0);
    }
  }
}

// Strategies whose rows (or columns) of an edge's cost matrix are equal are
// interchangeable on that edge, so the edge needs one e variable per pair of
// groups, not per pair of strategies: with g_a = Σ_{k∈a} s_ik and
// h_b = Σ_{l∈b} s_jl, the rows Σ_b e_ab = g_a and Σ_a e_ab = h_b keep the
// argument above intact (integral s makes g and h one-hot). Consumers read a
// few distinct specs per input, so this shrinks e by an order of magnitude.
std::vector<int> group_equal(const Matrix& m, const std::vector<int>& rows_allowed,
                             const std::vector<int>& cols_allowed, bool by_row, int& num_groups) {
  size_t n = by_row ? rows_allowed.size() : cols_allowed.size();
  std::vector<int> group(n, kNoColumn);
  std::map<std::vector<double>, int> seen;
  for (size_t x = 0; x < n; ++x) {
    if ((by_row ? rows_allowed : cols_allowed)[x] == kNoColumn) continue;
    std::vector<double> key;
    const std::vector<int>& other = by_row ? cols_allowed : rows_allowed;
    for (size_t y = 0; y < other.size(); ++y) {
      if (other[y] == kNoColumn) continue;
      key.push_back(by_row ? m[x][y] : m[y][x]);
    }
    auto it = seen.emplace(std::move(key), static_cast<int>(seen.size())).first;
    group[x] = it->second;
  }
  num_groups = static_cast<int>(seen.size());
  return group;
}

// One group-row per group of strategies of one endpoint: Σ e − g = 0.
std::vector<int> group_rows(const std::vector<int>& cols, const std::vector<int>& group,
                            int num_groups, std::vector<size_t>& representative,
                            CbcModelData& data) {
  std::vector<int> rows(static_cast<size_t>(num_groups));
  for (int& r : rows) r = data.add_row(0.0, 0.0);
  representative.assign(static_cast<size_t>(num_groups), 0);
  for (size_t k = 0; k < cols.size(); ++k) {
    if (group[k] == kNoColumn) continue;
    data.set(rows[static_cast<size_t>(group[k])], cols[k], -1.0);
    representative[static_cast<size_t>(group[k])] = k;
  }
  return rows;
}

void add_edge_columns(const Presolved& ps, const ModelScale& ms, CbcModelData& data) {
  for (const auto& [key, matrix] : ps.edges) {
    const std::vector<int>& a_cols = data.node_cols[static_cast<size_t>(key.first)];
    const std::vector<int>& b_cols = data.node_cols[static_cast<size_t>(key.second)];
    int num_a = 0, num_b = 0;
    std::vector<int> group_k = group_equal(matrix, a_cols, b_cols, true, num_a);
    std::vector<int> group_l = group_equal(matrix, a_cols, b_cols, false, num_b);
    std::vector<size_t> rep_k, rep_l;
    std::vector<int> row_of_a = group_rows(a_cols, group_k, num_a, rep_k, data);
    std::vector<int> row_of_b = group_rows(b_cols, group_l, num_b, rep_l, data);
    for (int a = 0; a < num_a; ++a) {
      for (int b = 0; b < num_b; ++b) {
        double r = matrix[rep_k[static_cast<size_t>(a)]][rep_l[static_cast<size_t>(b)]];
        if (!ms.keeps(r)) continue;
        int col = data.add_col(r / ms.scale, false);
        data.set(row_of_a[static_cast<size_t>(a)], col, 1.0);
        data.set(row_of_b[static_cast<size_t>(b)], col, 1.0);
      }
    }
  }
}

// Rows are divided by their right-hand side (> 0, and ≥ every term), so
// coefficients lie in (0, 1]. Their lower bound is 0 (every term is ≥ 0).
void add_memory_rows(const std::vector<MemoryRow>& rows, CbcModelData& data) {
  for (const MemoryRow& mem : rows) {
    std::vector<std::pair<int, double>> terms;
    for (const auto& term : mem.terms) {
      int col = data.node_cols[static_cast<size_t>(term.node)]
                              [static_cast<size_t>(term.strategy)];
      double coef = term.bytes / mem.rhs;
      if (col != kNoColumn && coef >= kTinyMemoryTerm) terms.emplace_back(col, coef);
    }
    if (terms.empty()) continue;
    int row = data.add_row(0.0, 1.0);
    for (const auto& [col, coef] : terms) data.set(row, col, coef);
  }
}

// A cut whose every pick has a column: at most |cut| − 1 of them.
void add_cuts(const std::vector<Cut>& cuts, CbcModelData& data) {
  for (const Cut& cut : cuts) {
    std::vector<int> cols;
    for (const auto& [node, strategy] : cut) {
      int col = data.node_cols[static_cast<size_t>(node)][static_cast<size_t>(strategy)];
      if (col == kNoColumn) break;  // that pick is out of the model: cut holds
      cols.push_back(col);
    }
    if (cols.size() != cut.size()) continue;
    int row = data.add_row(0.0, static_cast<double>(cols.size()) - 1.0);
    for (int col : cols) data.set(row, col, 1.0);
  }
}

CbcModelData build_model(const Presolved& ps, const std::vector<MemoryRow>& rows,
                         const std::vector<Cut>& cuts, const ModelScale& ms) {
  CbcModelData data;
  add_node_columns(ps, ms, data);
  add_edge_columns(ps, ms, data);
  add_memory_rows(rows, data);
  add_cuts(cuts, data);
  return data;
}

struct CbcDeleter {
  void operator()(Cbc_Model* model) const { Cbc_deleteModel(model); }
};
using CbcPtr = std::unique_ptr<Cbc_Model, CbcDeleter>;

CbcPtr load_cbc_model(const CbcModelData& data, const IlpOptions& options, double seconds,
                      double fraction_gap) {
  std::vector<CoinBigIndex> start{0};
  std::vector<int> index;
  std::vector<double> value;
  for (const auto& column : data.columns) {
    for (const auto& [row, coef] : column) {
      index.push_back(row);
      value.push_back(coef);
    }
    start.push_back(static_cast<CoinBigIndex>(index.size()));
  }
  std::vector<double> col_lb(data.columns.size(), 0.0);
  std::vector<double> col_ub(data.columns.size(), 1.0);
  CbcPtr model(Cbc_newModel());
  Cbc_loadProblem(model.get(), static_cast<int>(data.columns.size()),
                  static_cast<int>(data.row_lb.size()), start.data(),
                  index.data(), value.data(), col_lb.data(), col_ub.data(),
                  data.obj.data(), data.row_lb.data(), data.row_ub.data());
  for (size_t c = 0; c < data.is_integer.size(); ++c) {
    if (data.is_integer[c]) Cbc_setInteger(model.get(), static_cast<int>(c));
  }
  Cbc_setLogLevel(model.get(), options.verbose ? 1 : 0);
  Cbc_setMaximumSeconds(model.get(), seconds);
  Cbc_setAllowableGap(model.get(), kCbcGap);
  Cbc_setAllowableFractionGap(model.get(), std::max(kCbcGap, fraction_gap));
  Cbc_setParameter(model.get(), "increment", fmt::format("{}", kCbcGap).c_str());
  // Two CBC 2.10.8 defaults fail the brute-force cross-check: CglPreProcess
  // can return a suboptimal plan when it reduces the model to nothing
  // ("Cbc3007W No integer variables"), and root probing that proves the
  // incumbent optimal leaves lower > upper bounds, which aborts the process
  // on CLP's assertions (ClpNonLinearCost.cpp, ClpSimplexDual.cpp).
  Cbc_setParameter(model.get(), "preprocess", "off");
  Cbc_setParameter(model.get(), "probing", "off");
  // CLP's dual tolerance (1e-7 by default) bounds how far an LP bound may be
  // off relative to the scale; at 1e-7 it let plans 4e-8 of the objective
  // above the optimum pass as optimal.
  Cbc_setParameter(model.get(), "dualT", "1e-10");
  if (options.num_threads > 1) {
    Cbc_setParameter(model.get(), "threads",
                     std::to_string(options.num_threads).c_str());
  }
  return model;
}

// Reads the one-hot s_i* of every free node from CBC's column values
// (the largest, lowest strategy index on ties).
std::vector<StrategyIdx> read_choice(const Presolved& ps, const CbcModelData& data,
                                     const double* values) {
  std::vector<StrategyIdx> choice = ps.fixed;
  for (size_t i = 0; i < ps.costs.size(); ++i) {
    if (ps.fixed[i] != kFree) continue;
    StrategyIdx best = kFree;
    double best_value = 0.5;
    const std::vector<int>& cols = data.node_cols[i];
    for (size_t k = 0; k < cols.size(); ++k) {
      if (cols[k] != kNoColumn && values[cols[k]] > best_value) {
        best = static_cast<StrategyIdx>(k);
        best_value = values[cols[k]];
      }
    }
    ALPA_CHECK(best != kFree, "CBC set no strategy of node {} above 0.5", i);
    choice[i] = best;
  }
  return choice;
}

/// One CBC run: whether it finished its search, and the plan it found.
struct CbcOutcome {
  bool proven = false;  // optimal (within the gap asked for), or no plan below the cutoff
  bool exact = false;   // optimal without tolerances (no CBC involved)
  std::optional<std::vector<StrategyIdx>> choice;
  double bound = 0.0;   // CBC's proven lower bound, in model units (when proven)
};

/// What one CBC run is asked: its limits and the plan it starts from.
struct CbcRun {
  double seconds = 0.0;
  double fraction_gap = 0.0;
  std::optional<double> cutoff;                    // model units
  const std::vector<StrategyIdx>* start = nullptr;  // CBC's first incumbent
};

// The start plan as values of every integer column (s_ik).
void set_start(Cbc_Model* model, const CbcModelData& data, const std::vector<StrategyIdx>& start) {
  std::vector<int> cols;
  std::vector<double> values;
  for (size_t i = 0; i < data.node_cols.size(); ++i) {
    for (size_t k = 0; k < data.node_cols[i].size(); ++k) {
      if (data.node_cols[i][k] == kNoColumn) continue;
      cols.push_back(data.node_cols[i][k]);
      values.push_back(static_cast<StrategyIdx>(k) == start[i] ? 1.0 : 0.0);
    }
  }
  Cbc_setMIPStartI(model, static_cast<int>(cols.size()), cols.data(), values.data());
}

StatusOr<CbcOutcome> run_cbc(const Presolved& ps, const CbcModelData& data,
                             const IlpOptions& options, const CbcRun& run) {
  std::lock_guard<std::mutex> lock(cbc_mutex());
  CbcPtr model = load_cbc_model(data, options, run.seconds, run.fraction_gap);
  if (run.cutoff) Cbc_setCutoff(model.get(), *run.cutoff);
  if (run.start != nullptr) set_start(model.get(), data, *run.start);
  Cbc_solve(model.get());
  const double* best = Cbc_bestSolution(model.get());
  CbcOutcome out;
  if (Cbc_isProvenOptimal(model.get())) {
    if (best == nullptr) best = Cbc_getColSolution(model.get());
    out.proven = true;
  } else if (Cbc_isProvenInfeasible(model.get())) {
    out.proven = true;
    best = nullptr;
  } else if (!Cbc_isSecondsLimitReached(model.get())) {
    return core::internal_error(fmt::format(
        "CBC stopped without a verdict (status {}, secondary status {})",
        Cbc_status(model.get()), Cbc_secondaryStatus(model.get())));
  }
  if (best != nullptr) out.choice = read_choice(ps, data, best);
  if (out.proven) out.bound = Cbc_getBestPossibleObjValue(model.get());
  return out;
}

// Every free node is independent (no edges, no binding memory row): each
// takes its cheapest allowed strategy, lowest index on ties.
std::vector<StrategyIdx> choose_independently(const Presolved& ps) {
  std::vector<StrategyIdx> choice = ps.fixed;
  for (size_t i = 0; i < ps.costs.size(); ++i) {
    if (ps.fixed[i] != kFree) continue;
    const auto& costs = ps.costs[i];
    choice[i] = static_cast<StrategyIdx>(
        std::min_element(costs.begin(), costs.end()) - costs.begin());
  }
  return choice;
}

// A no-good cut for every time point where `eval` exceeds the budget: the
// picks of its free nodes that take more than their least memory.
std::vector<Cut> violated_cuts(const IlpProblem& problem, const detail::PresolveResult& pre,
                               const std::vector<StrategyIdx>& choice,
                               const IlpEvaluation& eval) {
  std::vector<Cut> cuts;
  for (size_t t = 0; t < eval.memory_per_time.size(); ++t) {
    if (eval.memory_per_time[t] <= problem.memory_budget) continue;
    Cut cut;
    for (NodeIdx i : problem.liveness[t]) {
      if (pre.ps.fixed[static_cast<size_t>(i)] != kFree) continue;
      cut.emplace_back(i, choice[static_cast<size_t>(i)]);
    }
    cuts.push_back(std::move(cut));
  }
  return cuts;
}

/// The search rounds described at the top of this file.
class Search {
 public:
  Search(const IlpProblem& problem, const detail::PresolveResult& pre, const IlpOptions& options,
         Clock::time_point start)
      : problem_(problem), pre_(pre), options_(options), start_(start) {}

  /// The plan and its status, or Infeasible.
  Status run(IlpSolution& solution);

 private:
  bool memory_bound() const { return !pre_.rows.empty(); }
  double seconds_left() const {
    return options_.time_limit_s - std::chrono::duration<double>(Clock::now() - start_).count();
  }
  ModelScale next_scale() const;
  // Memory-bound problems: solves the model without its memory rows and
  // fits that plan to the budget (ilp_heuristic.h), the first incumbent.
  // True when the unbounded optimum fits the budget: then it is optimal.
  StatusOr<bool> warm_start();
  // Solves the current model once (no plan, not proven, when out of time).
  StatusOr<CbcOutcome> solve_once(const ModelScale& ms, IlpSolution& solution);
  // Takes `choice` as the incumbent if it fits the budget and is cheaper;
  // else (over the budget) adds cuts. False when it added cuts.
  StatusOr<bool> offer(const std::vector<StrategyIdx>& choice);
  // Takes a plan that fits the budget (checked) as the incumbent if cheaper.
  StatusOr<bool> take_if_fits(const std::vector<StrategyIdx>& choice);

  const IlpProblem& problem_;
  const detail::PresolveResult& pre_;
  const IlpOptions& options_;
  Clock::time_point start_;
  std::vector<Cut> cuts_;
  int cut_rounds_ = 0;
  std::optional<std::vector<StrategyIdx>> incumbent_;
  double upper_ = kInfinity;  // model objective of the incumbent, seconds
  double lower_ = 0.0;        // proven lower bound on the model objective, seconds
};

ModelScale Search::next_scale() const {
  ModelScale ms;
  ms.prune_above = upper_;
  double lower = detail::model_lower_bound(pre_.ps);
  if (!std::isfinite(lower)) lower = 0.0;
  double largest = 0.0;
  for (size_t i = 0; i < pre_.ps.costs.size(); ++i) {
    if (pre_.ps.fixed[i] != kFree) continue;
    for (double c : pre_.ps.costs[i]) if (ms.keeps(c)) largest = std::max(largest, c);
  }
  for (const auto& [key, matrix] : pre_.ps.edges) {
    for (const auto& row : matrix) {
      for (double c : row) if (ms.keeps(c)) largest = std::max(largest, c);
    }
  }
  ms.scale = std::max(lower, largest * kCostRange);
  if (!(ms.scale > 0.0)) ms.scale = 1.0;
  return ms;
}

StatusOr<bool> Search::take_if_fits(const std::vector<StrategyIdx>& choice) {
  ALPA_ASSIGN_OR_RETURN(IlpEvaluation eval, evaluate(problem_, choice));
  if (!eval.feasible()) return false;
  double z = detail::model_objective(pre_.ps, choice);
  if (!incumbent_ || z < upper_) {
    incumbent_ = choice;
    upper_ = z;
  }
  return true;
}

StatusOr<bool> Search::warm_start() {
  if (!memory_bound() || seconds_left() <= 0.0) return false;
  ModelScale ms = next_scale();
  CbcModelData data = build_model(pre_.ps, {}, {}, ms);
  CbcRun run;
  run.seconds = std::min(seconds_left(), kMaxCbcSeconds);
  ALPA_ASSIGN_OR_RETURN(CbcOutcome outcome, run_cbc(pre_.ps, data, options_, run));
  if (!outcome.choice) return false;  // out of time, or no plan at all: the full search says
  ALPA_ASSIGN_OR_RETURN(bool fits, take_if_fits(*outcome.choice));
  if (fits) {
    bool trusted = outcome.proven && (upper_ <= 0.0 || ms.scale <= kTrustedScale * upper_);
    if (trusted) lower_ = upper_;
    return trusted;
  }
  std::optional<std::vector<StrategyIdx>> fitted =
      detail::fit_to_budget(problem_, pre_.ps, *outcome.choice);
  if (fitted) ALPA_RETURN_IF_ERROR(take_if_fits(*fitted).status());
  return false;
}

StatusOr<CbcOutcome> Search::solve_once(const ModelScale& ms, IlpSolution& solution) {
  if (pre_.ps.edges.empty() && pre_.rows.empty() && cuts_.empty()) {
    return CbcOutcome{true, true, choose_independently(pre_.ps), 0.0};
  }
  CbcModelData data = build_model(pre_.ps, pre_.rows, cuts_, ms);
  solution.num_variables = static_cast<int64_t>(data.columns.size());
  solution.num_constraints = static_cast<int64_t>(data.row_lb.size());
  if (seconds_left() <= 0.0) return CbcOutcome{};
  CbcRun run;
  run.seconds = std::min(seconds_left(), kMaxCbcSeconds);
  if (memory_bound()) run.fraction_gap = options_.memory_gap;
  if (incumbent_) {
    // CBC starts from the incumbent and looks for cheaper plans; the
    // cutoff sits just above it so that CBC keeps the start itself.
    run.start = &*incumbent_;
    run.cutoff = upper_ / ms.scale * (1.0 + kStartCutoffSlack) + kCbcGap;
  }
  return run_cbc(pre_.ps, data, options_, run);
}

StatusOr<bool> Search::offer(const std::vector<StrategyIdx>& choice) {
  ALPA_ASSIGN_OR_RETURN(IlpEvaluation eval, evaluate(problem_, choice));
  if (!eval.memory_ok) {
    std::vector<Cut> more = violated_cuts(problem_, pre_, choice, eval);
    if (++cut_rounds_ > kMaxCutRounds || more.empty()) {
      return core::internal_error(fmt::format(
          "CBC kept returning plans over the memory budget (by its feasibility tolerance); "
          "last: {}", eval.to_string()));
    }
    cuts_.insert(cuts_.end(), more.begin(), more.end());
    return false;
  }
  return take_if_fits(choice);
}

Status Search::run(IlpSolution& solution) {
  ALPA_ASSIGN_OR_RETURN(bool unbounded_fits, warm_start());
  solution.status = IlpSolveStatus::kOptimal;
  for (int round = 0; !unbounded_fits; ++round) {
    ALPA_CHECK(round < kMaxScaleRounds + kMaxCutRounds, "ILP search did not settle");
    ModelScale ms = next_scale();
    ALPA_ASSIGN_OR_RETURN(CbcOutcome outcome, solve_once(ms, solution));
    if (outcome.choice) {
      ALPA_ASSIGN_OR_RETURN(bool fits, offer(*outcome.choice));
      if (!fits) continue;  // re-solve with the cuts
    }
    if (!outcome.proven) {  // the time limit
      if (!incumbent_) {
        return core::infeasible(fmt::format(
            "CBC found no plan within the time limit of {} s; raise "
            "time_limit_s or the memory budget", options_.time_limit_s));
      }
      solution.status = IlpSolveStatus::kTimeLimitFeasible;
      lower_ = -kInfinity;
      break;
    }
    if (!incumbent_) {
      return core::infeasible(
          "no plan exists: every combination of allowed strategies either "
          "needs a forbidden (+inf) resharding or exceeds the memory budget at "
          "some time point; raise the budget or use more devices");
    }
    lower_ = outcome.exact ? upper_ : std::min(upper_, outcome.bound * ms.scale);
    if (outcome.exact || upper_ <= 0.0 || ms.scale <= kTrustedScale * upper_) {
      if (lower_ < upper_ * (1.0 - kOptimalGap)) solution.status = IlpSolveStatus::kWithinGap;
      break;
    }
  }
  solution.choice = *incumbent_;
  solution.lower_bound = lower_ - upper_;  // relative to the objective; made absolute later
  return core::ok_status();
}

Status check_options(const IlpOptions& options) {
  if (!(options.time_limit_s > 0.0)) {
    return core::invalid_argument(fmt::format(
        "IlpOptions.time_limit_s is {} s; it must be > 0", options.time_limit_s));
  }
  if (options.num_threads < 1 || options.num_threads > kMaxIlpThreads) {
    return core::invalid_argument(fmt::format(
        "IlpOptions.num_threads is {}; it must be in [1, {}]", options.num_threads,
        kMaxIlpThreads));
  }
  if (!(options.memory_gap >= 0.0 && options.memory_gap < 1.0)) {
    return core::invalid_argument(fmt::format(
        "IlpOptions.memory_gap is {}; it must be a fraction in [0, 1)", options.memory_gap));
  }
  return core::ok_status();
}

Status fill_from_evaluation(const IlpProblem& problem, IlpSolution& solution) {
  ALPA_ASSIGN_OR_RETURN(IlpEvaluation eval, evaluate(problem, solution.choice));
  ALPA_CHECK(std::isfinite(eval.objective),
             "solver picked a forbidden strategy: {}", eval.to_string());
  ALPA_CHECK(eval.memory_ok, "solver plan exceeds the memory budget: {}", eval.to_string());
  solution.objective = eval.objective;
  solution.memory_peak = eval.memory_peak;
  // run() left the bound relative to the objective (the model leaves out
  // fixed nodes' costs): objective − (incumbent − bound), ≥ 0.
  solution.lower_bound = std::isfinite(solution.lower_bound)
                             ? std::max(0.0, std::min(eval.objective,
                                                      eval.objective + solution.lower_bound))
                             : 0.0;
  return core::ok_status();
}

}  // namespace

core::StatusOr<IlpSolution> solve_ilp(const IlpProblem& problem,
                                      const IlpOptions& options) {
  auto start = Clock::now();
  ALPA_RETURN_IF_ERROR(problem.validate());
  ALPA_RETURN_IF_ERROR(check_options(options));
  ALPA_ASSIGN_OR_RETURN(detail::PresolveResult pre, detail::presolve(problem));
  IlpSolution solution;
  Search search(problem, pre, options, start);
  ALPA_RETURN_IF_ERROR(search.run(solution));
  ALPA_RETURN_IF_ERROR(fill_from_evaluation(problem, solution));
  solution.solve_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return solution;
}

}  // namespace alpa::intra_op
