// This file implements the Python bindings of the inter-op stage DP and
// sub-mesh enumeration: costs arrive flattened (alpa_torch/planning/inter_op.py
// validates and flattens them); results leave as a dict that
// alpa_torch.planning.inter_op.StageDPResult wraps.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <optional>
#include <utility>

#include <fmt/format.h>

#include "core/json.h"
#include "inter_op/stage_dp.h"
#include "mesh/cluster.h"
#include "mesh/submesh.h"
#include "python/status_exceptions.h"

namespace py = pybind11;

namespace alpa::python {
namespace {

using ShapePair = std::pair<int64_t, int64_t>;

mesh::Cluster parse_cluster(const std::string& text) {
  auto j = core::parse_json(text);
  throw_if_error(j.status());
  return unwrap(mesh::Cluster::from_json(*j));
}

std::vector<mesh::SubmeshShape> to_shapes(const std::vector<ShapePair>& pairs) {
  std::vector<mesh::SubmeshShape> out;
  for (const auto& [hosts, per_host] : pairs) out.push_back({hosts, per_host});
  return out;
}

/// Fills the table from flat [i][k][m][c] arrays (c runs over num_configs[m]).
void fill_table(inter_op::StageCostTable* table, const std::vector<double>& costs,
                const std::vector<int64_t>& max_n_succ) {
  const int64_t L = table->num_layers();
  int64_t per_pair = 0;
  for (int64_t m = 0; m < table->num_submeshes(); ++m) per_pair += table->num_configs(m);
  const size_t expected = static_cast<size_t>(L * L * per_pair);
  if (costs.size() != expected || (!max_n_succ.empty() && max_n_succ.size() != expected)) {
    throw_if_error(core::invalid_argument(fmt::format(
        "flattened stage costs need {} × {} × {} = {} entries; got {} costs and {} memory bounds",
        L, L, per_pair, expected, costs.size(), max_n_succ.size())));
  }
  size_t at = 0;
  for (int64_t i = 0; i < L; ++i) {
    for (int64_t k = 0; k < L; ++k) {
      for (int64_t m = 0; m < table->num_submeshes(); ++m) {
        for (int64_t c = 0; c < table->num_configs(m); ++c, ++at) {
          if (k < i) continue;
          table->set_cost(i, k, m, c, costs[at]);
          if (!max_n_succ.empty()) table->set_max_n_succ_stages(i, k, m, c, max_n_succ[at]);
        }
      }
    }
  }
}

py::dict run_stage_dp(int64_t num_layers, const std::vector<ShapePair>& submeshes,
                      const std::vector<int64_t>& num_configs, const std::vector<double>& costs,
                      const std::vector<int64_t>& max_n_succ, int64_t num_devices,
                      int64_t num_micro_batches, std::optional<int64_t> max_num_stages) {
  inter_op::StageDPRequest request;
  request.table = unwrap(inter_op::StageCostTable::create(num_layers, to_shapes(submeshes), num_configs));
  fill_table(&request.table, costs, max_n_succ);
  request.num_devices = num_devices;
  request.num_micro_batches = num_micro_batches;
  request.max_num_stages = max_num_stages;
  core::StatusOr<inter_op::StageDPResult> result = core::internal_error("unset");
  auto start = std::chrono::steady_clock::now();
  {
    py::gil_scoped_release release;
    result = inter_op::stage_dp(request);
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  throw_if_error(result.status());
  py::list stages;
  for (const auto& s : result->stages) {
    stages.append(py::make_tuple(s.start_layer, s.end_layer, s.submesh, s.config, s.cost));
  }
  py::dict out;
  out["total_time"] = result->total_time;
  out["t_max"] = result->t_max;
  out["stages"] = stages;
  out["num_t_max_evaluated"] = result->num_t_max_evaluated;
  out["solve_seconds"] = seconds;
  out["text"] = result->to_string();
  return out;
}

}  // namespace

void bind_stage_dp(py::module_& m) {
  m.def("stage_dp", &run_stage_dp, py::arg("num_layers"), py::arg("submeshes"),
        py::arg("num_configs"), py::arg("costs"), py::arg("max_n_succ_stages"),
        py::arg("num_devices"), py::arg("num_micro_batches"), py::arg("max_num_stages"),
        "Alpa's stage DP (§5.2) on flattened [i][k][m][c] costs (seconds, inf = infeasible) "
        "and memory bounds (empty = unbounded). Returns {total_time, t_max, stages, "
        "num_t_max_evaluated, solve_seconds, text}.");
  m.def("submeshes", [](const std::string& cluster_json) {
    std::vector<ShapePair> out;
    for (const auto& s : mesh::enumerate_submeshes(parse_cluster(cluster_json))) {
      out.emplace_back(s.num_hosts, s.devices_per_host);
    }
    return out;
  }, py::arg("cluster_json"), "The sub-meshes (hosts, devices_per_host) the stage DP chooses from.");
  m.def("logical_mesh_shapes", [](ShapePair submesh) {
    if (submesh.first < 1 || submesh.second < 1) {
      throw_if_error(core::invalid_argument(fmt::format(
          "a sub-mesh needs at least 1 host and 1 device per host, got ({}, {})", submesh.first,
          submesh.second)));
    }
    if (submesh.first > inter_op::kMaxStageDevices / submesh.second) {
      throw_if_error(core::invalid_argument(fmt::format(
          "sub-mesh ({}, {}) has more than the {} devices the planner takes", submesh.first,
          submesh.second, inter_op::kMaxStageDevices)));
    }
    return mesh::logical_mesh_shapes({submesh.first, submesh.second});
  }, py::arg("submesh"), "The logical mesh shapes (n0, n1) worth trying on a sub-mesh.");
  m.def("place_submeshes", [](const std::string& cluster_json, const std::vector<ShapePair>& stages) {
    return unwrap(mesh::place_submeshes(parse_cluster(cluster_json), to_shapes(stages)));
  }, py::arg("cluster_json"), py::arg("stages"),
     "Device ids of each stage's sub-mesh, stages in pipeline order.");
}

}  // namespace alpa::python
