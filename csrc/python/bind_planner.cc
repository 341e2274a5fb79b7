// This file implements the Python bindings of the planner: clusters and
// presets, the intra-op planner, plans (JSON in and out, explain), and the
// ILP as plain data so tests and benchmarks can solve problems without a
// model. Options arrive as typed request classes (IntraOpRequest,
// PipeshardRequest); plans leave as JSON text, which alpa_torch.Plan wraps.
#include <fmt/format.h>
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

/// The pinned specs and strategies of `options` as Python sees them: one
/// dict, a value with '=' pins an op node's strategy ("RS0 = RR x S0R x S0"),
/// any other value a parameter's or node's spec ("S0R").
std::map<std::string, std::string> pinned_as_text(const intra_op::IntraOpOptions& options) {
  std::map<std::string, std::string> out = options.pinned_strategies;
  for (const auto& [name, spec] : options.pinned) out[name] = spec.to_string();
  return out;
}

void set_pinned_from_text(intra_op::IntraOpOptions& options,
                          const std::map<std::string, std::string>& pinned) {
  std::map<std::string, sharding::ShardingSpec> specs;
  std::map<std::string, std::string> strategies;
  for (const auto& [name, text] : pinned) {
    if (text.find('=') != std::string::npos) {  // an op node's strategy
      strategies[name] = text;
      continue;
    }
    auto spec = sharding::ShardingSpec::parse(text);
    if (!spec.ok()) throw_if_error(spec.status().with_context("plan_overrides['" + name + "']"));
    specs[name] = *spec;
  }
  options.pinned = std::move(specs);
  options.pinned_strategies = std::move(strategies);
}

// "fp32" | "bf16" | "fp16" -> the dtype activations are priced in.
ir::DType precision_dtype(const std::string& precision) {
  if (precision == "fp32") return ir::DType::kFloat32;
  if (precision == "bf16") return ir::DType::kBFloat16;
  if (precision == "fp16") return ir::DType::kFloat16;
  throw py::value_error(fmt::format(
      "precision must be 'fp32' or 'bf16' (autocast, fp32 master weights) or 'fp16', got '{}'",
      precision));
}

py::dict plan_intra_op(const ir::Graph& graph, const std::string& cluster_json,
                       const plan::IntraOpRequest& req) {
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
                        plan::PipeshardRequest req, py::object progress) {
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

/// The planners' option types as Python classes with keyword constructors:
/// `_C.IntraOpRequest(mesh_shape=(1, 4), options=_C.IntraOpOptions(...))`.
static void bind_requests(py::module_& m) {
  py::enum_<cost::CostOptions::Mode>(m, "CostMode",
      "seconds: roofline compute + alpha-beta communication; alpa: Alpa's conventions "
      "(no compute term, unit links unless IntraOpRequest.axis_links says otherwise)")
      .value("seconds", cost::CostOptions::Mode::kSeconds)
      .value("alpa", cost::CostOptions::Mode::kAlpa);

  py::class_<mesh::LinkSpec>(m, "LinkSpec", "One link: latency alpha (s), beta (s per byte).")
      .def(py::init([](double alpha, double beta) { return mesh::LinkSpec{alpha, beta}; }),
           py::arg("alpha") = 0.0, py::arg("beta") = 0.0)
      .def_readwrite("alpha", &mesh::LinkSpec::alpha)
      .def_readwrite("beta", &mesh::LinkSpec::beta)
      .def("__repr__", [](const mesh::LinkSpec& l) {
        return fmt::format("LinkSpec(alpha={}, beta={})", l.alpha, l.beta);
      });

  py::class_<intra_op::IntraOpOptions>(m, "IntraOpOptions",
      "Options of one intra-op ILP (intra_op/cost_graph.h).")
      .def(py::init([](double memory_budget, cost::CostOptions::Mode cost_mode,
                       const std::map<std::string, std::string>& pinned,
                       double optimizer_state_factor, double time_limit_s, int num_threads,
                       double memory_gap, const std::string& precision) {
             intra_op::IntraOpOptions o;
             o.memory_budget = memory_budget;
             o.cost.mode = cost_mode;
             o.cost.optimizer_state_factor = optimizer_state_factor;
             o.time_limit_s = time_limit_s;
             o.num_threads = num_threads;
             o.memory_gap = memory_gap;
             o.cost.compute_dtype = precision_dtype(precision);
             set_pinned_from_text(o, pinned);
             return o;
           }),
           py::kw_only(), py::arg("memory_budget") = std::numeric_limits<double>::infinity(),
           py::arg("cost_mode") = cost::CostOptions::Mode::kSeconds,
           py::arg("pinned") = std::map<std::string, std::string>{},
           py::arg("optimizer_state_factor") = 2.0, py::arg("time_limit_s") = 60.0,
           py::arg("num_threads") = 1, py::arg("memory_gap") = intra_op::IntraOpOptions{}.memory_gap,
           py::arg("precision") = "fp32")
      .def_readwrite("memory_budget", &intra_op::IntraOpOptions::memory_budget,
                     "bytes per device; inf = no bound")
      .def_property("cost_mode",
          [](const intra_op::IntraOpOptions& o) { return o.cost.mode; },
          [](intra_op::IntraOpOptions& o, cost::CostOptions::Mode mode) { o.cost.mode = mode; })
      .def_property("optimizer_state_factor",
          [](const intra_op::IntraOpOptions& o) { return o.cost.optimizer_state_factor; },
          [](intra_op::IntraOpOptions& o, double f) { o.cost.optimizer_state_factor = f; },
          "optimizer state per parameter byte (Adam: 2, momentum: 1, SGD: 0)")
      .def_property("pinned", &pinned_as_text, &set_pinned_from_text,
          "{name: spec}: a parameter's or node's spec ('S0R'), or with '=' an op node's "
          "strategy ('RS0 = RR x S0R x S0')")
      .def_readwrite("time_limit_s", &intra_op::IntraOpOptions::time_limit_s)
      .def_readwrite("num_threads", &intra_op::IntraOpOptions::num_threads)
      .def_readwrite("memory_gap", &intra_op::IntraOpOptions::memory_gap,
                     "memory-bound ILPs stop within this fraction of the optimum");

  py::class_<plan::IntraOpRequest>(m, "IntraOpRequest",
      "One intra-op plan: the logical mesh, the ILP's options, optional per-axis links "
      "(Alpa's mesh_alpha/mesh_beta, cost mode alpa only).")
      .def(py::init([](std::array<int64_t, 2> mesh_shape, const intra_op::IntraOpOptions& options,
                       std::optional<std::array<mesh::LinkSpec, 2>> axis_links) {
             plan::IntraOpRequest r;
             r.mesh_shape = mesh_shape;
             r.options = options;
             r.axis_links = axis_links;
             return r;
           }),
           py::kw_only(), py::arg("mesh_shape"),
           py::arg("options") = intra_op::IntraOpOptions{}, py::arg("axis_links") = py::none())
      .def_readwrite("mesh_shape", &plan::IntraOpRequest::mesh_shape)
      .def_readwrite("options", &plan::IntraOpRequest::options)
      .def_readwrite("axis_links", &plan::IntraOpRequest::axis_links);

  py::class_<inter_op::LayerClusteringOptions>(m, "LayerClusteringOptions",
      "Layer clustering (Alpa §5.1): num_layers (0 = automatic), FLOP imbalance eps.")
      .def(py::init([](int64_t num_layers, double eps, int64_t max_auto_layers) {
             return inter_op::LayerClusteringOptions{num_layers, eps, max_auto_layers};
           }),
           py::kw_only(), py::arg("num_layers") = 0, py::arg("eps") = 0.5,
           py::arg("max_auto_layers") = 16)
      .def_readwrite("num_layers", &inter_op::LayerClusteringOptions::num_layers)
      .def_readwrite("eps", &inter_op::LayerClusteringOptions::eps)
      .def_readwrite("max_auto_layers", &inter_op::LayerClusteringOptions::max_auto_layers);

  py::class_<plan::PipeshardRequest>(m, "PipeshardRequest",
      "One pipeshard plan (plan/pipeshard_plan.h): every stage's ILP options, layers, "
      "manual stages, microbatches and schedule.")
      .def(py::init([](const intra_op::IntraOpOptions& options,
                       const inter_op::LayerClusteringOptions& clustering,
                       std::vector<std::string> layer_boundaries,
                       std::vector<std::array<int64_t, 2>> stage_meshes, int64_t num_micro_batches,
                       std::string schedule, std::optional<int64_t> max_num_stages,
                       int num_threads, const std::string& remat) {
             plan::PipeshardRequest r;
             r.remat = unwrap(inter_op::parse_remat(remat));
             r.options = options;
             r.clustering = clustering;
             r.layer_boundaries = std::move(layer_boundaries);
             r.stage_meshes = std::move(stage_meshes);
             r.num_micro_batches = num_micro_batches;
             r.schedule = std::move(schedule);
             r.max_num_stages = max_num_stages;
             r.num_threads = num_threads;
             return r;
           }),
           py::kw_only(), py::arg("options") = intra_op::IntraOpOptions{},
           py::arg("clustering") = inter_op::LayerClusteringOptions{},
           py::arg("layer_boundaries") = std::vector<std::string>{},
           py::arg("stage_meshes") = std::vector<std::array<int64_t, 2>>{},
           py::arg("num_micro_batches") = 1, py::arg("schedule") = "1f1b",
           py::arg("max_num_stages") = py::none(), py::arg("num_threads") = 1,
           py::arg("remat") = "auto")
      .def_readwrite("options", &plan::PipeshardRequest::options)
      .def_readwrite("clustering", &plan::PipeshardRequest::clustering)
      .def_readwrite("layer_boundaries", &plan::PipeshardRequest::layer_boundaries)
      .def_readwrite("stage_meshes", &plan::PipeshardRequest::stage_meshes)
      .def_readwrite("num_micro_batches", &plan::PipeshardRequest::num_micro_batches)
      .def_readwrite("schedule", &plan::PipeshardRequest::schedule)
      .def_readwrite("max_num_stages", &plan::PipeshardRequest::max_num_stages)
      .def_readwrite("num_threads", &plan::PipeshardRequest::num_threads,
                     "candidate stage ILPs solved at once")
      .def_readwrite("imbalance_tolerance", &plan::PipeshardRequest::imbalance_tolerance)
      .def_readwrite("skip_idle_mesh_axes", &plan::PipeshardRequest::skip_idle_mesh_axes)
      .def_readwrite("exact_span_layers", &plan::PipeshardRequest::exact_span_layers)
      .def_property("remat",
          [](const plan::PipeshardRequest& r) { return std::string(inter_op::remat_name(r.remat)); },
          [](plan::PipeshardRequest& r, const std::string& text) {
            r.remat = unwrap(inter_op::parse_remat(text));
          },
          "'auto' (the stage DP picks per stage), 'none' or 'all'");
}

void bind_planner(py::module_& m) {
  bind_requests(m);
  m.def("cluster_preset", [](const std::string& name, int64_t hosts, int64_t per_host) {
    return core::dump_json(unwrap(mesh::cluster_preset(name, hosts, per_host)).to_json());
  }, py::arg("name"), py::arg("num_hosts"), py::arg("devices_per_host"),
     "JSON of a preset cluster (a100-40gb, h100-80gb, cpu-gloo).");
  m.def("cluster_preset_names", &mesh::cluster_preset_names);
  m.def("validate_cluster", [](const std::string& text) {
    return core::dump_json(cluster_from_json_text(text).to_json());
  });
  m.def("plan_intra_op", &plan_intra_op, py::arg("graph"), py::arg("cluster_json"),
        py::arg("request"),
        "Intra-op plan of `graph` on request.mesh_shape: {'plan_json': str, 'solver': dict}.");
  m.def("plan_pipeshard", &plan_pipeshard, py::arg("graph"), py::arg("cluster_json"),
        py::arg("request"), py::arg("progress") = py::none(),
        "Pipeshard plan: {'plan_json': str, 'solver': dict}; progress(done, total), when "
        "given, is called after each distinct candidate ILP is solved (with the GIL held); "
        "an exception from it stops planning and propagates.");
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
  m.def("solve_ilp", [](const std::string& problem_json, double time_limit_s, int num_threads,
                        double memory_gap) {
    auto problem = intra_op::IlpProblem::from_string(problem_json);
    throw_if_error(problem.status());
    throw_if_error(problem->validate());
    intra_op::IlpOptions options;
    options.time_limit_s = time_limit_s;
    options.num_threads = num_threads;
    options.memory_gap = memory_gap;
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
    out["lower_bound"] = sol->lower_bound;
    out["status"] = intra_op::ilp_solve_status_name(sol->status);
    out["solve_seconds"] = sol->solve_seconds;
    return out;
  }, py::arg("problem_json"), py::arg("time_limit_s") = 60.0, py::arg("num_threads") = 1,
     py::arg("memory_gap") = 0.0,
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
