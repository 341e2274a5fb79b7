// This file implements GraphBuilder: how C++ users (and tests) write a graph
// by hand. Output shapes are inferred for the common ops; errors are
// collected and returned by build(), so a chain of calls needs no checks.
//
//   GraphBuilder b("mlp");
//   ValueRef x = b.input("x", {{8, 1024}, DType::kFloat32});
//   ValueRef w = b.parameter("fc1.weight", {{4096, 1024}, DType::kFloat32});
//   ValueRef y = b.op("aten.linear.default", {x, w}, {{"bias", Attr()}});
//   b.output(y);
//   StatusOr<Graph> g = b.build();   // verified, FLOPs annotated
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "ir/graph.h"

namespace alpa::ir {

using Attrs = std::vector<std::pair<std::string, Attr>>;

class GraphBuilder {
 public:
  explicit GraphBuilder(std::string name) : graph_(std::move(name)) {}

  ValueRef input(const std::string& name, TensorMeta meta,
                 bool requires_grad = false);
  /// A trainable parameter; `fqn` as in module.named_parameters().
  ValueRef parameter(const std::string& fqn, TensorMeta meta,
                     bool requires_grad = true);
  ValueRef buffer(const std::string& fqn, TensorMeta meta);

  /// An op whose single output meta is inferred (see shape_inference.h).
  ValueRef op(const std::string& op, std::vector<ValueRef> inputs,
              Attrs attrs = {}, const std::string& module = "");
  /// An op with explicitly given output metas (any number of outputs).
  std::vector<ValueRef> op_with_meta(const std::string& op,
                                     std::vector<ValueRef> inputs, Attrs attrs,
                                     std::vector<TensorMeta> outputs,
                                     const std::string& module = "");

  // Shorthands for common ops.
  ValueRef linear(ValueRef x, ValueRef weight, const std::string& module = "");
  ValueRef linear(ValueRef x, ValueRef weight, ValueRef bias,
                  const std::string& module = "");
  ValueRef unary(const std::string& op, ValueRef x, const std::string& module = "");
  ValueRef binary(const std::string& op, ValueRef a, ValueRef b,
                  const std::string& module = "");

  void output(ValueRef value);
  void mutate_buffer(const std::string& fqn, ValueRef value);

  /// Annotates FLOPs and verifies; the first error of any earlier call.
  core::StatusOr<Graph> build();

 private:
  std::string unique_name(std::string base);
  ValueRef placeholder(NodeKind kind, const std::string& target,
                       TensorMeta meta, bool requires_grad);

  Graph graph_;
  core::Status first_error_;
  std::vector<std::string> used_names_;
};

}  // namespace alpa::ir
