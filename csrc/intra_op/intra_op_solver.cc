// This file implements solve_intra_op().
#include "intra_op/intra_op_solver.h"

#include <chrono>
#include <map>
#include <tuple>
#include <set>

#include <fmt/format.h>

#include "intra_op/evaluator.h"

namespace alpa::intra_op {

core::StatusOr<IntraOpResult> solve_intra_op(const CostGraph& cg, const IntraOpOptions& options) {
  auto start = std::chrono::steady_clock::now();
  IlpProblem problem = cg.to_ilp(options.memory_budget);
  IntraOpResult r;
  r.num_graph_nodes = static_cast<int64_t>(cg.nodes().size());
  r.num_ilp_nodes = problem.num_nodes();
  r.num_ilp_edges = static_cast<int64_t>(problem.edges.size());
  r.build_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  IlpOptions ilp;
  ilp.time_limit_s = options.time_limit_s;
  ilp.num_threads = options.num_threads;
  ilp.memory_gap = options.memory_gap;
  ALPA_ASSIGN_OR_RETURN(IlpSolution sol, solve_ilp(problem, ilp));
  ALPA_ASSIGN_OR_RETURN(IlpEvaluation check, evaluate(problem, sol.choice));
  r.solve_seconds = sol.solve_seconds;
  r.num_ilp_variables = sol.num_variables;
  r.status = sol.status;
  r.objective = check.objective;
  r.memory_bytes = check.memory_peak;
  r.choice = cg.expand(sol.choice);
  std::vector<double> reshard_into(r.choice.size(), 0.0);  // seconds, per consumer node
  // reason -> (first node's warning, nodes, seconds per step of them all)
  std::map<std::string, std::tuple<std::string, int64_t, double>> by_reason;
  for (const CostEdge& e : cg.edges()) {
    double t = e.costs[static_cast<size_t>(r.choice[e.src.index()])]
                      [static_cast<size_t>(r.choice[e.dst.index()])];
    r.communication_time += t;
    r.forward_time += 0.5 * t;
    reshard_into[e.dst.index()] += t;
  }
  for (size_t i = 0; i < r.choice.size(); ++i) {
    const NodeCosts& n = cg.nodes()[i];
    size_t k = static_cast<size_t>(r.choice[i]);
    r.compute_time += n.compute[k];
    r.communication_time += n.comm[k];
    r.forward_time += n.forward[k];
    if (!n.warning.empty()) {
      auto& [text, count, seconds] = by_reason[n.warning];
      double t = n.compute[k] + n.comm[k] + reshard_into[i];
      if (count++ == 0) {
        // Alpa's cost mode prices no compute; the resharding is then what costs
        text = fmt::format("{} {}; in this plan it costs {:.3g} s per step (compute {:.3g} s, "
                           "gathering its inputs {:.3g} s)",
                           n.warning, n.warning_detail, t, n.compute[k], n.comm[k] + reshard_into[i]);
      }
      seconds += t;
    }
  }
  for (const auto& [reason, entry] : by_reason) {  // one warning per reason, sorted
    const auto& [text, count, seconds] = entry;
    r.warnings.push_back(count == 1 ? text
                                    : fmt::format("{}; and {} more node{} of this op, {:.3g} s per "
                                                  "step in all",
                                                  text, count - 1, count == 2 ? "" : "s", seconds));
  }
  std::set<std::string> unique(r.warnings.begin(), r.warnings.end());
  r.warnings.assign(unique.begin(), unique.end());
  return r;
}

}  // namespace alpa::intra_op
