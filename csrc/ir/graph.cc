// This file implements Graph and Node accessors.
#include "ir/graph.h"

#include <fmt/format.h>

#include "core/check.h"
#include "core/hash.h"
#include "ir/json_format.h"

namespace alpa::ir {

const char* node_kind_name(NodeKind kind) {
  switch (kind) {
    case NodeKind::kInput: return "input";
    case NodeKind::kParameter: return "parameter";
    case NodeKind::kBuffer: return "buffer";
    case NodeKind::kConstant: return "constant";
    case NodeKind::kOp: return "op";
  }
  return "?";
}

core::StatusOr<NodeKind> parse_node_kind(std::string_view name) {
  for (NodeKind k : {NodeKind::kInput, NodeKind::kParameter, NodeKind::kBuffer,
                     NodeKind::kConstant, NodeKind::kOp}) {
    if (name == node_kind_name(k)) return k;
  }
  return core::parse_error(fmt::format(
      "unknown node kind '{}' (expected input, parameter, buffer, constant or op)",
      name));
}

const char* output_role_name(OutputRole role) {
  return role == OutputRole::kUserOutput ? "user_output" : "buffer_mutation";
}

const Attr* Node::attr(std::string_view key) const {
  for (const auto& [k, v] : attrs) {
    if (k == key) return &v;
  }
  return nullptr;
}

int64_t Node::attr_int(std::string_view key, int64_t fallback) const {
  const Attr* a = attr(key);
  if (a == nullptr) return fallback;
  if (const auto* v = std::get_if<int64_t>(a)) return *v;
  if (const auto* b = std::get_if<bool>(a)) return *b ? 1 : 0;
  return fallback;
}

std::optional<std::vector<int64_t>> Node::attr_ints(std::string_view key) const {
  const Attr* a = attr(key);
  if (a == nullptr) return std::nullopt;
  if (const auto* v = std::get_if<std::vector<int64_t>>(a)) return *v;
  if (const auto* v = std::get_if<int64_t>(a)) return std::vector<int64_t>{*v};
  return std::nullopt;
}

std::optional<ValueRef> Node::input_of(std::string_view key) const {
  const Attr* a = attr(key);
  if (a == nullptr) return std::nullopt;
  const auto* r = std::get_if<InputRef>(a);
  if (r == nullptr || r->position < 0 ||
      r->position >= static_cast<int64_t>(inputs.size())) {
    return std::nullopt;
  }
  return inputs[static_cast<size_t>(r->position)];
}

bool operator==(const Node& a, const Node& b) {
  return a.id == b.id && a.name == b.name && a.kind == b.kind && a.op == b.op &&
         a.target == b.target && a.inputs == b.inputs && a.attrs == b.attrs &&
         a.outputs == b.outputs && a.flops == b.flops && a.module == b.module &&
         a.requires_grad == b.requires_grad;
}

NodeId Graph::add_node(Node node) {
  node.id = NodeId(num_nodes());
  nodes_.push_back(std::move(node));
  return nodes_.back().id;
}

const TensorMeta& Graph::meta(ValueRef v) const {
  ALPA_CHECK(v.node.valid() && v.node.value < num_nodes(),
             "value %{} out of range", v.node.value);
  const Node& n = nodes_[v.node.index()];
  ALPA_CHECK(v.index >= 0 && v.index < static_cast<int64_t>(n.outputs.size()),
             "node {} has no output #{}", n.name, v.index);
  return n.outputs[static_cast<size_t>(v.index)];
}

std::vector<std::vector<NodeId>> Graph::users() const {
  std::vector<std::vector<NodeId>> result(nodes_.size());
  for (const Node& n : nodes_) {
    for (const ValueRef& in : n.inputs) {
      auto& u = result.at(in.node.index());
      if (u.empty() || u.back() != n.id) u.push_back(n.id);
    }
  }
  return result;
}

std::optional<NodeId> Graph::find(std::string_view name) const {
  for (const Node& n : nodes_) {
    if (n.name == name) return n.id;
  }
  return std::nullopt;
}

double Graph::total_flops() const {
  double total = 0;
  for (const Node& n : nodes_) total += n.flops;
  return total;
}

int64_t Graph::parameter_bytes() const {
  int64_t total = 0;
  for (const Node& n : nodes_) {
    if (n.kind == NodeKind::kParameter) {
      for (const auto& m : n.outputs) total += m.bytes();
    }
  }
  return total;
}

uint64_t Graph::fingerprint() const {
  return core::hash_string(core::dump_json(graph_to_json(*this)));
}

}  // namespace alpa::ir
