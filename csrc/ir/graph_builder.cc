// This file implements GraphBuilder.
#include "ir/graph_builder.h"

#include <algorithm>

#include <fmt/format.h>

#include "ir/flops.h"
#include "ir/op_name.h"
#include "ir/shape_inference.h"
#include "ir/verifier.h"

namespace alpa::ir {

std::string GraphBuilder::unique_name(std::string base) {
  for (char& c : base) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.';
    if (!ok) c = '_';
  }
  std::string name = base;
  for (int i = 1; std::find(used_names_.begin(), used_names_.end(), name) !=
                  used_names_.end();
       ++i) {
    name = fmt::format("{}_{}", base, i);
  }
  used_names_.push_back(name);
  return name;
}

ValueRef GraphBuilder::placeholder(NodeKind kind, const std::string& target,
                                   TensorMeta meta, bool requires_grad) {
  Node n;
  n.kind = kind;
  n.target = target;
  n.name = unique_name(target);
  n.outputs = {std::move(meta)};
  n.requires_grad = requires_grad;
  return ValueRef{graph_.add_node(std::move(n)), 0};
}

ValueRef GraphBuilder::input(const std::string& name, TensorMeta meta,
                             bool requires_grad) {
  return placeholder(NodeKind::kInput, name, std::move(meta), requires_grad);
}

ValueRef GraphBuilder::parameter(const std::string& fqn, TensorMeta meta,
                                 bool requires_grad) {
  return placeholder(NodeKind::kParameter, fqn, std::move(meta), requires_grad);
}

ValueRef GraphBuilder::buffer(const std::string& fqn, TensorMeta meta) {
  return placeholder(NodeKind::kBuffer, fqn, std::move(meta), false);
}

std::vector<ValueRef> GraphBuilder::op_with_meta(const std::string& op,
                                                 std::vector<ValueRef> inputs,
                                                 Attrs attrs,
                                                 std::vector<TensorMeta> outputs,
                                                 const std::string& module) {
  Node n;
  n.kind = NodeKind::kOp;
  n.op = op;
  n.name = unique_name(std::string(op_base_name(op)));
  n.inputs = std::move(inputs);
  n.attrs = std::move(attrs);
  n.outputs = std::move(outputs);
  n.module = module;
  NodeId id = graph_.add_node(std::move(n));
  std::vector<ValueRef> refs;
  for (size_t i = 0; i < graph_.node(id).outputs.size(); ++i) {
    refs.push_back(ValueRef{id, static_cast<int64_t>(i)});
  }
  return refs;
}

ValueRef GraphBuilder::op(const std::string& op, std::vector<ValueRef> inputs,
                          Attrs attrs, const std::string& module) {
  Node probe;
  probe.kind = NodeKind::kOp;
  probe.op = op;
  probe.name = std::string(op_base_name(op));
  probe.inputs = inputs;
  probe.attrs = attrs;
  std::vector<TensorMeta> outputs;
  bool inputs_valid = std::all_of(inputs.begin(), inputs.end(), [&](ValueRef v) {
    return v.node.valid() && v.node.value < graph_.num_nodes() && v.index >= 0 &&
           v.index < static_cast<int64_t>(graph_.node(v.node).outputs.size());
  });
  if (!inputs_valid) {
    if (first_error_.ok()) {
      first_error_ = core::invalid_argument(fmt::format(
          "GraphBuilder::op('{}'): an input value does not exist in this graph", op));
    }
  } else {
    auto inferred = infer_output_meta(graph_, probe);
    if (!inferred.ok()) {
      if (first_error_.ok()) first_error_ = inferred.status();
    } else if (!inferred->has_value()) {
      if (first_error_.ok()) {
        first_error_ = core::not_implemented(fmt::format(
            "GraphBuilder cannot infer the output shape of '{}'; call "
            "op_with_meta() with the output TensorMeta", op));
      }
    } else {
      outputs = **inferred;
    }
  }
  if (outputs.empty()) outputs.push_back(TensorMeta{});  // placeholder on error
  return op_with_meta(op, std::move(inputs), std::move(attrs), std::move(outputs), module)[0];
}

ValueRef GraphBuilder::linear(ValueRef x, ValueRef weight, const std::string& module) {
  return op("aten.linear.default", {x, weight},
            {{"input", InputRef{0}}, {"weight", InputRef{1}}, {"bias", Attr()}}, module);
}

ValueRef GraphBuilder::linear(ValueRef x, ValueRef weight, ValueRef bias,
                              const std::string& module) {
  return op("aten.linear.default", {x, weight, bias},
            {{"input", InputRef{0}}, {"weight", InputRef{1}}, {"bias", InputRef{2}}},
            module);
}

ValueRef GraphBuilder::unary(const std::string& op_name, ValueRef x,
                             const std::string& module) {
  return op(fmt::format("aten.{}.default", op_name), {x}, {{"self", InputRef{0}}}, module);
}

ValueRef GraphBuilder::binary(const std::string& op_name, ValueRef a, ValueRef b,
                              const std::string& module) {
  return op(fmt::format("aten.{}.Tensor", op_name), {a, b},
            {{"self", InputRef{0}}, {"other", InputRef{1}}}, module);
}

void GraphBuilder::output(ValueRef value) {
  graph_.add_output(GraphOutput{value, OutputRole::kUserOutput, ""});
}

void GraphBuilder::mutate_buffer(const std::string& fqn, ValueRef value) {
  graph_.add_output(GraphOutput{value, OutputRole::kBufferMutation, fqn});
}

core::StatusOr<Graph> GraphBuilder::build() {
  ALPA_RETURN_IF_ERROR(first_error_);
  ALPA_RETURN_IF_ERROR(verify_graph(graph_));
  ALPA_RETURN_IF_ERROR(annotate_flops(graph_));
  return graph_;
}

}  // namespace alpa::ir
