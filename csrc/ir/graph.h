// This file implements the planner's graph IR: an ATen-level dataflow graph
// in topological order. Placeholders (inputs, parameters, buffers, constants)
// come first by convention but need not; every node's inputs are values
// produced by earlier nodes. A value is (node, output index).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/ids.h"
#include "ir/attribute.h"
#include "ir/tensor_meta.h"

namespace alpa::ir {

struct NodeTag {};
using NodeId = core::TypedId<NodeTag>;

/// One tensor value: output `index` of node `node`.
struct ValueRef {
  NodeId node;
  int64_t index = 0;
  friend bool operator==(ValueRef a, ValueRef b) {
    return a.node == b.node && a.index == b.index;
  }
  friend bool operator!=(ValueRef a, ValueRef b) { return !(a == b); }
};

enum class NodeKind {
  kInput,      // user input (an example argument)
  kParameter,  // module.named_parameters() entry; `target` is its FQN
  kBuffer,     // module.named_buffers() entry; `target` is its FQN
  kConstant,   // a tensor constant lifted out of the module
  kOp,         // an ATen op; `op` is its qualified name
};
const char* node_kind_name(NodeKind kind);
core::StatusOr<NodeKind> parse_node_kind(std::string_view name);

struct Node {
  NodeId id;
  std::string name;                // unique identifier ([A-Za-z0-9_.]+)
  NodeKind kind = NodeKind::kOp;
  std::string op;                  // kOp: "aten.mm.default"
  std::string target;              // placeholders: FQN or user input name
  std::vector<ValueRef> inputs;    // tensor operands in argument order
  std::vector<std::pair<std::string, Attr>> attrs;  // schema args by name
  std::vector<TensorMeta> outputs;
  double flops = 0;                // forward FLOPs of this node
  std::string module;              // FQN of the innermost nn.Module, "" = root
  bool requires_grad = false;      // parameters and inputs only

  bool is_placeholder() const { return kind != NodeKind::kOp; }
  /// Attribute by name; nullptr when absent.
  const Attr* attr(std::string_view key) const;
  /// Integer attribute or `fallback` when absent / not an int.
  int64_t attr_int(std::string_view key, int64_t fallback) const;
  /// Integer-list attribute (an int is promoted to a 1-element list).
  std::optional<std::vector<int64_t>> attr_ints(std::string_view key) const;
  /// The input value bound to the tensor argument `key` (InputRef attr).
  std::optional<ValueRef> input_of(std::string_view key) const;

  friend bool operator==(const Node& a, const Node& b);
};

enum class OutputRole {
  kUserOutput,      // returned by forward()
  kBufferMutation,  // new value of buffer `target` (BatchNorm running stats)
};
const char* output_role_name(OutputRole role);

struct GraphOutput {
  ValueRef value;
  OutputRole role = OutputRole::kUserOutput;
  std::string target;  // buffer FQN for kBufferMutation
  friend bool operator==(const GraphOutput& a, const GraphOutput& b) {
    return a.value == b.value && a.role == b.role && a.target == b.target;
  }
};

class Graph {
 public:
  static constexpr int64_t kFormatVersion = 1;

  Graph() = default;
  explicit Graph(std::string name) : name_(std::move(name)) {}

  const std::string& name() const { return name_; }
  void set_name(std::string name) { name_ = std::move(name); }
  const std::vector<Node>& nodes() const { return nodes_; }
  std::vector<Node>& mutable_nodes() { return nodes_; }
  const Node& node(NodeId id) const { return nodes_.at(id.index()); }
  Node& mutable_node(NodeId id) { return nodes_.at(id.index()); }
  int64_t num_nodes() const { return static_cast<int64_t>(nodes_.size()); }
  const std::vector<GraphOutput>& outputs() const { return outputs_; }
  std::vector<GraphOutput>& mutable_outputs() { return outputs_; }

  /// Appends a node; its id becomes its position.
  NodeId add_node(Node node);
  void add_output(GraphOutput output) { outputs_.push_back(std::move(output)); }

  /// Meta of a value; throws InternalError if the reference is invalid.
  const TensorMeta& meta(ValueRef v) const;
  /// For each node, the nodes that read any of its outputs (ascending ids).
  std::vector<std::vector<NodeId>> users() const;
  /// Node with this name, if any.
  std::optional<NodeId> find(std::string_view name) const;

  /// Sum of Node::flops.
  double total_flops() const;
  /// Bytes of all parameters.
  int64_t parameter_bytes() const;
  /// 64-bit hash of the canonical JSON form (same on every platform).
  uint64_t fingerprint() const;

  friend bool operator==(const Graph& a, const Graph& b) {
    return a.name_ == b.name_ && a.nodes_ == b.nodes_ &&
           a.outputs_ == b.outputs_;
  }
  friend bool operator!=(const Graph& a, const Graph& b) { return !(a == b); }

 private:
  std::string name_;
  std::vector<Node> nodes_;
  std::vector<GraphOutput> outputs_;
};

}  // namespace alpa::ir
