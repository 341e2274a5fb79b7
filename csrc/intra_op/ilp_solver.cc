// This file implements solve_ilp(): presolve, the CBC model of the intra-op
// ILP (Alpa §4, DESIGN.md §5), and reading CBC's answer back. It is the
// only file that includes CBC.
//
// Formulation, for nodes i with strategies k and edges (i, j):
//   s_ik ∈ {0,1}, Σ_k s_ik = 1                       one strategy per node
//   e_ij,kl ∈ [0,1], Σ_l e_ij,kl = s_ik, Σ_k e_ij,kl = s_jl
//   min Σ_ik cost_ik s_ik + Σ_ij,kl R_ij[k][l] e_ij,kl
//   Σ_{i∈live(t)} Σ_k (m_ik − min_k m_ik) s_ik ≤ M − Σ_{i∈live(t)} min_k m_ik
// The edge rows are DESIGN's "Σ e = 1, rows ≤ s_i, columns ≤ s_j" written
// as equalities: summing the row bounds over k gives 1 ≤ Σ_k s_ik = 1, so
// every row bound is tight anyway. With s integral the marginals of e are
// one-hot, which leaves exactly one feasible e (e_ij,k*l* = 1, the rest 0):
// e can be continuous and CBC branches only on s.
// A +inf cost fixes its variable to 0; we go one step further and leave
// the column out of the model (same feasible set, smaller model), so the
// objective only ever sees finite coefficients.
//
// Presolve (always exact): a node with one allowed (finite-cost) strategy
// is fixed, and its edges are folded into the neighbour's cost vector (an
// edge row or column), which may fix the neighbour in turn. Parallel edges
// between two free nodes are summed into one matrix; memory rows that
// cannot bind are dropped; with no edge and no memory row left, each free
// node simply takes its cheapest strategy and CBC is not called.
#include "intra_op/ilp_solver.h"

#include <coin/Cbc_C_Interface.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <map>
#include <memory>
#include <utility>

#include <fmt/format.h>

#include "core/check.h"
#include "intra_op/evaluator.h"

namespace alpa::intra_op {
namespace {

using core::Status;
using core::StatusOr;

// Memory may exceed the budget by this fraction in CBC's answer (its row
// feasibility tolerance); anything more is a solver bug.
constexpr double kMemoryRelativeSlack = 1e-9;
constexpr StrategyIdx kFree = -1;
constexpr int kNoColumn = -1;

using Matrix = std::vector<std::vector<double>>;

struct Presolved {
  Matrix costs;                      // node costs, fixed neighbours folded in
  std::vector<StrategyIdx> fixed;    // kFree, or the only allowed strategy
  std::map<std::pair<NodeIdx, NodeIdx>, Matrix> edges;  // a < b, both free
};

struct MemoryRow {
  struct Term {
    NodeIdx node;
    StrategyIdx strategy;
    double bytes;  // m_ik − min_k m_ik > 0
  };
  std::vector<Term> terms;
  double rhs = 0.0;  // bytes: M − Σ min m
};

bool allowed(const Presolved& ps, NodeIdx i, size_t k) {
  return std::isfinite(ps.costs[static_cast<size_t>(i)][k]);
}

// Fixes node i when it has exactly one allowed strategy; fails when none.
Status try_fix(const IlpProblem& problem, NodeIdx i, Presolved& ps,
               std::deque<NodeIdx>& queue) {
  const std::vector<double>& costs = ps.costs[static_cast<size_t>(i)];
  int64_t count = 0;
  StrategyIdx last = kFree;
  for (size_t k = 0; k < costs.size(); ++k) {
    if (std::isfinite(costs[k])) {
      ++count;
      last = static_cast<StrategyIdx>(k);
    }
  }
  if (count == 0) {
    const auto& own = problem.node_costs[static_cast<size_t>(i)];
    bool own_forbidden = std::none_of(own.begin(), own.end(),
                                      [](double c) { return std::isfinite(c); });
    return core::infeasible(fmt::format(
        "node {} has no allowed strategy: {}", i,
        own_forbidden
            ? fmt::format("all {} strategy costs are +inf", own.size())
            : std::string("every strategy has a +inf resharding cost to a "
                          "neighbour whose only allowed strategy is fixed")));
  }
  if (count == 1) {
    ps.fixed[static_cast<size_t>(i)] = last;
    queue.push_back(i);
  }
  return core::ok_status();
}

// Folds edge `e`, whose endpoint `fixed_node` is fixed, into its other end.
Status fold_edge(const IlpProblem& problem, EdgeIdx e, NodeIdx fixed_node,
                 Presolved& ps, std::deque<NodeIdx>& queue) {
  const IlpProblem::Edge& edge = problem.edges[static_cast<size_t>(e)];
  bool src_fixed = fixed_node == edge.src;
  NodeIdx other = src_fixed ? edge.dst : edge.src;
  size_t k_fixed = static_cast<size_t>(ps.fixed[static_cast<size_t>(fixed_node)]);
  auto cost_at = [&](size_t k_other) {
    return src_fixed ? edge.costs[k_fixed][k_other] : edge.costs[k_other][k_fixed];
  };
  StrategyIdx other_fixed = ps.fixed[static_cast<size_t>(other)];
  if (other_fixed != kFree) {
    if (std::isinf(cost_at(static_cast<size_t>(other_fixed)))) {
      return core::infeasible(fmt::format(
          "edge {} ({} -> {}) has a +inf resharding cost between the only "
          "allowed strategies of its endpoints ({} and {})", e, edge.src,
          edge.dst, ps.fixed[static_cast<size_t>(edge.src)],
          ps.fixed[static_cast<size_t>(edge.dst)]));
    }
    return core::ok_status();
  }
  std::vector<double>& costs = ps.costs[static_cast<size_t>(other)];
  for (size_t k = 0; k < costs.size(); ++k) costs[k] += cost_at(k);
  return try_fix(problem, other, ps, queue);
}

void merge_free_edges(const IlpProblem& problem,
                      const std::vector<bool>& folded, Presolved& ps) {
  for (size_t e = 0; e < problem.edges.size(); ++e) {
    if (folded[e]) continue;
    const IlpProblem::Edge& edge = problem.edges[e];
    bool forward = edge.src < edge.dst;
    NodeIdx a = forward ? edge.src : edge.dst;
    NodeIdx b = forward ? edge.dst : edge.src;
    Matrix& merged = ps.edges[{a, b}];
    size_t rows = static_cast<size_t>(problem.num_strategies(a));
    size_t cols = static_cast<size_t>(problem.num_strategies(b));
    if (merged.empty()) merged.assign(rows, std::vector<double>(cols, 0.0));
    for (size_t k = 0; k < rows; ++k) {
      for (size_t l = 0; l < cols; ++l) {
        merged[k][l] += forward ? edge.costs[k][l] : edge.costs[l][k];
      }
    }
  }
}

StatusOr<Presolved> presolve(const IlpProblem& problem) {
  Presolved ps;
  ps.costs = problem.node_costs;
  ps.fixed.assign(static_cast<size_t>(problem.num_nodes()), kFree);
  std::vector<std::vector<EdgeIdx>> adjacent(ps.fixed.size());
  for (size_t e = 0; e < problem.edges.size(); ++e) {
    adjacent[static_cast<size_t>(problem.edges[e].src)].push_back(static_cast<EdgeIdx>(e));
    adjacent[static_cast<size_t>(problem.edges[e].dst)].push_back(static_cast<EdgeIdx>(e));
  }
  std::deque<NodeIdx> queue;
  for (NodeIdx i = 0; i < problem.num_nodes(); ++i) {
    ALPA_RETURN_IF_ERROR(try_fix(problem, i, ps, queue));
  }
  std::vector<bool> folded(problem.edges.size(), false);
  while (!queue.empty()) {
    NodeIdx i = queue.front();
    queue.pop_front();
    for (EdgeIdx e : adjacent[static_cast<size_t>(i)]) {
      if (folded[static_cast<size_t>(e)]) continue;
      folded[static_cast<size_t>(e)] = true;
      ALPA_RETURN_IF_ERROR(fold_edge(problem, e, i, ps, queue));
    }
  }
  merge_free_edges(problem, folded, ps);
  return ps;
}

// Least bytes node i can take under any allowed strategy.
double least_memory(const IlpProblem& problem, const Presolved& ps, NodeIdx i) {
  double least = kInfinity;
  for (size_t k = 0; k < ps.costs[static_cast<size_t>(i)].size(); ++k) {
    if (allowed(ps, i, k)) least = std::min(least, problem.memory(i, static_cast<StrategyIdx>(k)));
  }
  return least;
}

// Memory rows that can bind; fails when even the least memory per node
// exceeds the budget at some time point.
StatusOr<std::vector<MemoryRow>> memory_rows(const IlpProblem& problem,
                                             const Presolved& ps) {
  std::vector<MemoryRow> rows;
  if (!problem.has_memory() || std::isinf(problem.memory_budget)) return rows;
  std::vector<double> least(ps.fixed.size());
  for (NodeIdx i = 0; i < problem.num_nodes(); ++i) {
    least[static_cast<size_t>(i)] = least_memory(problem, ps, i);
  }
  double worst = -1.0;
  TimeIdx worst_t = -1;
  for (size_t t = 0; t < problem.liveness.size(); ++t) {
    MemoryRow row;
    double floor_bytes = 0.0, most_extra = 0.0;
    for (NodeIdx i : problem.liveness[t]) {
      double base = least[static_cast<size_t>(i)];
      floor_bytes += base;
      if (ps.fixed[static_cast<size_t>(i)] != kFree) continue;
      double node_extra = 0.0;
      for (size_t k = 0; k < ps.costs[static_cast<size_t>(i)].size(); ++k) {
        double extra = problem.memory(i, static_cast<StrategyIdx>(k)) - base;
        if (!allowed(ps, i, k) || extra <= 0.0) continue;
        row.terms.push_back({i, static_cast<StrategyIdx>(k), extra});
        node_extra = std::max(node_extra, extra);
      }
      most_extra += node_extra;
    }
    if (floor_bytes > worst) {
      worst = floor_bytes;
      worst_t = static_cast<TimeIdx>(t);
    }
    row.rhs = problem.memory_budget - floor_bytes;
    if (!row.terms.empty() && most_extra > row.rhs) rows.push_back(std::move(row));
  }
  if (worst > problem.memory_budget) {
    return core::infeasible(fmt::format(
        "memory budget {} is below the least memory any plan needs, {} at "
        "time point {}; raise the budget or use more devices",
        format_bytes(problem.memory_budget), format_bytes(worst), worst_t));
  }
  return rows;
}

// Column-wise model for Cbc_loadProblem. Every column is in [0, 1].
struct CbcModelData {
  std::vector<double> obj;
  std::vector<bool> is_integer;
  std::vector<std::vector<std::pair<int, double>>> columns;  // (row, coef)
  std::vector<double> row_lb, row_ub;
  // node_cols[i][k]: the column of s_ik; kNoColumn when node i is fixed
  // (empty vector) or strategy k is forbidden.
  std::vector<std::vector<int>> node_cols;

  int add_col(double cost, bool integer) {
    obj.push_back(cost);
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

// Largest |finite cost| among free variables: the objective is divided by
// it so that CLP's absolute tolerances (1e-7) act relative to the costs.
double objective_scale(const Presolved& ps) {
  double scale = 0.0;
  auto visit = [&](double c) {
    if (std::isfinite(c)) scale = std::max(scale, std::abs(c));
  };
  for (size_t i = 0; i < ps.costs.size(); ++i) {
    if (ps.fixed[i] == kFree) std::for_each(ps.costs[i].begin(), ps.costs[i].end(), visit);
  }
  for (const auto& [key, matrix] : ps.edges) {
    for (const auto& row : matrix) std::for_each(row.begin(), row.end(), visit);
  }
  return scale > 0.0 ? scale : 1.0;
}

void add_node_columns(const Presolved& ps, double scale, CbcModelData& data) {
  data.node_cols.assign(ps.costs.size(), {});
  for (size_t i = 0; i < ps.costs.size(); ++i) {
    if (ps.fixed[i] != kFree) continue;
    int row = data.add_row(1.0, 1.0);  // Σ_k s_ik = 1
    data.node_cols[i].assign(ps.costs[i].size(), kNoColumn);
    for (size_t k = 0; k < ps.costs[i].size(); ++k) {
      if (!allowed(ps, static_cast<NodeIdx>(i), k)) continue;
      int col = data.add_col(ps.costs[i][k] / scale, true);
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

void add_edge_columns(const Presolved& ps, double scale, CbcModelData& data) {
  for (const auto& [key, matrix] : ps.edges) {
    const std::vector<int>& a_cols = data.node_cols[static_cast<size_t>(key.first)];
    const std::vector<int>& b_cols = data.node_cols[static_cast<size_t>(key.second)];
    int num_a = 0, num_b = 0;
    std::vector<int> group_k = group_equal(matrix, a_cols, b_cols, true, num_a);
    std::vector<int> group_l = group_equal(matrix, a_cols, b_cols, false, num_b);
    std::vector<int> row_of_a(static_cast<size_t>(num_a)), row_of_b(static_cast<size_t>(num_b));
    for (int& r : row_of_a) r = data.add_row(0.0, 0.0);  // Σ_b e_ab − g_a = 0
    for (int& r : row_of_b) r = data.add_row(0.0, 0.0);  // Σ_a e_ab − h_b = 0
    std::vector<size_t> rep_k(static_cast<size_t>(num_a)), rep_l(static_cast<size_t>(num_b));
    for (size_t k = 0; k < a_cols.size(); ++k) {
      if (group_k[k] == kNoColumn) continue;
      data.set(row_of_a[static_cast<size_t>(group_k[k])], a_cols[k], -1.0);
      rep_k[static_cast<size_t>(group_k[k])] = k;
    }
    for (size_t l = 0; l < b_cols.size(); ++l) {
      if (group_l[l] == kNoColumn) continue;
      data.set(row_of_b[static_cast<size_t>(group_l[l])], b_cols[l], -1.0);
      rep_l[static_cast<size_t>(group_l[l])] = l;
    }
    for (int a = 0; a < num_a; ++a) {
      for (int b = 0; b < num_b; ++b) {
        double r = matrix[rep_k[static_cast<size_t>(a)]][rep_l[static_cast<size_t>(b)]];
        if (!std::isfinite(r)) continue;
        int col = data.add_col(r / scale, false);
        data.set(row_of_a[static_cast<size_t>(a)], col, 1.0);
        data.set(row_of_b[static_cast<size_t>(b)], col, 1.0);
      }
    }
  }
}

// Rows are divided by their largest coefficient so that they read in
// units of one node's extra memory, not raw bytes. Their lower bound is 0
// (every term is >= 0) rather than -inf.
void add_memory_rows(const std::vector<MemoryRow>& rows, CbcModelData& data) {
  for (const MemoryRow& mem : rows) {
    double unit = 0.0;
    for (const auto& term : mem.terms) unit = std::max(unit, term.bytes);
    int row = data.add_row(0.0, mem.rhs / unit);
    for (const auto& term : mem.terms) {
      int col = data.node_cols[static_cast<size_t>(term.node)]
                              [static_cast<size_t>(term.strategy)];
      data.set(row, col, term.bytes / unit);
    }
  }
}

struct CbcDeleter {
  void operator()(Cbc_Model* model) const { Cbc_deleteModel(model); }
};
using CbcPtr = std::unique_ptr<Cbc_Model, CbcDeleter>;

CbcPtr load_cbc_model(const CbcModelData& data, const IlpOptions& options) {
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
  Cbc_setMaximumSeconds(model.get(), options.time_limit_s);
  // Two CBC 2.10.8 defaults fail the brute-force cross-check: CglPreProcess
  // can return a suboptimal plan when it reduces the model to nothing
  // ("Cbc3007W No integer variables"), and root probing that proves the
  // incumbent optimal leaves lower > upper bounds, which aborts the process
  // on CLP's assertions (ClpNonLinearCost.cpp, ClpSimplexDual.cpp).
  Cbc_setParameter(model.get(), "preprocess", "off");
  Cbc_setParameter(model.get(), "probing", "off");
  if (options.num_threads > 1) {
    Cbc_setParameter(model.get(), "threads",
                     std::to_string(options.num_threads).c_str());
  }
  return model;
}

// Reads the one-hot s_i* of every free node from CBC's column values
// (the largest, lowest strategy index on ties).
void read_choice(const Presolved& ps, const CbcModelData& data,
                 const double* values, std::vector<StrategyIdx>& choice) {
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
}

StatusOr<IlpSolveStatus> run_cbc(const Presolved& ps, const CbcModelData& data,
                                 const IlpOptions& options,
                                 std::vector<StrategyIdx>& choice) {
  CbcPtr model = load_cbc_model(data, options);
  Cbc_solve(model.get());
  const double* best = Cbc_bestSolution(model.get());
  if (best == nullptr && Cbc_isProvenOptimal(model.get())) {
    best = Cbc_getColSolution(model.get());
  }
  if (Cbc_isProvenOptimal(model.get()) && best != nullptr) {
    read_choice(ps, data, best, choice);
    return IlpSolveStatus::kOptimal;
  }
  if (Cbc_isSecondsLimitReached(model.get())) {
    if (best == nullptr) {
      return core::infeasible(fmt::format(
          "CBC found no plan within the time limit of {} s; raise "
          "time_limit_s or the memory budget", options.time_limit_s));
    }
    read_choice(ps, data, best, choice);
    return IlpSolveStatus::kTimeLimitFeasible;
  }
  if (Cbc_isProvenInfeasible(model.get())) {
    return core::infeasible(
        "no plan exists: every combination of allowed strategies either "
        "needs a forbidden (+inf) resharding or exceeds the memory budget at "
        "some time point; raise the budget or use more devices");
  }
  return core::internal_error(fmt::format(
      "CBC stopped without a verdict (status {}, secondary status {})",
      Cbc_status(model.get()), Cbc_secondaryStatus(model.get())));
}

// Every free node is independent (no edges, no binding memory row): each
// takes its cheapest allowed strategy, lowest index on ties.
void choose_independently(const Presolved& ps, std::vector<StrategyIdx>& choice) {
  for (size_t i = 0; i < ps.costs.size(); ++i) {
    if (ps.fixed[i] != kFree) continue;
    const auto& costs = ps.costs[i];
    choice[i] = static_cast<StrategyIdx>(
        std::min_element(costs.begin(), costs.end()) - costs.begin());
  }
}

Status check_options(const IlpOptions& options) {
  if (!(options.time_limit_s > 0.0)) {
    return core::invalid_argument(fmt::format(
        "IlpOptions.time_limit_s is {} s; it must be > 0", options.time_limit_s));
  }
  if (options.num_threads < 1) {
    return core::invalid_argument(fmt::format(
        "IlpOptions.num_threads is {}; it must be >= 1", options.num_threads));
  }
  return core::ok_status();
}

Status fill_from_evaluation(const IlpProblem& problem, IlpSolution& solution) {
  ALPA_ASSIGN_OR_RETURN(IlpEvaluation eval, evaluate(problem, solution.choice));
  ALPA_CHECK(std::isfinite(eval.objective),
             "solver picked a forbidden strategy: {}", eval.to_string());
  ALPA_CHECK(eval.memory_peak <= problem.memory_budget * (1.0 + kMemoryRelativeSlack),
             "solver plan exceeds the memory budget: {}", eval.to_string());
  solution.objective = eval.objective;
  solution.memory_peak = eval.memory_peak;
  return core::ok_status();
}

}  // namespace

core::StatusOr<IlpSolution> solve_ilp(const IlpProblem& problem,
                                      const IlpOptions& options) {
  auto start = std::chrono::steady_clock::now();
  ALPA_RETURN_IF_ERROR(problem.validate());
  ALPA_RETURN_IF_ERROR(check_options(options));
  ALPA_ASSIGN_OR_RETURN(Presolved ps, presolve(problem));
  ALPA_ASSIGN_OR_RETURN(std::vector<MemoryRow> mem_rows, memory_rows(problem, ps));

  IlpSolution solution;
  solution.choice = ps.fixed;
  if (ps.edges.empty() && mem_rows.empty()) {
    choose_independently(ps, solution.choice);
  } else {
    CbcModelData data;
    double scale = objective_scale(ps);
    add_node_columns(ps, scale, data);
    add_edge_columns(ps, scale, data);
    add_memory_rows(mem_rows, data);
    solution.num_variables = static_cast<int64_t>(data.columns.size());
    solution.num_constraints = static_cast<int64_t>(data.row_lb.size());
    ALPA_ASSIGN_OR_RETURN(solution.status, run_cbc(ps, data, options, solution.choice));
  }
  ALPA_RETURN_IF_ERROR(fill_from_evaluation(problem, solution));
  solution.solve_seconds = std::chrono::duration<double>(
                               std::chrono::steady_clock::now() - start).count();
  return solution;
}

}  // namespace alpa::intra_op
