// This file implements the Python bindings of the planner: clusters and
// presets, the intra-op planner, plans (JSON in and out, explain), and the
// ILP as plain data so tests and benchmarks can solve problems without a
// model. Options arrive as keyword arguments; plans leave as JSON text,
// which alpa_torch.Plan wraps.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <limits>
#include <memory>
#include <optional>

#include "intra_op/evaluator.h"
#include "intra_op/ilp_solver.h"
#include "mesh/cluster.h"
#include "plan/intra_op_plan.h"
#include "plan/pipeshard_plan.h"
#include "plan/plan_validation.h"
#include "python/status_exceptions.h"
#include "intra_op/cost_graph.h"
#include "sharding/resharding.h"
#include "sharding/strategy.h"
#include "sharding/sharding_spec.h"

namespace py = pybind11;

namespace alpa::python {
namespace {

mesh::Cluster cluster_from_json_text(const std::string& text) {
  auto j = core::parse_json(text);
  throw_if_error(j.status());
  return unwrap(mesh::Cluster::from_json(*j));
}

/// Intra-op options from the Python keyword arguments shared by the planners.
intra_op::IntraOpOptions intra_op_options(double memory_budget, const std::string& cost_mode,
                                          const std::map<std::string, std::string>& pinned,
                                          double optimizer_state_factor, double time_limit_s,
                                          int num_threads) {
  intra_op::IntraOpOptions opt;
  opt.memory_budget = memory_budget;
  opt.time_limit_s = time_limit_s;
  opt.num_threads = num_threads;
  opt.cost.optimizer_state_factor = optimizer_state_factor;
  if (cost_mode == "alpa") {
    opt.cost.mode = cost::CostOptions::Mode::kAlpa;
  } else if (cost_mode != "seconds") {
    throw_if_error(core::invalid_argument(
        "cost_mode must be 'seconds' (roofline compute + α-β communication) or 'alpa' "
        "(Alpa's conventions: no compute term, mesh_alpha/mesh_beta per axis), got '" + cost_mode + "'"));
  }
  for (const auto& [name, text] : pinned) {
    if (text.find('=') != std::string::npos) {  // an op node's strategy
      opt.pinned_strategies[name] = text;
      continue;
    }
    auto spec = sharding::ShardingSpec::parse(text);
    if (!spec.ok()) throw_if_error(spec.status().with_context("plan_overrides['" + name + "']"));
    opt.pinned[name] = *spec;
  }
  return opt;
}

py::dict plan_intra_op(const ir::Graph& graph, const std::string& cluster_json,
                       std::array<int64_t, 2> mesh_shape, double memory_budget,
                       const std::string& cost_mode, std::optional<std::array<double, 2>> mesh_alpha,
                       std::optional<std::array<double, 2>> mesh_beta,
                       const std::map<std::string, std::string>& pinned,
                       double optimizer_state_factor, double time_limit_s, int num_threads) {
  plan::IntraOpRequest req;
  req.mesh_shape = mesh_shape;
  req.options = intra_op_options(memory_budget, cost_mode, pinned, optimizer_state_factor,
                                 time_limit_s, num_threads);
  if (cost_mode == "alpa") {
    std::array<double, 2> a = mesh_alpha.value_or(std::array<double, 2>{1, 1});
    std::array<double, 2> b = mesh_beta.value_or(std::array<double, 2>{1, 1});
    req.axis_links = std::array<mesh::LinkSpec, 2>{mesh::LinkSpec{a[0], b[0]}, mesh::LinkSpec{a[1], b[1]}};
  } else if (mesh_alpha || mesh_beta) {
    throw_if_error(core::invalid_argument(
        "mesh_alpha/mesh_beta apply to cost_mode='alpa'; for cost_mode='seconds' describe "
        "the links in the cluster instead"));
  }
  mesh::Cluster cluster = cluster_from_json_text(cluster_json);
  intra_op::IntraOpResult stats;
  plan::Plan p;
  {
    py::gil_scoped_release release;
    auto result = plan::make_intra_op_plan(graph, cluster, req, &stats);
    py::gil_scoped_acquire acquire;
    throw_if_error(result.status());
    p = std::move(result).value();
  }
  py::dict solver;
  solver["num_graph_nodes"] = stats.num_graph_nodes;
  solver["num_ilp_nodes"] = stats.num_ilp_nodes;
  solver["num_ilp_edges"] = stats.num_ilp_edges;
  solver["num_ilp_variables"] = stats.num_ilp_variables;
  solver["build_seconds"] = stats.build_seconds;
  solver["solve_seconds"] = stats.solve_seconds;
  solver["status"] = intra_op::ilp_solve_status_name(stats.status);
  py::dict out;
  out["plan_json"] = core::dump_json(p.to_json());
  out["solver"] = solver;
  return out;
}

py::dict plan_pipeshard(const ir::Graph& graph, const std::string& cluster_json,
                        double memory_budget, const std::string& cost_mode,
                        const std::map<std::string, std::string>& pinned,
                        double optimizer_state_factor, double time_limit_s, int num_threads,
                        int64_t num_micro_batches, const std::string& schedule,
                        int64_t num_layers, double layer_eps,
                        const std::vector<std::string>& layer_boundaries,
                        const std::vector<std::array<int64_t, 2>>& stage_meshes,
                        std::optional<int64_t> max_num_stages, py::object progress) {
  plan::PipeshardRequest req;
  req.options = intra_op_options(memory_budget, cost_mode, pinned, optimizer_state_factor,
                                 time_limit_s, 1);
  req.num_threads = num_threads;
  req.num_micro_batches = num_micro_batches;
  req.schedule = schedule;
  req.clustering.num_layers = num_layers;
  req.clustering.eps = layer_eps;
  req.layer_boundaries = layer_boundaries;
  req.stage_meshes = stage_meshes;
  req.max_num_stages = max_num_stages;
  mesh::Cluster cluster = cluster_from_json_text(cluster_json);
  // progress(done, total) runs with the GIL held; a Python exception from it
  // stops the planner (ProgressStopped unwinds it) and is re-raised here.
  struct ProgressStopped {};
  std::shared_ptr<py::error_already_set> progress_error;
  if (!progress.is_none()) {
    req.progress = [&progress, &progress_error](int64_t done, int64_t total) {
      py::gil_scoped_acquire acquire;
      try {
        progress(done, total);
      } catch (py::error_already_set& e) {
        progress_error = std::make_shared<py::error_already_set>(std::move(e));
        throw ProgressStopped{};
      }
    };
  }
  plan::PipeshardStats stats;
  plan::Plan p;
  {
    std::optional<core::StatusOr<plan::Plan>> result;
    {
      py::gil_scoped_release release;
      try {
        result = plan::make_pipeshard_plan(graph, cluster, req, &stats);
      } catch (const ProgressStopped&) {
      }
    }
    if (progress_error) throw *progress_error;
    throw_if_error(result->status());
    p = std::move(*result).value();
  }
  py::dict solver;
  solver["num_layers"] = stats.num_layers;
  solver["num_candidates"] = stats.num_candidates;
  solver["num_pruned_no_room"] = stats.num_pruned_no_room;
  solver["num_pruned_imbalance"] = stats.num_pruned_imbalance;
  solver["num_pruned_idle_axes"] = stats.num_pruned_idle_axes;
  solver["num_costed"] = stats.num_costed;
  solver["num_composed"] = stats.num_composed;
  solver["num_optimistic"] = stats.num_optimistic;
  solver["num_refined"] = stats.num_refined;
  solver["max_composition_error"] = stats.max_composition_error;
  solver["refinement_rounds"] = stats.refinement_rounds;
  solver["num_solved"] = stats.num_solved;
  solver["num_time_limited"] = stats.num_time_limited;
  solver["num_stage_graphs"] = stats.num_stage_graphs;
  solver["num_distinct_stage_graphs"] = stats.num_distinct_stage_graphs;
  solver["imbalance_fallback"] = stats.imbalance_fallback;
  solver["clustering_seconds"] = stats.clustering_seconds;
  solver["extraction_seconds"] = stats.extraction_seconds;
  solver["profiling_seconds"] = stats.profiling_seconds;
  solver["dp_seconds"] = stats.dp_seconds;
  solver["assembly_seconds"] = stats.assembly_seconds;
  solver["total_seconds"] = stats.total_seconds;
  py::dict out;
  out["plan_json"] = core::dump_json(p.to_json());
  out["solver"] = solver;
  return out;
}

}  // namespace

void bind_planner(py::module_& m) {
  m.def("cluster_preset", [](const std::string& name, int64_t hosts, int64_t per_host) {
    return core::dump_json(unwrap(mesh::cluster_preset(name, hosts, per_host)).to_json());
  }, py::arg("name"), py::arg("num_hosts"), py::arg("devices_per_host"),
     "JSON of a preset cluster (a100-40gb, h100-80gb, cpu-gloo).");
  m.def("cluster_preset_names", &mesh::cluster_preset_names);
  m.def("validate_cluster", [](const std::string& text) {
    return core::dump_json(cluster_from_json_text(text).to_json());
  });
  m.def("plan_intra_op", &plan_intra_op, py::arg("graph"), py::arg("cluster_json"),
        py::arg("mesh_shape"), py::arg("memory_budget"), py::arg("cost_mode"),
        py::arg("mesh_alpha"), py::arg("mesh_beta"), py::arg("pinned"),
        py::arg("optimizer_state_factor"), py::arg("time_limit_s"), py::arg("num_threads"));
  m.def("plan_pipeshard", &plan_pipeshard, py::arg("graph"), py::arg("cluster_json"),
        py::arg("memory_budget"), py::arg("cost_mode"), py::arg("pinned"),
        py::arg("optimizer_state_factor"), py::arg("time_limit_s"), py::arg("num_threads"),
        py::arg("num_micro_batches"), py::arg("schedule"), py::arg("num_layers"),
        py::arg("layer_eps"), py::arg("layer_boundaries"), py::arg("stage_meshes"),
        py::arg("max_num_stages"), py::arg("progress") = py::none(),
        "Pipeshard plan; progress(done, total), when given, is called after each distinct "
        "candidate ILP is solved (with the GIL held); an exception from it stops planning "
        "and propagates.");
  m.def("plan_explain", [](const std::string& text) {
    return unwrap(plan::Plan::parse(text)).explain();
  });
  m.def("plan_normalize", [](const std::string& text) {
    return core::dump_json(unwrap(plan::Plan::parse(text)).to_json());
  }, "Parse and re-serialize a plan (validates it).");
  m.def("plan_check_graph", [](const std::string& text, const ir::Graph& graph) {
    throw_if_error(plan::validate_plan_for_graph(unwrap(plan::Plan::parse(text)), graph));
  }, py::arg("plan_json"), py::arg("graph"),
     "ValueError unless the plan fits `graph` (fingerprint, FQNs, node names, shapes).");
  m.def("parse_sharding_spec", [](const std::string& text) {
    return unwrap(sharding::ShardingSpec::parse(text)).to_string();
  });
  m.def("sharding_spec_parts", [](const std::string& text) {
    const sharding::ShardingSpec spec = unwrap(sharding::ShardingSpec::parse(text));
    py::list dims;
    for (int64_t d = 0; d < spec.rank(); ++d) {
      dims.append(py::make_tuple(spec.dims[static_cast<size_t>(d)], spec.block(d)));
    }
    return py::make_tuple(dims, spec.partial);
  }, py::arg("spec"),
     "([(mesh axes, block factor) per dim], partial-sum axes) of a spec string, e.g. "
     "'RS0x3P1' -> ([([], 1), ([0], 3)], [1]).");
  m.def("plan_reshard", [](const std::string& from, const std::string& to,
                           const std::vector<int64_t>& shape, std::array<int64_t, 2> mesh_shape) {
    // Logical meshes only need their shape here; link costs do not matter.
    mesh::Cluster cluster = unwrap(mesh::cluster_preset("cpu-gloo", 1, mesh_shape[0] * mesh_shape[1]));
    mesh::DeviceMesh mesh = unwrap(mesh::DeviceMesh::create(cluster, mesh_shape));
    auto a = unwrap(sharding::ShardingSpec::parse(from));
    auto b = unwrap(sharding::ShardingSpec::parse(to));
    ir::TensorMeta meta{shape, ir::DType::kFloat32};
    throw_if_error(a.check(shape, mesh).with_context("resharding source"));
    throw_if_error(b.check(shape, mesh).with_context("resharding target"));
    throw_if_error(sharding::reshard_supported(a, b));
    py::list steps;
    for (const auto& st : sharding::plan_reshard(a, b, meta, mesh, false).steps) {
      steps.append(py::make_tuple(sharding::reshard_op_name(st.op), st.axis, st.from_dim, st.to_dim));
    }
    return steps;
  }, "The resharding steps (op, mesh axis, from dim, to dim) the runtime executes.");
  m.def("node_strategies", [](const ir::Graph& graph, const std::string& node_name,
                              std::array<int64_t, 2> mesh_shape) {
    mesh::Cluster cluster = unwrap(mesh::cluster_preset("cpu-gloo", 1, mesh_shape[0] * mesh_shape[1]));
    mesh::DeviceMesh mesh = unwrap(mesh::DeviceMesh::create(cluster, mesh_shape));
    auto id = graph.find(node_name);
    if (!id) throw_if_error(core::not_found("no node named '" + node_name + "'"));
    const ir::Node& node = graph.node(*id);
    std::vector<bool> grad = intra_op::compute_needs_grad(graph);
    std::vector<bool> input_grad;
    for (const auto& v : node.inputs) input_grad.push_back(grad[v.node.index()]);
    auto sig = sharding::op_signature(graph, node);
    std::vector<sharding::Strategy> list =
        sig ? sharding::op_strategies(graph, node, *sig, mesh, input_grad, sharding::collect_block_hints(graph))
            : std::vector<sharding::Strategy>{sharding::replicated_strategy(graph, node)};
    py::list out;
    for (const auto& st : list) {
      py::list ins, outs, colls;
      for (const auto& sp : st.inputs) ins.append(sp.to_string());
      for (const auto& sp : st.outputs) outs.append(sp.to_string());
      for (const auto& c : st.collectives) {
        colls.append(py::make_tuple(sharding::collective_kind_name(c.kind), c.axes,
                                    sharding::phase_name(c.phase), c.input, c.what));
      }
      out.append(py::make_tuple(st.name, ins, outs, colls));
    }
    return out;
  }, "Every sharding strategy of one node: (name, input specs, output specs, collectives).");
  m.def("local_shape", [](const std::string& spec, const std::vector<int64_t>& shape,
                          std::array<int64_t, 2> mesh_shape) {
    mesh::Cluster cluster = unwrap(mesh::cluster_preset("cpu-gloo", 1, mesh_shape[0] * mesh_shape[1]));
    mesh::DeviceMesh mesh = unwrap(mesh::DeviceMesh::create(cluster, mesh_shape));
    return unwrap(unwrap(sharding::ShardingSpec::parse(spec)).local_shape(shape, mesh));
  }, "Shape of one device's piece of a tensor laid out as `spec`.");
  m.def("solve_ilp", [](const std::string& problem_json, double time_limit_s, int num_threads) {
    auto problem = intra_op::IlpProblem::from_string(problem_json);
    throw_if_error(problem.status());
    throw_if_error(problem->validate());
    intra_op::IlpOptions options;
    options.time_limit_s = time_limit_s;
    options.num_threads = num_threads;
    core::StatusOr<intra_op::IlpSolution> sol = core::internal_error("unset");
    {
      py::gil_scoped_release release;
      sol = intra_op::solve_ilp(*problem, options);
    }
    throw_if_error(sol.status());
    py::dict out;
    out["choice"] = sol->choice;
    out["objective"] = sol->objective;
    out["memory_peak"] = sol->memory_peak;
    out["status"] = intra_op::ilp_solve_status_name(sol->status);
    out["solve_seconds"] = sol->solve_seconds;
    return out;
  }, py::arg("problem_json"), py::arg("time_limit_s") = 60.0, py::arg("num_threads") = 1,
     "Solve an IlpProblem given as JSON (see intra_op/ilp_problem.h).");
  m.def("evaluate_ilp", [](const std::string& problem_json, const std::vector<int64_t>& choice) {
    auto problem = intra_op::IlpProblem::from_string(problem_json);
    throw_if_error(problem.status());
    auto ev = unwrap(intra_op::evaluate(*problem, choice));
    py::dict out;
    out["objective"] = ev.objective;
    out["memory_peak"] = ev.memory_peak;
    out["memory_ok"] = ev.memory_ok;
    return out;
  });
}

}  // namespace alpa::python
