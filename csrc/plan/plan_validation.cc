// This file implements validate_plan and validate_plan_for_graph.
#include "plan/plan_validation.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "mesh/device_mesh.h"

namespace alpa::plan {
namespace {

using core::Status;
using sharding::ShardingSpec;

constexpr const char* kReplan =
    "re-plan the model (alpa_torch.plan or 'alpa-torch plan') rather than editing the plan";

Status invalid(const std::string& path, const std::string& what) {
  return core::invalid_argument(fmt::format("invalid plan: {}: {}", path, what));
}

/// `v` in [lo, hi].
Status check_range(const std::string& path, int64_t v, int64_t lo, int64_t hi,
                   const std::string& fix) {
  if (v >= lo && v <= hi) return core::ok_status();
  return invalid(path, fmt::format("{} is outside the allowed range [{}, {}]; {}", v, lo, hi, fix));
}

/// `v` finite and > 0 (`positive`) or >= 0.
Status check_number(const std::string& path, double v, bool positive, const std::string& fix) {
  if (std::isfinite(v) && (positive ? v > 0 : v >= 0)) return core::ok_status();
  return invalid(path, fmt::format("{} is not a finite number {}; {}", v, positive ? "> 0" : ">= 0",
                                   fix));
}

std::string quoted(const std::string& path, const std::string& key) {
  return fmt::format("{}['{}']", path, key);
}

// ---- cluster ----------------------------------------------------------------

Status check_cluster(const mesh::Cluster& c) {
  const std::string fix =
      "describe the real cluster (e.g. alpa_torch.Cluster.preset('a100-40gb', hosts, "
      "devices_per_host)) and re-plan";
  ALPA_RETURN_IF_ERROR(check_range("cluster.num_hosts", c.num_hosts, 1, kMaxHosts, fix));
  ALPA_RETURN_IF_ERROR(
      check_range("cluster.devices_per_host", c.devices_per_host, 1, kMaxDevicesPerHost, fix));
  if (c.num_hosts * c.devices_per_host > kMaxDevices) {
    return invalid("cluster", fmt::format(
        "{} hosts × {} devices = {} devices, more than the {} a plan may describe; {}",
        c.num_hosts, c.devices_per_host, c.num_hosts * c.devices_per_host, kMaxDevices, fix));
  }
  ALPA_RETURN_IF_ERROR(check_number("cluster.device.peak_flops", c.device.peak_flops, true, fix));
  ALPA_RETURN_IF_ERROR(
      check_number("cluster.device.peak_flops_half", c.device.peak_flops_half, false, fix));
  ALPA_RETURN_IF_ERROR(check_number("cluster.device.memory_bytes", c.device.memory_bytes, true, fix));
  ALPA_RETURN_IF_ERROR(
      check_number("cluster.device.memory_bandwidth", c.device.memory_bandwidth, true, fix));
  for (auto [name, link] : {std::pair{"intra_host", &c.intra_host},
                            std::pair{"inter_host", &c.inter_host}}) {
    ALPA_RETURN_IF_ERROR(
        check_number(fmt::format("cluster.{}.alpha", name), link->alpha, false, fix));
    ALPA_RETURN_IF_ERROR(
        check_number(fmt::format("cluster.{}.beta", name), link->beta, false, fix));
  }
  return core::ok_status();
}

// ---- plan-wide fields ---------------------------------------------------------

Status check_header(const Plan& p) {
  if (p.stages.empty()) {
    return invalid("stages", fmt::format("the plan has no stages; a plan has at least one; {}",
                                         kReplan));
  }
  ALPA_RETURN_IF_ERROR(check_range("num_micro_batches", p.num_micro_batches, 1, kMaxMicroBatches,
                                   "plan with num_micro_batches >= 1"));
  if (p.schedule != "gpipe" && p.schedule != "1f1b") {
    return invalid("schedule", fmt::format("'{}' is not a pipeline schedule; use 'gpipe' or '1f1b'",
                                           p.schedule));
  }
  if (p.cost_mode != "seconds" && p.cost_mode != "alpa") {
    return invalid("cost_mode", fmt::format("'{}' is not a cost mode; use 'seconds' or 'alpa'",
                                            p.cost_mode));
  }
  if (std::isnan(p.memory_budget) || p.memory_budget < 0) {
    return invalid("memory_budget", fmt::format(
        "{} is not a budget; write bytes per device (>= 0) or Infinity for none", p.memory_budget));
  }
  const int64_t stages = static_cast<int64_t>(p.stages.size());
  ALPA_RETURN_IF_ERROR(check_range("num_layers", p.num_layers, stages,
                                   std::numeric_limits<int64_t>::max(),
                                   fmt::format("each of the {} stage(s) runs at least one layer",
                                               stages)));
  const std::string& f = p.graph_fingerprint;
  if (f.size() > 16 || f.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return invalid("graph_fingerprint", fmt::format(
        "'{}' is not a graph fingerprint (up to 16 lowercase hex digits); {}", f, kReplan));
  }
  return core::ok_status();
}

// ---- where a stage runs -------------------------------------------------------

/// Stage `i`'s index and layers follow stage i-1's.
Status check_layers(const Plan& p, size_t i) {
  const StagePlan& s = p.stages[i];
  const std::string at = fmt::format("stages[{}]", i);
  if (s.index != static_cast<int64_t>(i)) {
    return invalid(at + ".index", fmt::format(
        "{} but this is stage {} of the list; stages are numbered 0, 1, ... in pipeline order",
        s.index, i));
  }
  const int64_t first = s.layers[0], last = s.layers[1];
  const int64_t previous_last = i == 0 ? -1 : p.stages[i - 1].layers[1];  // >= 0 by now
  if (first < 0 || last < first || first - 1 != previous_last) {
    return invalid(at + ".layers", fmt::format(
        "[{}, {}] is not a layer range starting at layer {}; stages run contiguous, "
        "non-empty ranges of layers in order (stage 0 from layer 0); {}", first, last,
        static_cast<uint64_t>(previous_last) + 1, kReplan));
  }
  if (i + 1 == p.stages.size() && last != p.num_layers - 1) {
    return invalid(at + ".layers", fmt::format(
        "the last stage ends at layer {} but the plan has num_layers = {}; the stages together "
        "run layers 0..{}; {}", last, p.num_layers, p.num_layers - 1, kReplan));
  }
  return core::ok_status();
}

/// The logical mesh and the number of device ids agree.
Status check_mesh_shape(const StagePlan& s, const std::string& at) {
  for (int a = 0; a < 2; ++a) {
    ALPA_RETURN_IF_ERROR(check_range(fmt::format("{}.mesh_shape[{}]", at, a), s.mesh_shape[a], 1,
                                     kMaxDevices, "logical mesh axes have at least one device"));
  }
  const int64_t n = s.mesh_shape[0] * s.mesh_shape[1];
  if (n != static_cast<int64_t>(s.device_ids.size())) {
    return invalid(at + ".mesh_shape", fmt::format(
        "({}, {}) holds {} devices but device_ids lists {}; the logical mesh axes multiply to "
        "the stage's device count; {}", s.mesh_shape[0], s.mesh_shape[1], n, s.device_ids.size(),
        kReplan));
  }
  return core::ok_status();
}

/// Device ids in range, distinct within and across stages (`owner`: device -> stage).
Status check_device_ids(const Plan& p, size_t i, std::map<int64_t, size_t>& owner) {
  const StagePlan& s = p.stages[i];
  const int64_t n = p.cluster.num_devices();
  for (size_t k = 0; k < s.device_ids.size(); ++k) {
    const int64_t d = s.device_ids[k];
    const std::string path = fmt::format("stages[{}].device_ids[{}]", i, k);
    if (d < 0 || d >= n) {
      return invalid(path, fmt::format(
          "device {} is not in the cluster: it has {} host(s) × {} = {} devices, ids 0..{}; {}", d,
          p.cluster.num_hosts, p.cluster.devices_per_host, n, n - 1, kReplan));
    }
    auto [it, fresh] = owner.emplace(d, i);
    if (!fresh) {
      return invalid(path, fmt::format(
          "device {} is listed twice ({}); every device belongs to at most one stage, once; {}", d,
          it->second == i ? "in this stage" : fmt::format("also in stage {}", it->second),
          kReplan));
    }
  }
  return core::ok_status();
}

/// The sub-mesh fits the cluster and holds exactly the stage's devices.
Status check_submesh(const Plan& p, size_t i) {
  const StagePlan& s = p.stages[i];
  const mesh::Cluster& c = p.cluster;
  const std::string path = fmt::format("stages[{}].submesh", i);
  const int64_t h = s.submesh[0], d = s.submesh[1];
  const int64_t count = static_cast<int64_t>(s.device_ids.size());
  if (h < 1 || h > c.num_hosts || d < 1 || d > c.num_devices() || h * d != count) {
    return invalid(path, fmt::format(
        "({}, {}) is not a sub-mesh of this stage's {} devices on {} host(s) × {}: hosts × "
        "devices per host must equal the device count and fit the cluster; {}",
        h, d, count, c.num_hosts, c.devices_per_host, kReplan));
  }
  // An intra-op plan's one stage records its mesh as (1, n), whatever the hosts.
  if (h == 1 && d > c.devices_per_host && p.stages.size() == 1) return core::ok_status();
  if (h > 1 ? d != c.devices_per_host : d > c.devices_per_host) {
    return invalid(path, fmt::format(
        "({}, {}) on hosts of {} devices: a sub-mesh is a slice of one host (1, k ≤ {}) or whole "
        "hosts (h, {}); {}", h, d, c.devices_per_host, c.devices_per_host, c.devices_per_host,
        kReplan));
  }
  std::map<int64_t, int64_t> per_host;
  for (int64_t id : s.device_ids) ++per_host[c.host_of(id)];
  const bool fits = static_cast<int64_t>(per_host.size()) == h &&
                    std::all_of(per_host.begin(), per_host.end(),
                                [&](const auto& e) { return e.second == d; });
  if (!fits) {
    return invalid(fmt::format("stages[{}].device_ids", i), fmt::format(
        "{} lie on {} host(s), but the sub-mesh ({}, {}) needs {} device(s) on each of {} "
        "host(s); {}", s.device_ids, per_host.size(), h, d, d, h, kReplan));
  }
  return core::ok_status();
}

// ---- sharding specs -------------------------------------------------------------

enum class Partial { kAllowed, kForbidden };

/// Mesh axes exist and are used once; partial sums only where allowed.
Status check_spec(const ShardingSpec& spec, const std::string& path, Partial partial,
                  const std::array<int64_t, 2>& mesh_shape) {
  const std::string text = spec.to_string();
  std::array<int, 2> used{0, 0};
  auto use = [&](int a, const std::string& where) -> Status {
    if (a != 0 && a != 1) {
      return invalid(path, fmt::format(
          "spec '{}' {} mesh axis {}, but the stage's logical mesh ({}, {}) has axes 0 and 1 "
          "only; write S0, S1 or S01 (DESIGN §4)", text, where, a, mesh_shape[0], mesh_shape[1]));
    }
    if (++used[static_cast<size_t>(a)] > 1) {
      return invalid(path, fmt::format(
          "spec '{}' uses mesh axis {} twice; each mesh axis splits at most one dim (or holds "
          "the partial sums) once", text, a));
    }
    return core::ok_status();
  };
  for (size_t d = 0; d < spec.dims.size(); ++d) {
    for (int a : spec.dims[d]) ALPA_RETURN_IF_ERROR(use(a, fmt::format("splits dim {} over", d)));
  }
  if (!spec.partial.empty() && partial == Partial::kForbidden) {
    return invalid(path, fmt::format(
        "spec '{}' holds partial sums, which only a node's values may; parameters, inputs and "
        "values sent between stages are whole: drop the P suffix", text));
  }
  for (int a : spec.partial) ALPA_RETURN_IF_ERROR(use(a, "sums partial values over"));
  if (!spec.blocks.empty() && spec.blocks.size() != spec.dims.size()) {
    return invalid(path, fmt::format("spec '{}' has block factors for {} of its {} dims", text,
                                     spec.blocks.size(), spec.dims.size()));
  }
  for (int64_t d = 0; d < spec.rank(); ++d) {
    const int64_t b = spec.block(d);
    if (b < 1 || b > kMaxDevices || (b > 1 && spec.dims[static_cast<size_t>(d)].empty())) {
      return invalid(path, fmt::format(
          "spec '{}' gives dim {} the block factor {}; a block factor is 1..{} and needs a split "
          "dim (e.g. S0x3)", text, d, b, kMaxDevices));
    }
  }
  return core::ok_status();
}

/// The spec describes a tensor of `meta`'s shape on `mesh`.
Status check_spec_shape(const ShardingSpec& spec, const ir::TensorMeta& meta,
                        const mesh::DeviceMesh& mesh, const std::string& path) {
  const Status s = spec.check(meta.shape, mesh);
  if (s.ok()) return s;
  return invalid(path, fmt::format("{} (the value is {}); {}", s.message(), meta.to_string(),
                                   kReplan));
}

// ---- what a stage records ------------------------------------------------------

/// Distinct names, specs of parameters and inputs whole.
Status check_named_specs(const NamedSpecs& specs, const std::string& path,
                         const std::array<int64_t, 2>& mesh_shape) {
  std::set<std::string> seen;
  for (const auto& [name, spec] : specs) {
    if (name.empty() || !seen.insert(name).second) {
      return invalid(quoted(path, name), fmt::format(
          "{}; each parameter or input appears once, under its non-empty name; {}",
          name.empty() ? "the name is empty" : "listed twice", kReplan));
    }
    ALPA_RETURN_IF_ERROR(check_spec(spec, quoted(path, name), Partial::kForbidden, mesh_shape));
  }
  return core::ok_status();
}

/// Node names distinct; every spec legal. Fills `nodes` (name -> record).
Status check_nodes(const StagePlan& s, const std::string& at,
                   std::map<std::string, const NodeSharding*>& nodes) {
  for (size_t k = 0; k < s.nodes.size(); ++k) {
    const NodeSharding& n = s.nodes[k];
    const std::string path = fmt::format("{}.nodes[{}]", at, k);
    if (n.node.empty() || !nodes.emplace(n.node, &n).second) {
      return invalid(path, fmt::format(
          "node '{}' {}; a stage records each of its nodes once, by name; {}", n.node,
          n.node.empty() ? "has no name" : "is recorded twice", kReplan));
    }
    for (size_t j = 0; j < n.inputs.size(); ++j) {
      ALPA_RETURN_IF_ERROR(check_spec(n.inputs[j], fmt::format("{} ('{}').inputs[{}]", path,
                                                               n.node, j),
                                      Partial::kAllowed, s.mesh_shape));
    }
    for (size_t j = 0; j < n.outputs.size(); ++j) {
      ALPA_RETURN_IF_ERROR(check_spec(n.outputs[j], fmt::format("{} ('{}').outputs[{}]", path,
                                                                n.node, j),
                                      Partial::kAllowed, s.mesh_shape));
    }
  }
  return core::ok_status();
}

/// Axes 0/1, each used once.
Status check_axes(const sharding::MeshAxes& axes, const std::string& path) {
  std::array<int, 2> used{0, 0};
  for (int a : axes) {
    if ((a != 0 && a != 1) || ++used[static_cast<size_t>(a)] > 1) {
      return invalid(path, fmt::format(
          "{} are not mesh axes: a collective runs over mesh axis 0, 1 or both, each once; {}",
          axes, kReplan));
    }
  }
  return core::ok_status();
}

Status check_collectives(const StagePlan& s, const std::string& at,
                         const std::map<std::string, const NodeSharding*>& nodes) {
  for (size_t k = 0; k < s.collectives.size(); ++k) {
    const CollectiveRecord& c = s.collectives[k];
    const std::string path = fmt::format("{}.collectives[{}]", at, k);
    auto it = nodes.find(c.node);
    if (it == nodes.end()) {
      return invalid(path + ".node", fmt::format(
          "'{}' is not a node of this stage; a collective is issued by one of the stage's "
          "nodes (its 'nodes' list); {}", c.node, kReplan));
    }
    const int64_t inputs = static_cast<int64_t>(it->second->inputs.size());
    if (c.input < -1 || c.input >= inputs) {
      return invalid(path + ".input", fmt::format(
          "{} is not an input of node '{}', which has {}; write an input index 0..{} or -1 (the "
          "node's outputs); {}", c.input, c.node, inputs, inputs - 1, kReplan));
    }
    ALPA_RETURN_IF_ERROR(check_axes(c.axes, path + ".axes"));
    ALPA_RETURN_IF_ERROR(check_number(path + ".bytes", c.bytes, false, kReplan));
  }
  return core::ok_status();
}

/// Elements of `meta` without overflow; error above kMaxTensorElements.
Status check_meta(const ir::TensorMeta& meta, const std::string& path) {
  int64_t n = 1;
  for (int64_t d : meta.shape) {
    if (d < 0 || (d > 0 && n > kMaxTensorElements / d)) {
      return invalid(path, fmt::format(
          "{} is not a tensor a plan can describe: dims are >= 0 with at most {} elements in "
          "all; {}", meta.to_string(), kMaxTensorElements, kReplan));
    }
    n *= d;
  }
  return core::ok_status();
}

/// Boundary values: named once, whole, of their shape on the stage's mesh.
Status check_values(const std::vector<StageValue>& values, const std::string& path,
                    const StagePlan& s, const mesh::DeviceMesh& mesh) {
  std::set<std::string> seen;
  for (size_t k = 0; k < values.size(); ++k) {
    const StageValue& v = values[k];
    const std::string at = fmt::format("{}[{}]", path, k);
    if (v.name.empty() || v.producer.empty() || v.index < 0 || !seen.insert(v.name).second) {
      return invalid(at, fmt::format(
          "value '{}' (producer '{}', output {}): a value sent between stages has a distinct "
          "non-empty name, a producing node and an output index >= 0; {}", v.name, v.producer,
          v.index, kReplan));
    }
    ALPA_RETURN_IF_ERROR(check_meta(v.meta, at + ".meta"));
    ALPA_RETURN_IF_ERROR(check_spec(v.spec, at + ".spec", Partial::kForbidden, s.mesh_shape));
    ALPA_RETURN_IF_ERROR(check_spec_shape(v.spec, v.meta, mesh, at + ".spec"));
  }
  return core::ok_status();
}

/// A received value is an input node of the stage with the value's spec.
Status check_received(const StagePlan& s, const std::string& at,
                      const std::map<std::string, const NodeSharding*>& nodes) {
  if (nodes.empty()) return core::ok_status();  // a plan that records no nodes
  for (size_t k = 0; k < s.inputs.size(); ++k) {
    const StageValue& v = s.inputs[k];
    auto it = nodes.find(v.name);
    ShardingSpec node_spec;
    if (it != nodes.end() && it->second->outputs.size() == 1) {
      node_spec = it->second->outputs[0];
      node_spec.partial.clear();
    }
    if (it == nodes.end() || it->second->outputs.size() != 1 || node_spec != v.spec) {
      return invalid(fmt::format("{}.inputs[{}]", at, k), fmt::format(
          "received value '{}' with spec '{}' {}; each received value is an input node of the "
          "stage with one output of that spec; {}", v.name, v.spec.to_string(),
          it == nodes.end() ? "is no node of the stage"
                            : fmt::format("but its node records {}",
                                          it->second->outputs.size() == 1
                                              ? "'" + node_spec.to_string() + "'"
                                              : fmt::format("{} outputs",
                                                            it->second->outputs.size())),
          kReplan));
    }
  }
  return core::ok_status();
}

Status check_numbers(const StagePlan& s, const std::string& at) {
  for (auto [name, v] : {std::pair{"predicted_time", s.predicted_time},
                         std::pair{"compute_time", s.compute_time},
                         std::pair{"communication_time", s.communication_time},
                         std::pair{"memory_bytes", s.memory_bytes},
                         std::pair{"parameter_memory_bytes", s.parameter_memory_bytes},
                         std::pair{"recompute_time", s.recompute_time},
                         std::pair{"peak_memory_bytes", s.peak_memory_bytes},
                         std::pair{"input_memory_bytes", s.input_memory_bytes}}) {
    ALPA_RETURN_IF_ERROR(check_number(fmt::format("{}.{}", at, name), v, false, kReplan));
  }
  return core::ok_status();
}

Status check_stage(const Plan& p, size_t i, std::map<int64_t, size_t>& owner) {
  const StagePlan& s = p.stages[i];
  const std::string at = fmt::format("stages[{}]", i);
  ALPA_RETURN_IF_ERROR(check_layers(p, i));
  ALPA_RETURN_IF_ERROR(check_mesh_shape(s, at));
  ALPA_RETURN_IF_ERROR(check_device_ids(p, i, owner));
  ALPA_RETURN_IF_ERROR(check_submesh(p, i));
  ALPA_ASSIGN_OR_RETURN(mesh::DeviceMesh mesh,
                        mesh::DeviceMesh::create(p.cluster, s.mesh_shape, s.device_ids));
  ALPA_RETURN_IF_ERROR(check_named_specs(s.param_specs, at + ".param_specs", s.mesh_shape));
  ALPA_RETURN_IF_ERROR(check_named_specs(s.input_specs, at + ".input_specs", s.mesh_shape));
  std::map<std::string, const NodeSharding*> nodes;
  ALPA_RETURN_IF_ERROR(check_nodes(s, at, nodes));
  ALPA_RETURN_IF_ERROR(check_collectives(s, at, nodes));
  ALPA_RETURN_IF_ERROR(check_values(s.inputs, at + ".inputs", s, mesh));
  ALPA_RETURN_IF_ERROR(check_values(s.outputs, at + ".outputs", s, mesh));
  ALPA_RETURN_IF_ERROR(check_received(s, at, nodes));
  return check_numbers(s, at);
}

// ---- between stages ----------------------------------------------------------------

std::string describe(const StageValue& v) {
  return fmt::format("'{}' (output {} of '{}', {})", v.name, v.index, v.producer,
                     v.meta.to_string());
}

/// Stage k receives, in order, exactly what stage k-1 sends (the executor
/// pairs them by position); stage 0 receives and the last stage sends nothing.
Status check_boundaries(const Plan& p) {
  const size_t n = p.stages.size();
  if (!p.stages[0].inputs.empty()) {
    return invalid("stages[0].inputs", fmt::format(
        "stage 0 receives {} value(s) but no stage comes before it; the model's inputs are "
        "stage inputs (input_specs), not received values; {}", p.stages[0].inputs.size(), kReplan));
  }
  if (!p.stages[n - 1].outputs.empty()) {
    return invalid(fmt::format("stages[{}].outputs", n - 1), fmt::format(
        "the last stage sends {} value(s) but no stage comes after it; {}",
        p.stages[n - 1].outputs.size(), kReplan));
  }
  for (size_t k = 1; k < n; ++k) {
    const auto& sent = p.stages[k - 1].outputs;
    const auto& got = p.stages[k].inputs;
    for (size_t j = 0; j < std::max(sent.size(), got.size()); ++j) {
      const bool same = j < sent.size() && j < got.size() && sent[j].name == got[j].name &&
                        sent[j].producer == got[j].producer && sent[j].index == got[j].index &&
                        sent[j].meta == got[j].meta;
      if (same) continue;
      return invalid(fmt::format("stages[{}].inputs[{}]", k, j), fmt::format(
          "stage {} receives {} where stage {} sends {}; a stage receives, in order, exactly the "
          "values the stage before it sends (same name, producer, index and shape); {}", k,
          j < got.size() ? describe(got[j]) : "nothing", k - 1,
          j < sent.size() ? describe(sent[j]) : "nothing", kReplan));
    }
  }
  return core::ok_status();
}

/// Graph output indices: distinct, and together 0..K-1 when any are listed.
Status check_graph_outputs(const Plan& p) {
  std::map<int64_t, size_t> owner;
  for (size_t i = 0; i < p.stages.size(); ++i) {
    const auto& outs = p.stages[i].graph_outputs;
    for (size_t k = 0; k < outs.size(); ++k) {
      auto [it, fresh] = owner.emplace(outs[k], i);
      if (outs[k] < 0 || !fresh) {
        return invalid(fmt::format("stages[{}].graph_outputs[{}]", i, k), fmt::format(
            "{} {}; each of the model's outputs is produced by one stage, listed once by its "
            "index >= 0; {}", outs[k], outs[k] < 0 ? "is negative" : "is listed twice", kReplan));
      }
    }
  }
  if (!owner.empty() && owner.rbegin()->first != static_cast<int64_t>(owner.size()) - 1) {
    int64_t missing = 0;
    while (owner.count(missing)) ++missing;
    return invalid("stages[].graph_outputs", fmt::format(
        "the stages list model outputs up to index {} but no stage produces output {}; "
        "together they produce each of the outputs 0..K-1 once; {}", owner.rbegin()->first,
        missing, kReplan));
  }
  return core::ok_status();
}

}  // namespace

core::Status validate_plan(const Plan& plan) {
  ALPA_RETURN_IF_ERROR(check_cluster(plan.cluster));
  ALPA_RETURN_IF_ERROR(check_header(plan));
  std::map<int64_t, size_t> owner;
  for (size_t i = 0; i < plan.stages.size(); ++i) ALPA_RETURN_IF_ERROR(check_stage(plan, i, owner));
  ALPA_RETURN_IF_ERROR(check_boundaries(plan));
  return check_graph_outputs(plan);
}

namespace {

// ---- against the graph ----------------------------------------------------------------

constexpr const char* kPlanThisGraph =
    "plan this graph (alpa_torch.plan or 'alpa-torch plan GRAPH.json'), or pass the graph the "
    "plan was made for";

/// The specs of one recorded node against graph node `n` (or received value `v`).
Status check_node_against(const NodeSharding& ns, const std::string& path,
                          const std::vector<ir::TensorMeta>& in_metas,
                          const std::vector<ir::TensorMeta>& out_metas,
                          const mesh::DeviceMesh& mesh) {
  if (ns.inputs.size() != in_metas.size() || ns.outputs.size() != out_metas.size()) {
    return invalid(path, fmt::format(
        "node '{}' records {} input and {} output spec(s) but the graph's node has {} input(s) "
        "and {} output(s); {}", ns.node, ns.inputs.size(), ns.outputs.size(), in_metas.size(),
        out_metas.size(), kPlanThisGraph));
  }
  for (size_t j = 0; j < in_metas.size(); ++j) {
    ALPA_RETURN_IF_ERROR(check_spec_shape(ns.inputs[j], in_metas[j], mesh,
                                          fmt::format("{}.inputs[{}]", path, j)));
  }
  for (size_t j = 0; j < out_metas.size(); ++j) {
    ALPA_RETURN_IF_ERROR(check_spec_shape(ns.outputs[j], out_metas[j], mesh,
                                          fmt::format("{}.outputs[{}]", path, j)));
  }
  return core::ok_status();
}

/// Targets of the graph's placeholders of `kind`.
std::set<std::string> targets(const ir::Graph& g, ir::NodeKind kind) {
  std::set<std::string> out;
  for (const ir::Node& n : g.nodes()) {
    if (n.kind == kind) out.insert(n.target);
  }
  return out;
}

/// Every value sent or received is the graph's output of its producer.
Status check_values_against(const StagePlan& s, const std::string& at, const ir::Graph& g) {
  for (const auto* values : {&s.inputs, &s.outputs}) {
    for (const StageValue& v : *values) {
      std::optional<ir::NodeId> id = g.find(v.producer);
      const ir::Node* n = id ? &g.node(*id) : nullptr;
      if (!n || v.index >= static_cast<int64_t>(n->outputs.size()) ||
          n->outputs[static_cast<size_t>(v.index)] != v.meta) {
        return invalid(fmt::format("{}.{}['{}']", at, values == &s.inputs ? "inputs" : "outputs",
                                   v.name), fmt::format(
            "value {} is not an output of graph '{}'{}; {}", describe(v), g.name(),
            n && v.index < static_cast<int64_t>(n->outputs.size())
                ? fmt::format(" (that output is {})",
                              n->outputs[static_cast<size_t>(v.index)].to_string())
                : "", kPlanThisGraph));
      }
    }
  }
  return core::ok_status();
}

Status check_stage_against(const Plan& p, size_t i, const ir::Graph& g,
                           const std::set<std::string>& params,
                           const std::set<std::string>& user_inputs) {
  const StagePlan& s = p.stages[i];
  const std::string at = fmt::format("stages[{}]", i);
  ALPA_ASSIGN_OR_RETURN(mesh::DeviceMesh mesh,
                        mesh::DeviceMesh::create(p.cluster, s.mesh_shape, s.device_ids));
  std::map<std::string, const StageValue*> received;
  for (const StageValue& v : s.inputs) received[v.name] = &v;
  for (const auto& [fqn, spec] : s.param_specs) {
    if (!params.count(fqn)) {
      return invalid(quoted(at + ".param_specs", fqn), fmt::format(
          "'{}' is not a parameter of graph '{}'; {}", fqn, g.name(), kPlanThisGraph));
    }
  }
  for (const auto& [name, spec] : s.input_specs) {
    if (!user_inputs.count(name) && !received.count(name)) {
      return invalid(quoted(at + ".input_specs", name), fmt::format(
          "'{}' is neither an input of graph '{}' nor a value the stage receives; {}", name,
          g.name(), kPlanThisGraph));
    }
  }
  for (size_t k = 0; k < s.nodes.size(); ++k) {
    const NodeSharding& ns = s.nodes[k];
    const std::string path = fmt::format("{}.nodes[{}]", at, k);
    if (auto v = received.find(ns.node); v != received.end()) {
      ALPA_RETURN_IF_ERROR(check_node_against(ns, path, {}, {v->second->meta}, mesh));
      continue;
    }
    std::optional<ir::NodeId> id = g.find(ns.node);
    if (!id) {
      return invalid(path, fmt::format("'{}' is no node of graph '{}'; {}", ns.node, g.name(),
                                       kPlanThisGraph));
    }
    const ir::Node& n = g.node(*id);
    std::vector<ir::TensorMeta> in_metas;
    for (ir::ValueRef r : n.inputs) in_metas.push_back(g.meta(r));
    ALPA_RETURN_IF_ERROR(check_node_against(ns, path, in_metas, n.outputs, mesh));
  }
  return check_values_against(s, at, g);
}

}  // namespace

core::Status validate_plan_for_graph(const Plan& plan, const ir::Graph& graph) {
  ALPA_RETURN_IF_ERROR(validate_plan(plan));
  const std::string mine = fmt::format("{:016x}", graph.fingerprint());
  if (!plan.graph_fingerprint.empty() && plan.graph_fingerprint != mine) {
    return invalid("graph_fingerprint", fmt::format(
        "the plan was made for a graph with fingerprint {} ('{}'), but graph '{}' has {}; {}",
        plan.graph_fingerprint, plan.graph_name, graph.name(), mine, kPlanThisGraph));
  }
  const std::set<std::string> params = targets(graph, ir::NodeKind::kParameter);
  const std::set<std::string> inputs = targets(graph, ir::NodeKind::kInput);
  for (size_t i = 0; i < plan.stages.size(); ++i) {
    ALPA_RETURN_IF_ERROR(check_stage_against(plan, i, graph, params, inputs));
  }
  // validate_plan made the listed indices 0..K-1; a pipeline lists them all.
  const int64_t outputs = static_cast<int64_t>(graph.outputs().size());
  int64_t listed = 0;
  for (const StagePlan& s : plan.stages) listed += static_cast<int64_t>(s.graph_outputs.size());
  if (listed > 0 && listed != outputs) {
    return invalid("stages[].graph_outputs", fmt::format(
        "the stages produce {} model output(s) but graph '{}' has {}; {}", listed, graph.name(),
        outputs, kPlanThisGraph));
  }
  return core::ok_status();
}

}  // namespace alpa::plan
