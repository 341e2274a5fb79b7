// This file implements IlpProblem's validation and JSON form, and the
// IlpSolution / byte formatting used in messages.
#include "intra_op/ilp_problem.h"

#include <cmath>
#include <optional>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace alpa::intra_op {
namespace {

using core::Json;
using core::Status;
using core::StatusOr;

Status check_cost(double value, const std::string& where) {
  if (std::isnan(value)) {
    return core::invalid_argument(fmt::format("{} is NaN", where));
  }
  if (value < 0) {
    return core::invalid_argument(fmt::format(
        "{} is {}; a cost is seconds >= 0, or +inf (forbidden)", where, value));
  }
  if (std::isfinite(value) && value > kMaxIlpCost) {
    return core::invalid_argument(fmt::format(
        "{} is {} s, above the largest finite cost {} s; use +inf to forbid a strategy",
        where, value, kMaxIlpCost));
  }
  return core::ok_status();
}

// Columns and nonzeros CBC indexes with int: the problem must stay below.
Status check_size(const IlpProblem& p) {
  constexpr int64_t kMaxEntries = int64_t{1} << 30;
  int64_t entries = 0;
  for (const auto& costs : p.node_costs) entries += static_cast<int64_t>(costs.size());
  for (const auto& edge : p.edges) {
    for (const auto& row : edge.costs) entries += static_cast<int64_t>(row.size());
  }
  for (const auto& live : p.liveness) entries += static_cast<int64_t>(live.size());
  if (entries > kMaxEntries) {
    return core::invalid_argument(fmt::format(
        "the problem has {} cost and liveness entries, more than the solver takes (2^30)",
        entries));
  }
  return core::ok_status();
}

Status validate_nodes(const IlpProblem& p) {
  for (size_t i = 0; i < p.node_costs.size(); ++i) {
    if (p.node_costs[i].empty()) {
      return core::invalid_argument(
          fmt::format("node {} has no strategies (node_costs[{}] is empty)", i, i));
    }
    for (size_t k = 0; k < p.node_costs[i].size(); ++k) {
      ALPA_RETURN_IF_ERROR(
          check_cost(p.node_costs[i][k], fmt::format("node_costs[{}][{}]", i, k)));
    }
  }
  return core::ok_status();
}

Status validate_edge(const IlpProblem& p, size_t e) {
  const IlpProblem::Edge& edge = p.edges[e];
  int64_t n = p.num_nodes();
  if (edge.src < 0 || edge.src >= n || edge.dst < 0 || edge.dst >= n) {
    return core::invalid_argument(fmt::format(
        "edge {} ({} -> {}) has an endpoint outside [0, {}) nodes", e,
        edge.src, edge.dst, n));
  }
  if (edge.src == edge.dst) {
    return core::invalid_argument(
        fmt::format("edge {} ({} -> {}) is a self loop", e, edge.src, edge.dst));
  }
  size_t rows = static_cast<size_t>(p.num_strategies(edge.src));
  size_t cols = static_cast<size_t>(p.num_strategies(edge.dst));
  if (edge.costs.size() != rows) {
    return core::invalid_argument(fmt::format(
        "edge {} ({} -> {}): costs has {} rows, expected {} (strategies of "
        "node {})", e, edge.src, edge.dst, edge.costs.size(), rows, edge.src));
  }
  for (size_t k = 0; k < rows; ++k) {
    if (edge.costs[k].size() != cols) {
      return core::invalid_argument(fmt::format(
          "edge {} ({} -> {}): costs row {} has {} entries, expected {} "
          "(strategies of node {})", e, edge.src, edge.dst, k,
          edge.costs[k].size(), cols, edge.dst));
    }
    for (size_t l = 0; l < cols; ++l) {
      ALPA_RETURN_IF_ERROR(check_cost(
          edge.costs[k][l], fmt::format("edge {} ({} -> {}) costs[{}][{}]", e,
                                        edge.src, edge.dst, k, l)));
    }
  }
  return core::ok_status();
}

Status validate_memory(const IlpProblem& p) {
  if (std::isnan(p.memory_budget) || p.memory_budget < 0) {
    return core::invalid_argument(fmt::format(
        "memory_budget is {} bytes; it must be >= 0 (or +inf)", p.memory_budget));
  }
  if (p.has_memory() && p.node_memory.size() != p.node_costs.size()) {
    return core::invalid_argument(fmt::format(
        "node_memory has {} nodes, node_costs has {}", p.node_memory.size(),
        p.node_costs.size()));
  }
  for (size_t i = 0; i < p.node_memory.size(); ++i) {
    if (p.node_memory[i].size() != p.node_costs[i].size()) {
      return core::invalid_argument(fmt::format(
          "node_memory[{}] has {} strategies, node_costs[{}] has {}", i,
          p.node_memory[i].size(), i, p.node_costs[i].size()));
    }
    for (size_t k = 0; k < p.node_memory[i].size(); ++k) {
      double m = p.node_memory[i][k];
      if (!std::isfinite(m) || m < 0) {
        return core::invalid_argument(fmt::format(
            "node_memory[{}][{}] is {} bytes; memory must be finite and >= 0",
            i, k, m));
      }
      if (m > kMaxIlpBytes) {
        return core::invalid_argument(fmt::format(
            "node_memory[{}][{}] is {} bytes, above the largest entry the solver takes, "
            "{} bytes", i, k, m, kMaxIlpBytes));
      }
    }
  }
  for (size_t t = 0; t < p.liveness.size(); ++t) {
    std::set<NodeIdx> seen;
    for (NodeIdx node : p.liveness[t]) {
      if (node < 0 || node >= p.num_nodes()) {
        return core::invalid_argument(fmt::format(
            "liveness[{}] lists node {}, outside [0, {}) nodes", t, node,
            p.num_nodes()));
      }
      if (!seen.insert(node).second) {
        return core::invalid_argument(
            fmt::format("liveness[{}] lists node {} twice", t, node));
      }
    }
  }
  return core::ok_status();
}

StatusOr<std::vector<std::vector<double>>> matrix_from_json(
    const Json& json, const std::string& where) {
  if (!json.is_array()) {
    return core::parse_error(fmt::format("{} must be an array of arrays, got {}",
                                         where, core::json_kind_name(json)));
  }
  std::vector<std::vector<double>> out;
  for (size_t i = 0; i < json.size(); ++i) {
    const Json& row = json[i];
    if (!row.is_array()) {
      return core::parse_error(fmt::format("{}[{}] must be an array, got {}",
                                           where, i, core::json_kind_name(row)));
    }
    std::vector<double> values;
    for (size_t k = 0; k < row.size(); ++k) {
      std::optional<double> v = core::json_number(row[k]);  // inf: "Infinity"
      if (!v) {
        return core::parse_error(fmt::format("{}[{}][{}] must be a number, got {}",
                                             where, i, k, core::json_kind_name(row[k])));
      }
      values.push_back(*v);
    }
    out.push_back(std::move(values));
  }
  return out;
}

StatusOr<IlpProblem::Edge> edge_from_json(const Json& json, size_t e) {
  std::string where = fmt::format("edges[{}]", e);
  if (!json.is_object()) {
    return core::parse_error(fmt::format("{} must be an object, got {}", where,
                                         core::json_kind_name(json)));
  }
  IlpProblem::Edge edge;
  ALPA_ASSIGN_OR_RETURN(edge.src, core::json_get_int(json, "src", where));
  ALPA_ASSIGN_OR_RETURN(edge.dst, core::json_get_int(json, "dst", where));
  ALPA_ASSIGN_OR_RETURN(const Json* costs, core::json_member(json, "costs", where));
  ALPA_ASSIGN_OR_RETURN(edge.costs, matrix_from_json(*costs, where + ".costs"));
  return edge;
}

}  // namespace

double IlpProblem::memory(NodeIdx node, StrategyIdx strategy) const {
  if (!has_memory()) return 0.0;
  return node_memory[static_cast<size_t>(node)][static_cast<size_t>(strategy)];
}

core::Status IlpProblem::validate() const {
  ALPA_RETURN_IF_ERROR(check_size(*this));
  ALPA_RETURN_IF_ERROR(validate_nodes(*this));
  for (size_t e = 0; e < edges.size(); ++e) {
    ALPA_RETURN_IF_ERROR(validate_edge(*this, e));
  }
  return validate_memory(*this);
}

core::Json IlpProblem::to_json() const {
  Json out = Json::object();
  out["node_costs"] = node_costs;
  Json json_edges = Json::array();
  for (const Edge& edge : edges) {
    Json json_edge = Json::object();
    json_edge["src"] = edge.src;
    json_edge["dst"] = edge.dst;
    json_edge["costs"] = edge.costs;
    json_edges.push_back(std::move(json_edge));
  }
  out["edges"] = std::move(json_edges);
  out["node_memory"] = node_memory;
  out["liveness"] = liveness;
  out["memory_budget"] = memory_budget;
  return out;
}

core::StatusOr<IlpProblem> IlpProblem::from_json(const core::Json& json) {
  constexpr std::string_view kWhere = "IlpProblem";
  if (!json.is_object()) {
    return core::parse_error(fmt::format("IlpProblem must be a JSON object, got {}",
                                         core::json_kind_name(json)));
  }
  for (const auto& [key, value] : json.get_ref<const Json::object_t&>()) {
    if (key != "node_costs" && key != "edges" && key != "node_memory" && key != "liveness" &&
        key != "memory_budget") {
      return core::parse_error(fmt::format(
          "IlpProblem has an unknown field '{}'; the fields are node_costs, edges, "
          "node_memory, liveness and memory_budget", key));
    }
  }
  IlpProblem p;
  ALPA_ASSIGN_OR_RETURN(const Json* costs, core::json_member(json, "node_costs", kWhere));
  ALPA_ASSIGN_OR_RETURN(p.node_costs, matrix_from_json(*costs, "node_costs"));
  if (const Json* edges = core::json_find(json, "edges")) {
    if (!edges->is_array()) {
      return core::parse_error(fmt::format("edges must be an array, got {}",
                                           core::json_kind_name(*edges)));
    }
    for (size_t e = 0; e < edges->size(); ++e) {
      ALPA_ASSIGN_OR_RETURN(Edge edge, edge_from_json((*edges)[e], e));
      p.edges.push_back(std::move(edge));
    }
  }
  if (const Json* memory = core::json_find(json, "node_memory")) {
    ALPA_ASSIGN_OR_RETURN(p.node_memory, matrix_from_json(*memory, "node_memory"));
  }
  if (const Json* liveness = core::json_find(json, "liveness")) {
    if (!liveness->is_array()) {
      return core::parse_error(fmt::format("liveness must be an array, got {}",
                                           core::json_kind_name(*liveness)));
    }
    for (size_t t = 0; t < liveness->size(); ++t) {
      ALPA_ASSIGN_OR_RETURN(
          std::vector<int64_t> live,
          core::json_int_list((*liveness)[t], fmt::format("liveness[{}]", t)));
      p.liveness.push_back(std::move(live));
    }
  }
  if (core::json_find(json, "memory_budget") != nullptr) {
    ALPA_ASSIGN_OR_RETURN(p.memory_budget,
                          core::json_get_double(json, "memory_budget", kWhere));
  }
  return p;
}

std::string IlpProblem::to_string() const { return core::dump_json(to_json()); }

core::StatusOr<IlpProblem> IlpProblem::from_string(std::string_view text) {
  ALPA_ASSIGN_OR_RETURN(Json json, core::parse_json(text));
  return from_json(json);
}

const char* ilp_solve_status_name(IlpSolveStatus status) {
  switch (status) {
    case IlpSolveStatus::kOptimal: return "optimal";
    case IlpSolveStatus::kTimeLimitFeasible: return "time-limit-feasible";
    case IlpSolveStatus::kWithinGap: return "within-gap";
  }
  return "?";
}

std::string IlpSolution::to_string() const {
  return fmt::format("{} objective={} s peak={} choice=[{}] ({} variables, "
                     "{} constraints, {:.3f} s)",
                     ilp_solve_status_name(status), core::format_double(objective),
                     format_bytes(memory_peak), fmt::join(choice, ","),
                     num_variables, num_constraints, solve_seconds);
}

std::string format_bytes(double bytes) {
  constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
  if (!std::isfinite(bytes)) return fmt::format("{} bytes", bytes);
  if (bytes != 0 && std::abs(bytes) < 1) return fmt::format("{:.3g} bytes", bytes);
  return fmt::format("{:.2f} GiB ({:.0f} bytes)", bytes / kGiB, bytes);
}

}  // namespace alpa::intra_op
