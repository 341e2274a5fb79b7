// This file implements the helpers of the TorchScript importer
// (torchscript_import.cc): which ops it records, type tests on schema
// arguments, meta tensors (the importer computes shapes only), dtypes, and
// the text of its errors. Internal to the runtime library.
#pragma once

#include <ATen/core/ivalue.h>
#include <torch/csrc/jit/ir/ir.h>

#include <ATen/core/stack.h>

#include <exception>
#include <functional>
#include <string>
#include <vector>

#include "core/status.h"
#include "ir/graph.h"
#include "ir/tensor_meta.h"

namespace alpa::runtime::ts_support {

/// Ops recorded as graph nodes (base names, sorted): those the planner has
/// sharding rules for.
const std::vector<std::string>& supported_ops();
/// Ops that read only a tensor's metadata (its shape), never its data.
bool is_metadata_op(const std::string& base);
/// "relu_" -> "relu" (in-place ops are recorded as their functional op);
/// dunder names ("__and__") are kept.
std::string functional_name(const std::string& base);
/// Tensor, Tensor?, Tensor[] and Tensor?[] (not generic lists like t[]).
bool is_tensor_type(const c10::TypePtr& type);
/// ScalarType and ScalarType? (a dtype argument).
bool is_scalar_type_arg(const c10::TypePtr& type);
/// Device and Device? arguments (factory ops, aten::to).
bool is_device_type(const c10::TypePtr& type);
/// Ops that turn literal data (bounded by the program's text) into a tensor:
/// they keep their device, so the importer can read such constants.
bool is_data_literal(const torch::jit::Node* node);
/// Whether `value` is, or lists, a meta tensor.
bool holds_meta(const c10::IValue& value);
/// A fresh meta tensor with `t`'s sizes, strides and dtype (no data).
at::Tensor meta_like(const at::Tensor& t);
/// Appended to the error of an op that failed on meta tensors.
extern const char* const kMetaHint;

core::StatusOr<ir::DType> to_dtype(at::ScalarType type);
core::StatusOr<at::ScalarType> to_scalar_type(ir::DType dtype);
core::StatusOr<ir::TensorMeta> meta_of(const at::Tensor& t);
/// Every tensor in `value` (nested tuples, lists, dict values), in order.
void flatten_tensors(const c10::IValue& value, std::vector<at::Tensor>& out);
/// An exception's message; a c10::Error's without its C++ backtrace.
std::string message_of(const std::exception& err);
std::string join_path(const std::string& parent, const std::string& name);
/// "in module 'fc1', at model.py:12".
std::string where(const torch::jit::Node* node, const std::string& module);
std::string op_context(const torch::jit::Node* node, const std::string& module);
/// "aten.linear.default": the op name the planner's graph uses.
std::string op_name(const torch::jit::Node* node, const c10::FunctionSchema& schema,
                    const std::string& base);

/// The value of a graph node's attribute for argument `value` of `type`;
/// tensors become inputs of `node` through `ref_of`.
using RefOf = std::function<core::StatusOr<ir::ValueRef>(const at::Tensor&)>;
core::StatusOr<ir::Attr> attr_of(const c10::IValue& value, const c10::TypePtr& type,
                                 ir::Node& node, const RefOf& ref_of);

/// Up to this many bytes of inputs (or of a factory op's result) the
/// importer runs an op on real CPU tensors when shapes alone cannot tell,
/// and up to kRealBytesPerImport in all; it runs at most kMaxNodesRun nodes.
inline constexpr int64_t kMaterializeLimitBytes = int64_t{256} << 20;
inline constexpr int64_t kRealBytesPerImport = int64_t{1} << 30;
inline constexpr int64_t kMaxNodesRun = 1000000;
/// Bytes a factory op (no tensor argument) would make, from its `size`
/// argument or its int arguments (8 bytes an element; 0 when none).
int64_t factory_bytes(const c10::FunctionSchema& schema, const std::vector<c10::IValue>& inputs);

/// Runs `node` on `inputs` for its output shapes: on meta tensors; for an op
/// LibTorch has no meta kernel for (`recordable`: its data does not matter),
/// by the planner's shape inference (op `op`), else on CPU zeros when the
/// inputs are small (they count against `real_bytes_left`). The error says
/// why none worked.
core::StatusOr<torch::jit::Stack> run_on_shapes(const torch::jit::Node* node,
                                                const c10::FunctionSchema* schema,
                                                const std::string& op,
                                                const std::vector<c10::IValue>& inputs,
                                                bool recordable, int64_t& real_bytes_left);

/// The NotImplemented error of an op the importer does not record.
core::Status unsupported(const torch::jit::Node* node, const std::string& module,
                         bool reads_data);

}  // namespace alpa::runtime::ts_support
