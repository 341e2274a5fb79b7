// This file implements Plan JSON and explain().
#include "plan/plan.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "plan/plan_validation.h"

namespace alpa::plan {

using core::Json;
using sharding::ShardingSpec;

bool operator==(const CollectiveRecord& a, const CollectiveRecord& b) {
  return a.stage == b.stage && a.node == b.node && a.kind == b.kind && a.axes == b.axes &&
         a.bytes == b.bytes && a.phase == b.phase && a.what == b.what && a.input == b.input &&
         a.role == b.role;
}

bool operator==(const StagePlan& a, const StagePlan& b) {
  return a.index == b.index && a.mesh_shape == b.mesh_shape && a.device_ids == b.device_ids &&
         a.param_specs == b.param_specs && a.input_specs == b.input_specs && a.nodes == b.nodes &&
         a.collectives == b.collectives && a.predicted_time == b.predicted_time &&
         a.compute_time == b.compute_time && a.communication_time == b.communication_time &&
         a.memory_bytes == b.memory_bytes && a.layers == b.layers && a.submesh == b.submesh &&
         a.inputs == b.inputs && a.outputs == b.outputs && a.graph_outputs == b.graph_outputs &&
         a.parameter_memory_bytes == b.parameter_memory_bytes && a.remat == b.remat &&
         a.recompute_time == b.recompute_time && a.peak_memory_bytes == b.peak_memory_bytes &&
         a.input_memory_bytes == b.input_memory_bytes;
}

double Plan::predicted_step_time() const {
  double sum = 0;
  double slowest = 0;
  for (const StagePlan& s : stages) {
    sum += s.predicted_time;
    slowest = std::max(slowest, s.predicted_time);
  }
  return sum + static_cast<double>(num_micro_batches - 1) * slowest;
}

double Plan::peak_memory_bytes() const {
  double m = 0;
  for (const StagePlan& s : stages) m = std::max(m, s.peak_bytes());
  return m;
}

namespace {

Json ints(const std::vector<int64_t>& v) { return Json(v); }

Json specs_json(const std::vector<ShardingSpec>& specs) {
  Json a = Json::array();
  for (const ShardingSpec& s : specs) a.push_back(s.to_string());
  return a;
}

Json named_json(const NamedSpecs& specs) {
  Json o = Json::object();
  for (const auto& [name, spec] : specs) o[name] = spec.to_string();
  return o;
}

/// `parsed`, its error prefixed with the field path it came from.
template <typename T>
core::StatusOr<T> with_path(core::StatusOr<T> parsed, const std::string& path) {
  if (parsed.ok()) return parsed;
  return parsed.status().with_context(path);
}

core::StatusOr<std::vector<ShardingSpec>> specs_from(const Json& j, const std::string& where) {
  if (!j.is_array()) return core::parse_error(where + ": expected a list of specs");
  std::vector<ShardingSpec> out;
  for (size_t i = 0; i < j.size(); ++i) {
    const Json& s = j[i];
    if (!s.is_string()) return core::parse_error(where + ": specs are strings");
    ALPA_ASSIGN_OR_RETURN(ShardingSpec spec,
                          with_path(ShardingSpec::parse(s.get<std::string>()), fmt::format("{}[{}]", where, i)));
    out.push_back(std::move(spec));
  }
  return out;
}

core::StatusOr<NamedSpecs> named_from(const Json& j, const std::string& where) {
  if (!j.is_object()) return core::parse_error(where + ": expected an object of specs");
  NamedSpecs out;
  for (const auto& [k, v] : j.get_ref<const Json::object_t&>()) {
    if (!v.is_string()) return core::parse_error(where + "." + k + ": spec must be a string");
    ALPA_ASSIGN_OR_RETURN(ShardingSpec spec,
                          with_path(ShardingSpec::parse(v.get<std::string>()), where + "['" + k + "']"));
    out.emplace_back(k, std::move(spec));
  }
  return out;
}

Json stage_values_json(const std::vector<StageValue>& values) {
  Json a = Json::array();
  for (const StageValue& v : values) {
    a.push_back(Json::object({{"name", v.name}, {"producer", v.producer}, {"index", v.index},
                              {"meta", v.meta.to_string()}, {"spec", v.spec.to_string()},
                              {"requires_grad", v.requires_grad}}));
  }
  return a;
}

core::StatusOr<std::vector<StageValue>> stage_values_from(const Json& j, const std::string& key,
                                                          const std::string& where) {
  ALPA_ASSIGN_OR_RETURN(const Json* list, core::json_get_array(j, key, where));
  std::vector<StageValue> out;
  for (size_t i = 0; i < list->size(); ++i) {
    const Json& v = (*list)[i];
    const std::string w = fmt::format("{}.{}[{}]", where, key, i);
    StageValue sv;
    ALPA_ASSIGN_OR_RETURN(sv.name, core::json_get_string(v, "name", w));
    ALPA_ASSIGN_OR_RETURN(sv.producer, core::json_get_string(v, "producer", w));
    ALPA_ASSIGN_OR_RETURN(sv.index, core::json_get_int(v, "index", w));
    ALPA_ASSIGN_OR_RETURN(std::string meta, core::json_get_string(v, "meta", w));
    ALPA_ASSIGN_OR_RETURN(sv.meta, with_path(ir::TensorMeta::parse(meta), w + ".meta"));
    ALPA_ASSIGN_OR_RETURN(std::string spec, core::json_get_string(v, "spec", w));
    ALPA_ASSIGN_OR_RETURN(sv.spec, with_path(ShardingSpec::parse(spec), w + ".spec"));
    ALPA_ASSIGN_OR_RETURN(sv.requires_grad, core::json_get_bool(v, "requires_grad", w));
    out.push_back(std::move(sv));
  }
  return out;
}

core::StatusOr<std::array<int64_t, 2>> int_pair(const Json& j, const std::string& key,
                                                 const std::string& where) {
  ALPA_ASSIGN_OR_RETURN(const Json* member, core::json_member(j, key, where));
  ALPA_ASSIGN_OR_RETURN(auto list, core::json_int_list(*member, where + "." + key));
  if (list.size() != 2) return core::parse_error(where + "." + key + ": expected two integers");
  return std::array<int64_t, 2>{list[0], list[1]};
}

Json stage_json(const StagePlan& s) {
  Json j = Json::object();
  j["index"] = s.index;
  j["mesh_shape"] = ints({s.mesh_shape[0], s.mesh_shape[1]});
  j["device_ids"] = ints(s.device_ids);
  j["param_specs"] = named_json(s.param_specs);
  j["input_specs"] = named_json(s.input_specs);
  Json nodes = Json::array();
  for (const NodeSharding& n : s.nodes) {
    nodes.push_back(Json::object({{"node", n.node}, {"strategy", n.strategy},
                                  {"inputs", specs_json(n.inputs)}, {"outputs", specs_json(n.outputs)}}));
  }
  j["nodes"] = std::move(nodes);
  Json colls = Json::array();
  for (const CollectiveRecord& c : s.collectives) {
    colls.push_back(Json::object({
        {"node", c.node}, {"kind", sharding::collective_kind_name(c.kind)},
        {"axes", ints(std::vector<int64_t>(c.axes.begin(), c.axes.end()))},
        {"bytes", c.bytes}, {"phase", sharding::phase_name(c.phase)},
        {"what", c.what}, {"input", c.input},
        {"role", sharding::collective_role_name(c.role)}}));
  }
  j["collectives"] = std::move(colls);
  j["predicted_time"] = s.predicted_time;
  j["compute_time"] = s.compute_time;
  j["communication_time"] = s.communication_time;
  j["memory_bytes"] = s.memory_bytes;
  j["parameter_memory_bytes"] = s.parameter_memory_bytes;
  if (s.remat) {  // written only when on: plans without remat read as before
    j["remat"] = true;
    j["recompute_time"] = s.recompute_time;
  }
  if (s.peak_memory_bytes > 0) {
    j["peak_memory_bytes"] = s.peak_memory_bytes;
    j["input_memory_bytes"] = s.input_memory_bytes;
  }
  j["layers"] = ints({s.layers[0], s.layers[1]});
  j["submesh"] = ints({s.submesh[0], s.submesh[1]});
  j["inputs"] = stage_values_json(s.inputs);
  j["outputs"] = stage_values_json(s.outputs);
  j["graph_outputs"] = ints(s.graph_outputs);
  return j;
}

// Plans written before records carried a role (alpa_torch 0.1): the role
// their `what` text stood for.
sharding::CollectiveRole legacy_role(const std::string& what) {
  using sharding::CollectiveRole;
  if (what == "partial sums of output") return CollectiveRole::kPartialOutput;
  if (what == "parameter gradient") return CollectiveRole::kParameterGrad;
  if (what.rfind("partial grad of input", 0) == 0) return CollectiveRole::kInputGrad;
  if (what == "synced statistics") return CollectiveRole::kSyncedStatistics;
  if (what == "synced statistic grads") return CollectiveRole::kSyncedStatisticGrads;
  if (what.rfind("token dispatch", 0) == 0) return CollectiveRole::kTokenDispatch;
  if (what.rfind("token combine", 0) == 0) return CollectiveRole::kTokenCombine;
  return CollectiveRole::kReshard;
}

core::StatusOr<CollectiveRecord> collective_from(const Json& c, const std::string& w) {
  CollectiveRecord r;
  ALPA_ASSIGN_OR_RETURN(r.node, core::json_get_string(c, "node", w));
  ALPA_ASSIGN_OR_RETURN(std::string kind, core::json_get_string(c, "kind", w));
  ALPA_ASSIGN_OR_RETURN(r.kind, sharding::parse_collective_kind(kind));
  ALPA_ASSIGN_OR_RETURN(const Json* axes, core::json_member(c, "axes", w));
  ALPA_ASSIGN_OR_RETURN(auto axes_list, core::json_int_list(*axes, w + ".axes"));
  for (int64_t a : axes_list) {
    if (a != 0 && a != 1) {
      return core::parse_error(fmt::format(
          "{}.axes: {} is not a mesh axis; a collective runs over mesh axes 0 and/or 1", w, a));
    }
    r.axes.push_back(static_cast<int>(a));
  }
  ALPA_ASSIGN_OR_RETURN(r.bytes, core::json_get_double(c, "bytes", w));
  ALPA_ASSIGN_OR_RETURN(std::string phase, core::json_get_string(c, "phase", w));
  if (phase != "forward" && phase != "backward") {
    return core::parse_error(fmt::format(
        "{}.phase: '{}' is not a phase; write 'forward' or 'backward'", w, phase));
  }
  r.phase = phase == "backward" ? sharding::Phase::kBackward : sharding::Phase::kForward;
  ALPA_ASSIGN_OR_RETURN(r.what, core::json_get_string(c, "what", w));
  ALPA_ASSIGN_OR_RETURN(r.input, core::json_get_int(c, "input", w));
  if (core::json_find(c, "role") != nullptr) {
    ALPA_ASSIGN_OR_RETURN(std::string role, core::json_get_string(c, "role", w));
    ALPA_ASSIGN_OR_RETURN(r.role, sharding::parse_collective_role(role));
  } else {
    r.role = legacy_role(r.what);
  }
  return r;
}

core::StatusOr<StagePlan> stage_from(const Json& j, const std::string& where) {
  StagePlan s;
  ALPA_ASSIGN_OR_RETURN(s.index, core::json_get_int(j, "index", where));
  ALPA_ASSIGN_OR_RETURN(const Json* shape, core::json_member(j, "mesh_shape", where));
  ALPA_ASSIGN_OR_RETURN(auto mesh_shape, core::json_int_list(*shape, where + ".mesh_shape"));
  if (mesh_shape.size() != 2) return core::parse_error(where + ".mesh_shape: expected [n0, n1]");
  s.mesh_shape = {mesh_shape[0], mesh_shape[1]};
  ALPA_ASSIGN_OR_RETURN(const Json* ids, core::json_member(j, "device_ids", where));
  ALPA_ASSIGN_OR_RETURN(s.device_ids, core::json_int_list(*ids, where + ".device_ids"));
  ALPA_ASSIGN_OR_RETURN(const Json* ps, core::json_member(j, "param_specs", where));
  ALPA_ASSIGN_OR_RETURN(s.param_specs, named_from(*ps, where + ".param_specs"));
  ALPA_ASSIGN_OR_RETURN(const Json* is, core::json_member(j, "input_specs", where));
  ALPA_ASSIGN_OR_RETURN(s.input_specs, named_from(*is, where + ".input_specs"));
  ALPA_ASSIGN_OR_RETURN(const Json* nodes, core::json_get_array(j, "nodes", where));
  for (size_t i = 0; i < nodes->size(); ++i) {
    const Json& n = (*nodes)[i];
    const std::string w = fmt::format("{}.nodes[{}]", where, i);
    NodeSharding ns;
    ALPA_ASSIGN_OR_RETURN(ns.node, core::json_get_string(n, "node", w));
    ALPA_ASSIGN_OR_RETURN(ns.strategy, core::json_get_string(n, "strategy", w));
    ALPA_ASSIGN_OR_RETURN(const Json* in, core::json_member(n, "inputs", w));
    ALPA_ASSIGN_OR_RETURN(ns.inputs, specs_from(*in, w + ".inputs"));
    ALPA_ASSIGN_OR_RETURN(const Json* out, core::json_member(n, "outputs", w));
    ALPA_ASSIGN_OR_RETURN(ns.outputs, specs_from(*out, w + ".outputs"));
    s.nodes.push_back(std::move(ns));
  }
  ALPA_ASSIGN_OR_RETURN(const Json* colls, core::json_get_array(j, "collectives", where));
  for (size_t k = 0; k < colls->size(); ++k) {
    ALPA_ASSIGN_OR_RETURN(CollectiveRecord r,
                          collective_from((*colls)[k], fmt::format("{}.collectives[{}]", where, k)));
    r.stage = s.index;
    s.collectives.push_back(std::move(r));
  }
  ALPA_ASSIGN_OR_RETURN(s.predicted_time, core::json_get_double(j, "predicted_time", where));
  ALPA_ASSIGN_OR_RETURN(s.compute_time, core::json_get_double(j, "compute_time", where));
  ALPA_ASSIGN_OR_RETURN(s.communication_time, core::json_get_double(j, "communication_time", where));
  ALPA_ASSIGN_OR_RETURN(s.memory_bytes, core::json_get_double(j, "memory_bytes", where));
  ALPA_ASSIGN_OR_RETURN(s.parameter_memory_bytes,
                        core::json_get_double(j, "parameter_memory_bytes", where));
  if (j.contains("remat")) {
    ALPA_ASSIGN_OR_RETURN(s.remat, core::json_get_bool(j, "remat", where));
    ALPA_ASSIGN_OR_RETURN(s.recompute_time, core::json_get_double(j, "recompute_time", where));
  }
  if (j.contains("peak_memory_bytes")) {
    ALPA_ASSIGN_OR_RETURN(s.peak_memory_bytes, core::json_get_double(j, "peak_memory_bytes", where));
    ALPA_ASSIGN_OR_RETURN(s.input_memory_bytes,
                          core::json_get_double(j, "input_memory_bytes", where));
  }
  ALPA_ASSIGN_OR_RETURN(s.layers, int_pair(j, "layers", where));
  ALPA_ASSIGN_OR_RETURN(s.submesh, int_pair(j, "submesh", where));
  ALPA_ASSIGN_OR_RETURN(s.inputs, stage_values_from(j, "inputs", where));
  ALPA_ASSIGN_OR_RETURN(s.outputs, stage_values_from(j, "outputs", where));
  ALPA_ASSIGN_OR_RETURN(const Json* gout, core::json_member(j, "graph_outputs", where));
  ALPA_ASSIGN_OR_RETURN(s.graph_outputs, core::json_int_list(*gout, where + ".graph_outputs"));
  return s;
}

core::StatusOr<std::vector<std::string>> string_list(const Json& j, const std::string& key) {
  ALPA_ASSIGN_OR_RETURN(const Json* list, core::json_get_array(j, key, "plan"));
  std::vector<std::string> out;
  for (size_t i = 0; i < list->size(); ++i) {
    if (!(*list)[i].is_string()) {
      return core::parse_error(fmt::format("plan.{}[{}]: expected a string, got {}", key, i,
                                           core::json_kind_name((*list)[i])));
    }
    out.push_back((*list)[i].get<std::string>());
  }
  return out;
}

std::string gib(double bytes) { return fmt::format("{:.3f} GiB", bytes / (1024.0 * 1024.0 * 1024.0)); }

std::string human_bytes(double b) {
  if (b >= 1024.0 * 1024 * 1024) return fmt::format("{:.2f} GiB", b / (1024.0 * 1024 * 1024));
  if (b >= 1024.0 * 1024) return fmt::format("{:.2f} MiB", b / (1024.0 * 1024));
  if (b >= 1024.0) return fmt::format("{:.1f} KiB", b / 1024.0);
  return fmt::format("{:.0f} B", b);
}

}  // namespace

Json Plan::to_json() const {
  Json j = Json::object();
  j["format"] = "alpa_torch.plan";
  j["version"] = kFormatVersion;
  j["graph"] = graph_name;
  j["graph_fingerprint"] = graph_fingerprint;
  j["cluster"] = cluster.to_json();
  j["cost_mode"] = cost_mode;
  if (precision != "fp32") j["precision"] = precision;  // older readers: fp32 plans unchanged
  j["memory_budget"] = memory_budget;
  Json stages_json = Json::array();
  for (const StagePlan& s : stages) stages_json.push_back(stage_json(s));
  j["stages"] = std::move(stages_json);
  j["warnings"] = warnings;
  j["num_micro_batches"] = num_micro_batches;
  j["schedule"] = schedule;
  j["num_layers"] = num_layers;
  j["notes"] = notes;
  return j;
}

core::StatusOr<Plan> Plan::from_json(const Json& j) {
  ALPA_ASSIGN_OR_RETURN(std::string format, core::json_get_string(j, "format", "plan"));
  if (format != "alpa_torch.plan") {
    return core::parse_error(fmt::format("this JSON is a '{}', not an alpa_torch plan", format));
  }
  ALPA_ASSIGN_OR_RETURN(int64_t version, core::json_get_int(j, "version", "plan"));
  if (version != kFormatVersion) {
    return core::parse_error(fmt::format(
        "plan JSON has format version {}, but this alpa_torch reads version {}; {}", version,
        kFormatVersion, version > kFormatVersion ? "upgrade alpa_torch" : "re-plan the model"));
  }
  Plan p;
  ALPA_ASSIGN_OR_RETURN(p.graph_name, core::json_get_string(j, "graph", "plan"));
  ALPA_ASSIGN_OR_RETURN(p.graph_fingerprint, core::json_get_string(j, "graph_fingerprint", "plan"));
  ALPA_ASSIGN_OR_RETURN(const Json* cluster, core::json_member(j, "cluster", "plan"));
  core::StatusOr<mesh::Cluster> parsed = mesh::Cluster::from_json(*cluster);
  if (!parsed.ok()) {  // its messages start "cluster: ..." or name a link ("intra_host: ...")
    const bool named = parsed.status().message().rfind("cluster", 0) == 0;
    return parsed.status().with_context(named ? "invalid plan" : "invalid plan: cluster");
  }
  p.cluster = std::move(parsed).value();
  ALPA_ASSIGN_OR_RETURN(p.cost_mode, core::json_get_string(j, "cost_mode", "plan"));
  if (j.contains("precision")) {
    ALPA_ASSIGN_OR_RETURN(p.precision, core::json_get_string(j, "precision", "plan"));
    if (p.precision != "fp32" && p.precision != "bf16" && p.precision != "fp16") {
      return core::parse_error(fmt::format(
          "invalid plan: precision is '{}'; expected 'fp32', 'bf16' or 'fp16'", p.precision));
    }
  }
  ALPA_ASSIGN_OR_RETURN(p.memory_budget, core::json_get_double(j, "memory_budget", "plan"));
  ALPA_ASSIGN_OR_RETURN(const Json* stages, core::json_get_array(j, "stages", "plan"));
  for (size_t i = 0; i < stages->size(); ++i) {
    ALPA_ASSIGN_OR_RETURN(StagePlan s, stage_from((*stages)[i], fmt::format("stages[{}]", i)));
    p.stages.push_back(std::move(s));
  }
  ALPA_ASSIGN_OR_RETURN(p.warnings, string_list(j, "warnings"));
  ALPA_ASSIGN_OR_RETURN(p.num_micro_batches, core::json_get_int(j, "num_micro_batches", "plan"));
  ALPA_ASSIGN_OR_RETURN(p.schedule, core::json_get_string(j, "schedule", "plan"));
  ALPA_ASSIGN_OR_RETURN(p.num_layers, core::json_get_int(j, "num_layers", "plan"));
  ALPA_ASSIGN_OR_RETURN(p.notes, string_list(j, "notes"));
  ALPA_RETURN_IF_ERROR(validate_plan(p));
  return p;
}

core::StatusOr<Plan> Plan::parse(std::string_view text) {
  ALPA_ASSIGN_OR_RETURN(Json j, core::parse_json(text));
  return from_json(j);
}

std::string Plan::explain() const {
  std::string out = fmt::format("plan for graph '{}' on {}\n", graph_name, cluster.to_string());
  out += fmt::format("cost mode {}; memory budget {}{}\n", cost_mode,
                     std::isinf(memory_budget) ? std::string("none") : gib(memory_budget),
                     precision == "fp32" ? std::string()
                                         : fmt::format("; precision {} (autocast, fp32 master "
                                                       "weights)", precision));
  out += fmt::format("predicted step time {:.6f} s; peak memory per device {}\n",
                     predicted_step_time(), gib(peak_memory_bytes()));
  if (stages.size() > 1 || num_micro_batches > 1) {
    out += fmt::format("pipeline: {} stages over {} layers, {} microbatches, schedule {}\n",
                       stages.size(), num_layers, num_micro_batches, schedule);
  }
  for (const std::string& n : notes) out += "  " + n + "\n";
  for (const StagePlan& s : stages) {
    out += fmt::format("\nstage {}: logical mesh ({}, {}) over devices {}\n", s.index,
                       s.mesh_shape[0], s.mesh_shape[1], s.device_ids);
    if (stages.size() > 1) {
      out += fmt::format("  layers {}..{} on sub-mesh ({}, {}); receives {} value(s), sends {}\n",
                         s.layers[0], s.layers[1], s.submesh[0], s.submesh[1], s.inputs.size(),
                         s.outputs.size());
    }
    if (s.remat) {
      out += fmt::format("  time {:.6f} s = compute {:.6f} s + communication {:.6f} s + "
                         "recompute {:.6f} s (remat: the forward runs again in backward, and "
                         "each microbatch in flight keeps only the stage's inputs); memory {}\n",
                         s.predicted_time, s.compute_time, s.communication_time,
                         s.recompute_time, gib(s.memory_bytes));
    } else {
      out += fmt::format("  time {:.6f} s = compute {:.6f} s + communication {:.6f} s; memory {}\n",
                         s.predicted_time, s.compute_time, s.communication_time,
                         gib(s.memory_bytes));
    }
    if (s.peak_memory_bytes > 0) {
      const double act = std::max(0.0, s.memory_bytes - s.parameter_memory_bytes);
      const double kept = s.peak_memory_bytes - s.parameter_memory_bytes;
      out += fmt::format(
          "  memory per device: parameters, gradients and optimizer state {}; activations {} per "
          "microbatch{}; peak {} with the microbatches in flight\n",
          gib(s.parameter_memory_bytes), gib(act),
          s.remat ? fmt::format(" (recomputed: {} of inputs kept per microbatch in flight)",
                                gib(std::min(act, s.input_memory_bytes)))
                  : fmt::format(" ({:.3g} microbatches' worth kept)", act > 0 ? kept / act : 0.0),
          gib(s.peak_memory_bytes));
    }
    out += "  parameters:\n";
    size_t width = 0;
    for (const auto& [name, spec] : s.param_specs) width = std::max(width, name.size());
    for (const auto& [name, spec] : s.param_specs) {
      out += fmt::format("    {:<{}}  {}\n", name, width, spec.to_string());
    }
    if (!s.input_specs.empty()) {
      out += "  inputs:\n";
      for (const auto& [name, spec] : s.input_specs) out += fmt::format("    {}  {}\n", name, spec.to_string());
    }
    out += fmt::format("  collectives ({}):\n", s.collectives.size());
    for (const CollectiveRecord& c : s.collectives) {
      out += fmt::format("    {:<8} {:<14} axes {}  {:>10}  at {} ({})\n", sharding::phase_name(c.phase),
                         sharding::collective_kind_name(c.kind), c.axes, human_bytes(c.bytes), c.node, c.what);
    }
  }
  for (const std::string& w : warnings) out += "warning: " + w + "\n";
  return out;
}

}  // namespace alpa::plan
