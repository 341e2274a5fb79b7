// This file implements verify_graph().
#include "ir/verifier.h"

#include <cmath>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "ir/op_name.h"
#include "ir/op_schema.h"
#include "ir/shape_inference.h"

namespace alpa::ir {
namespace {

using core::Status;

bool valid_identifier(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

// Op names are qualified, `namespace.op[.overload]`: identifier segments
// joined by '.', at least two of them, so that no op reads as a placeholder
// kind (`parameter`, `input`...) in the text form.
bool valid_op_name(const std::string& s) {
  if (!valid_identifier(s) || s.front() == '.' || s.back() == '.') return false;
  return s.find('.') != std::string::npos && s.find("..") == std::string::npos;
}

// Finds a cycle through node `start` following input edges, if any, and
// renders it "a -> b -> a"; empty when `start` is on no cycle.
std::string find_cycle(const Graph& g, NodeId start) {
  int64_t n = g.num_nodes();
  std::vector<int> state(static_cast<size_t>(n), 0);  // 0 new, 1 on stack, 2 done
  std::vector<NodeId> stack;
  std::string result;
  auto dfs = [&](auto&& self, NodeId id) -> bool {
    state[id.index()] = 1;
    stack.push_back(id);
    for (const ValueRef& in : g.node(id).inputs) {
      if (!in.node.valid() || in.node.value >= n) continue;
      if (in.node == start) {
        for (NodeId s : stack) result += g.node(s).name + " <- ";
        result += g.node(start).name;
        return true;
      }
      if (state[in.node.index()] == 0 && self(self, in.node)) return true;
    }
    stack.pop_back();
    state[id.index()] = 2;
    return false;
  };
  dfs(dfs, start);
  return result;
}

Status check_value(const Graph& g, const Node& user, ValueRef v, size_t pos) {
  std::string where = fmt::format("node '{}' (id {}) input #{}", user.name,
                                  user.id.value, pos);
  if (!v.node.valid() || v.node.value >= g.num_nodes()) {
    return core::invalid_argument(fmt::format(
        "{} refers to node %{}, which does not exist (the graph has {} nodes)",
        where, v.node.value, g.num_nodes()));
  }
  if (v.node.value >= user.id.value) {
    std::string cycle = find_cycle(g, user.id);
    if (!cycle.empty()) {
      return core::invalid_argument(fmt::format(
          "{}: the graph has a cycle ({}); a dataflow graph must be acyclic — "
          "re-capture the model or fix the edge", where, cycle));
    }
    return core::invalid_argument(fmt::format(
        "{} uses '{}' (id {}) before it is defined: nodes must be in "
        "topological order (producers before users)",
        where, g.node(v.node).name, v.node.value));
  }
  const Node& producer = g.node(v.node);
  if (v.index < 0 || v.index >= static_cast<int64_t>(producer.outputs.size())) {
    return core::invalid_argument(fmt::format(
        "{} reads output #{} of '{}', which has {} output(s)", where, v.index,
        producer.name, producer.outputs.size()));
  }
  return core::ok_status();
}

Status check_attrs(const Node& n) {
  auto in_range = [&](int64_t p) {
    return p == -1 || (p >= 0 && p < static_cast<int64_t>(n.inputs.size()));
  };
  for (const auto& [key, value] : n.attrs) {
    bool ok = true;
    if (const auto* r = std::get_if<InputRef>(&value)) ok = in_range(r->position) && r->position >= 0;
    if (const auto* r = std::get_if<InputRefs>(&value)) {
      for (int64_t p : r->positions) ok = ok && in_range(p);
    }
    if (!ok) {
      return core::invalid_argument(fmt::format(
          "node '{}': attribute '{}' = {} refers past its {} inputs", n.name,
          key, attr_to_string(value), n.inputs.size()));
    }
  }
  return core::ok_status();
}

// Bytes per tensor and ranks the planner handles: sums of tensor sizes stay
// far from int64 overflow, and every op's dims get distinct letters.
constexpr int64_t kMaxTensorBytes = int64_t{1} << 50;  // 1 PiB
constexpr int64_t kMaxGraphBytes = int64_t{1} << 60;
constexpr int64_t kMaxRank = 32;

Status check_meta(const Node& n, size_t i) {
  const TensorMeta& m = n.outputs[i];
  if (m.rank() > kMaxRank) {
    return core::invalid_argument(fmt::format(
        "node '{}' output #{} has {} dims; alpa_torch plans tensors of at most {} dims",
        n.name, i, m.rank(), kMaxRank));
  }
  // Nonzero dims only: an empty tensor's other dims still enter products
  // (shards, FLOPs) that must not overflow.
  int64_t bytes = dtype_size(m.dtype);
  for (int64_t d : m.shape) {
    if (d < 0) {
      return core::invalid_argument(fmt::format(
          "node '{}' has a negative dim in {}", n.name, m.to_string()));
    }
    if (d > 0) bytes = bytes > kMaxTensorBytes / d ? kMaxTensorBytes + 1 : bytes * d;
  }
  if (bytes > kMaxTensorBytes) {
    return core::invalid_argument(fmt::format(
        "node '{}' output #{} is {}: its dims multiply to more than 2^50 bytes (1 PiB); no "
        "device holds it — check the shape", n.name, i, m.to_string()));
  }
  return core::ok_status();
}

// Placeholders are one tensor each, read from outside the graph.
Status check_placeholder(const Node& n, std::set<std::string>& targets) {
  if (!n.inputs.empty()) {
    return core::invalid_argument(fmt::format(
        "{} node '{}' has inputs; placeholders take none", node_kind_name(n.kind), n.name));
  }
  if (n.outputs.size() != 1) {
    return core::invalid_argument(fmt::format(
        "{} node '{}' has {} outputs; a placeholder (input, parameter, buffer or constant) "
        "is exactly one tensor", node_kind_name(n.kind), n.name, n.outputs.size()));
  }
  if (n.kind == NodeKind::kParameter || n.kind == NodeKind::kBuffer) {
    if (n.target.empty() || !targets.insert(n.target).second) {
      return core::invalid_argument(fmt::format(
          "{} node '{}' has an empty or duplicate FQN '{}'",
          node_kind_name(n.kind), n.name, n.target));
    }
  }
  return core::ok_status();
}

Status check_node(const Graph& g, const Node& n, std::set<std::string>& names,
                  std::set<std::string>& targets) {
  if (!valid_identifier(n.name)) {
    return core::invalid_argument(fmt::format(
        "node {} has name '{}': names must be non-empty and use only "
        "letters, digits, '_' and '.'", n.id.value, n.name));
  }
  if (!names.insert(n.name).second) {
    return core::invalid_argument(fmt::format(
        "node name '{}' is used twice (node ids must map to unique names)", n.name));
  }
  if (n.outputs.empty()) {
    return core::invalid_argument(fmt::format(
        "node '{}' has no outputs: every node produces at least one tensor", n.name));
  }
  for (size_t i = 0; i < n.outputs.size(); ++i) ALPA_RETURN_IF_ERROR(check_meta(n, i));
  if (!std::isfinite(n.flops) || n.flops < 0) {
    return core::invalid_argument(fmt::format(
        "node '{}' has flops {}: FLOPs are a finite number >= 0; re-capture the model "
        "or correct the field", n.name, n.flops));
  }
  if (n.is_placeholder()) return check_placeholder(n, targets);
  if (!valid_op_name(n.op)) {
    return core::invalid_argument(fmt::format(
        "op node '{}' has op name '{}': op names are 'namespace.op.overload' (e.g. "
        "aten.linear.default) in letters, digits, '_' and '.'", n.name, n.op));
  }
  for (size_t i = 0; i < n.inputs.size(); ++i) {
    ALPA_RETURN_IF_ERROR(check_value(g, n, n.inputs[i], i));
  }
  ALPA_RETURN_IF_ERROR(check_op_schema(g, n));
  ALPA_RETURN_IF_ERROR(check_attrs(n));
  ALPA_ASSIGN_OR_RETURN(auto inferred, infer_output_meta(g, n));
  if (inferred && inferred->size() != n.outputs.size()) {
    return core::invalid_argument(fmt::format(
        "node '{}' ({}) has {} outputs, but {} produces {}; re-capture the model or fix "
        "the node's outputs", n.name, n.op, n.outputs.size(), op_base_name(n.op),
        inferred->size()));
  }
  if (inferred) {
    for (size_t i = 0; i < n.outputs.size(); ++i) {
      if ((*inferred)[i].shape != n.outputs[i].shape) {
        return core::invalid_argument(fmt::format(
            "shape mismatch at node '{}' ({}): output #{} is recorded as {} but "
            "its inputs give {}", n.name, n.op, i, n.outputs[i].to_string(),
            (*inferred)[i].to_string()));
      }
    }
  }
  return core::ok_status();
}

}  // namespace

Status verify_graph(const Graph& g) {
  std::set<std::string> names, targets;
  int64_t total_bytes = 0;
  for (int64_t i = 0; i < g.num_nodes(); ++i) {
    const Node& n = g.nodes()[static_cast<size_t>(i)];
    if (n.id.value != i) {
      return core::invalid_argument(fmt::format(
          "node '{}' has id {} at position {}; ids must equal positions",
          n.name, n.id.value, i));
    }
    ALPA_RETURN_IF_ERROR(check_node(g, n, names, targets));
    for (const TensorMeta& m : n.outputs) total_bytes += m.bytes();  // each < 2^50
    if (total_bytes > kMaxGraphBytes) {
      return core::invalid_argument(fmt::format(
          "the graph's tensors add up to more than 2^60 bytes by node '{}'; check the shapes",
          n.name));
    }
  }
  if (g.outputs().empty()) {
    return core::invalid_argument("the graph has no outputs; a forward pass must return a tensor");
  }
  for (size_t i = 0; i < g.outputs().size(); ++i) {
    const GraphOutput& o = g.outputs()[i];
    ValueRef v = o.value;
    if (!v.node.valid() || v.node.value >= g.num_nodes() || v.index < 0 ||
        v.index >= static_cast<int64_t>(g.node(v.node).outputs.size())) {
      return core::invalid_argument(fmt::format(
          "graph output #{} refers to %{}#{}, which does not exist", i,
          v.node.value, v.index));
    }
    if (o.role == OutputRole::kBufferMutation && o.target.empty()) {
      return core::invalid_argument(fmt::format(
          "graph output #{} mutates a buffer but names none", i));
    }
  }
  return core::ok_status();
}

}  // namespace alpa::ir
