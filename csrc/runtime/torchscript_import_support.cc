// This file implements the TorchScript importer's helpers (see
// torchscript_import_support.h) and example_inputs_from_specs.
#include "runtime/torchscript_import_support.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <sstream>

#include "ir/dtype.h"
#include "ir/shape_inference.h"
#include "runtime/torchscript_import.h"

namespace alpa::runtime {
namespace ts_support {

using c10::IValue;
using torch::jit::Node;
/// Ops recorded as graph nodes: those the planner has sharding rules for.
const std::vector<std::string>& supported_ops() {
  static const std::vector<std::string> ops = [] {
    std::vector<std::string> v = {
        // matmul, conv, attention
        "addmm", "baddbmm", "bmm", "einsum", "linear", "matmul", "mm", "conv1d", "conv2d",
        "convolution", "scaled_dot_product_attention", "adaptive_avg_pool1d",
        "adaptive_avg_pool2d", "avg_pool2d", "max_pool2d",
        // elementwise
        "abs", "add", "clamp", "clamp_max", "clamp_min", "clone", "contiguous", "cos", "detach",
        "div", "dropout", "elu", "eq", "erf", "exp", "full_like", "ge", "gelu", "gt",
        "hardsigmoid", "hardswish", "hardtanh", "le", "leaky_relu", "log", "logical_not", "lt",
        "masked_fill", "maximum", "minimum", "mish", "mul", "ne", "neg", "ones_like", "pow",
        "reciprocal", "relu", "relu6", "remainder", "rsqrt", "rsub", "sigmoid", "silu", "sin",
        "softplus", "sqrt", "square", "sub", "tanh", "to", "tril", "triu", "type_as", "where",
        "zeros_like",
        // normalization, reductions, losses
        "batch_norm", "group_norm", "layer_norm", "rms_norm", "amax", "amin", "argmax",
        "cumsum", "log_softmax", "max", "mean", "min", "softmax", "std", "sum", "var",
        "cross_entropy_loss", "mse_loss", "nll_loss",
        // embedding and indexing
        "embedding", "gather", "index_select",
        // shapes
        "cat", "chunk", "expand", "expand_as", "flatten", "narrow", "permute", "reshape",
        "select", "slice", "split", "split_with_sizes", "squeeze", "stack", "t", "transpose",
        "unbind", "unflatten", "unsqueeze", "view", "view_as"};
    std::sort(v.begin(), v.end());
    return v;
  }();
  return ops;
}

/// Ops that read only a tensor's metadata (its shape), never its data.
bool is_metadata_op(const std::string& base) {
  static const std::set<std::string, std::less<>> ops = {
      "size", "sym_size", "dim", "numel", "len", "is_floating_point", "is_complex", "stride",
      "element_size"};
  return ops.count(base) > 0;
}

/// "relu_" -> "relu" (in-place ops are recorded as their functional op);
/// dunder names ("__and__") are kept.
std::string functional_name(const std::string& base) {
  if (base.size() > 1 && base.back() == '_' && base.rfind("__", 0) != 0) {
    return base.substr(0, base.size() - 1);
  }
  return base;
}

/// Tensor, Tensor?, Tensor[] and Tensor?[] (not generic lists like t[]).
bool is_tensor_type(const c10::TypePtr& type) {
  if (type->kind() == c10::TypeKind::TensorType) return true;
  if (auto opt = type->cast<c10::OptionalType>()) return is_tensor_type(opt->getElementType());
  if (auto list = type->cast<c10::ListType>()) return is_tensor_type(list->getElementType());
  return false;
}

bool is_scalar_type_arg(const c10::TypePtr& type) {
  if (auto opt = type->cast<c10::OptionalType>()) return is_scalar_type_arg(opt->getElementType());
  return type->kind() == c10::TypeKind::ScalarTypeType;
}

core::StatusOr<ir::DType> to_dtype(at::ScalarType type) {
  switch (type) {
    case at::kFloat: return ir::DType::kFloat32;
    case at::kDouble: return ir::DType::kFloat64;
    case at::kHalf: return ir::DType::kFloat16;
    case at::kBFloat16: return ir::DType::kBFloat16;
    case at::kLong: return ir::DType::kInt64;
    case at::kInt: return ir::DType::kInt32;
    case at::kShort: return ir::DType::kInt16;
    case at::kChar: return ir::DType::kInt8;
    case at::kByte: return ir::DType::kUInt8;
    case at::kBool: return ir::DType::kBool;
    case at::kComplexFloat: return ir::DType::kComplex64;
    default: break;
  }
  return core::not_implemented(std::string("tensors of dtype ") + c10::toString(type) +
                               " are not supported by the planner");
}

/// Device and Device? arguments (factory ops, aten::to).
bool is_device_type(const c10::TypePtr& type) {
  if (auto opt = type->cast<c10::OptionalType>()) return is_device_type(opt->getElementType());
  return type->kind() == c10::TypeKind::DeviceObjType;
}

/// Ops that turn literal data (bounded by the program's text) into a tensor:
/// they keep their device, so the importer can read such constants.
bool is_data_literal(const Node* node) {
  static const std::set<std::string, std::less<>> ops = {"aten::tensor", "aten::scalar_tensor",
                                                         "aten::as_tensor"};
  return ops.count(node->kind().toQualString()) > 0;
}

/// Whether `value` is, or lists, a meta tensor.
bool holds_meta(const IValue& value) {
  if (value.isTensor()) return value.toTensor().is_meta();
  if (!value.isList()) return false;
  for (const IValue& v : value.toListRef()) {
    if (v.isTensor() && v.toTensor().is_meta()) return true;
  }
  return false;
}

/// A fresh meta tensor with `t`'s sizes, strides and dtype (no data).
at::Tensor meta_like(const at::Tensor& t) {
  return at::empty_strided(t.sizes(), t.strides(),
                           t.options().device(c10::kMeta).requires_grad(false));
}

const char* const kMetaHint =
    " (the importer computes shapes only, on meta tensors: an op that needs tensor data, "
    "such as item() or a branch on a value, is not supported; compute it from shapes, or "
    "capture the model in Python with alpa_torch.capture(model, args).save(path))";

core::StatusOr<ir::TensorMeta> meta_of(const at::Tensor& t) {
  ALPA_ASSIGN_OR_RETURN(ir::DType dtype, to_dtype(t.scalar_type()));
  return ir::TensorMeta{t.sizes().vec(), dtype};
}

/// Every tensor in `value` (nested tuples, lists, dict values), in order.
void flatten_tensors(const IValue& value, std::vector<at::Tensor>& out) {
  if (value.isTensor()) {
    out.push_back(value.toTensor());
  } else if (value.isTuple()) {
    for (const IValue& v : value.toTupleRef().elements()) flatten_tensors(v, out);
  } else if (value.isList()) {
    for (const IValue& v : value.toListRef()) flatten_tensors(v, out);
  } else if (value.isGenericDict()) {
    for (const auto& entry : value.toGenericDict()) flatten_tensors(entry.value(), out);
  }
}

/// An exception's message; a c10::Error's without its C++ backtrace.
std::string message_of(const std::exception& err) {
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&err)) {
    return c10_error->what_without_backtrace();
  }
  return err.what();
}

std::string join_path(const std::string& parent, const std::string& name) {
  return parent.empty() ? name : parent + "." + name;
}

std::string where(const Node* node, const std::string& module) {
  std::string out = "in module '" + (module.empty() ? std::string("<root>") : module) + "'";
  if (auto loc = node->sourceRange().file_line_col()) {
    out += ", at " + std::get<0>(*loc) + ":" + std::to_string(std::get<1>(*loc));
  }
  return out;
}

std::string op_context(const Node* node, const std::string& module) {
  return "TorchScript op '" + std::string(node->kind().toQualString()) + "' " + where(node, module);
}

core::Status unsupported(const Node* node, const std::string& module, bool reads_data) {
  std::string ops;
  for (const std::string& op : supported_ops()) ops += (ops.empty() ? "" : ", ") + op;
  std::string why = reads_data
      ? " (it turns tensor data into a value; the planner needs shapes that do not depend "
        "on data)"
      : "";
  return core::not_implemented(
      op_context(node, module) + " is not supported by the alpa_torch TorchScript importer" + why +
      ". Fix: write the model with supported ops, or capture it in Python with "
      "alpa_torch.capture(model, args).save(path) and plan the saved graph. Supported ops: " +
      ops);
}

std::string op_name(const Node* node, const c10::FunctionSchema& schema, const std::string& base) {
  const std::string overload = schema.overload_name();
  return std::string(node->kind().ns().toUnqualString()) + "." + base + "." +
         (overload.empty() ? "default" : overload);
}

core::StatusOr<ir::Attr> attr_of(const IValue& value, const c10::TypePtr& type, ir::Node& node,
                                 const RefOf& ref_of) {
  if (value.isTensor()) {
    ALPA_ASSIGN_OR_RETURN(ir::ValueRef ref, ref_of(value.toTensor()));
    node.inputs.push_back(ref);
    return ir::Attr(ir::InputRef{static_cast<int64_t>(node.inputs.size()) - 1});
  }
  if (value.isList() && is_tensor_type(type)) {  // Tensor[] / Tensor?[]
    ir::InputRefs refs;
    for (const IValue& v : value.toListRef()) {
      if (v.isNone()) {
        refs.positions.push_back(-1);
        continue;
      }
      ALPA_ASSIGN_OR_RETURN(ir::ValueRef ref, ref_of(v.toTensor()));
      node.inputs.push_back(ref);
      refs.positions.push_back(static_cast<int64_t>(node.inputs.size()) - 1);
    }
    return ir::Attr(std::move(refs));
  }
  if (value.isNone()) return ir::Attr();
  if (value.isBool()) return ir::Attr(value.toBool());
  if (value.isInt() && is_scalar_type_arg(type)) {  // a dtype, written as in capture
    ALPA_ASSIGN_OR_RETURN(ir::DType dtype, to_dtype(static_cast<at::ScalarType>(value.toInt())));
    return ir::Attr(std::string(ir::dtype_name(dtype)));
  }
  if (value.isInt()) return ir::Attr(value.toInt());
  if (value.isDouble()) return ir::Attr(value.toDouble());
  if (value.isString()) return ir::Attr(value.toStringRef());
  if (value.isIntList()) return ir::Attr(value.toIntVector());
  if (value.isBoolList()) {
    std::vector<int64_t> ints;
    for (bool b : value.toBoolList()) ints.push_back(b ? 1 : 0);
    return ir::Attr(std::move(ints));
  }
  if (value.isDoubleList()) return ir::Attr(ir::Floats{value.toDoubleVector()});
  if (value.isDevice()) return ir::Attr(value.toDevice().str());
  std::ostringstream text;  // layouts, memory formats, ...: their text
  text << value;
  return ir::Attr(text.str());
}

int64_t factory_bytes(const c10::FunctionSchema& schema, const std::vector<IValue>& inputs) {
  const auto& args = schema.arguments();
  const size_t n = std::min(args.size(), inputs.size());
  auto product = [](const std::vector<int64_t>& dims) {
    double p = 1;
    for (int64_t d : dims) p *= static_cast<double>(std::max<int64_t>(d, 1));
    return p;
  };
  // zeros(size), full(size, v), randn(size): the size says it all; else
  // (arange(end), eye(n, m)) the product of the numbers, an upper bound.
  double elements = 1;
  for (size_t i = 0; i < n; ++i) {
    if (args[i].name() == "size" && inputs[i].isIntList()) {
      elements = product(inputs[i].toIntVector());
      return elements * 8 >= 4e18 ? std::numeric_limits<int64_t>::max()
                                  : static_cast<int64_t>(elements * 8);
    }
  }
  for (size_t i = 0; i < n; ++i) {
    const IValue& v = inputs[i];
    if (is_scalar_type_arg(args[i].type())) continue;  // a dtype, not a count
    if (v.isIntList()) elements *= product(v.toIntVector());
    if (v.isInt()) elements *= std::max(1.0, std::abs(static_cast<double>(v.toInt())));
    if (v.isDouble()) elements *= std::max(1.0, std::abs(v.toDouble()));
  }
  return elements * 8 >= 4e18 || std::isnan(elements) ? std::numeric_limits<int64_t>::max()
                                                       : static_cast<int64_t>(elements * 8);
}

namespace {

int64_t bytes_of(const IValue& value) {
  std::vector<at::Tensor> tensors;
  flatten_tensors(value, tensors);
  int64_t bytes = 0;
  for (const at::Tensor& t : tensors) {
    if (t.defined()) bytes += static_cast<int64_t>(t.numel()) * t.element_size();
  }
  return bytes;
}

/// The planner's shape rules (ir/shape_inference.h) on a scratch graph of
/// the op and one placeholder per tensor input; nullopt when it has none.
core::StatusOr<std::optional<torch::jit::Stack>> infer_with_planner(
    const Node* node, const c10::FunctionSchema& schema, const std::string& op,
    const std::vector<IValue>& inputs) {
  using Out = std::optional<torch::jit::Stack>;
  for (const c10::Argument& r : schema.returns()) {
    if (r.type()->kind() != c10::TypeKind::TensorType) return Out();
  }
  ir::Graph scratch("shapes");
  RefOf placeholder = [&](const at::Tensor& t) -> core::StatusOr<ir::ValueRef> {
    ir::Node p;
    p.kind = ir::NodeKind::kInput;
    p.name = p.target = "input" + std::to_string(scratch.num_nodes());
    ALPA_ASSIGN_OR_RETURN(ir::TensorMeta meta, meta_of(t));
    p.outputs = {meta};
    return ir::ValueRef{scratch.add_node(std::move(p)), 0};
  };
  ir::Node n;
  n.kind = ir::NodeKind::kOp;
  n.name = "op";
  n.op = op;
  const auto& args = schema.arguments();
  for (size_t i = 0; i < args.size() && i < inputs.size(); ++i) {
    ALPA_ASSIGN_OR_RETURN(ir::Attr attr, attr_of(inputs[i], args[i].type(), n, placeholder));
    n.attrs.emplace_back(args[i].name(), std::move(attr));
  }
  const ir::NodeId id = scratch.add_node(std::move(n));
  ALPA_ASSIGN_OR_RETURN(auto metas, ir::infer_output_meta(scratch, scratch.node(id)));
  if (!metas || metas->size() != schema.returns().size()) return Out();
  torch::jit::Stack out;
  for (const ir::TensorMeta& m : *metas) {
    ALPA_ASSIGN_OR_RETURN(at::ScalarType type, to_scalar_type(m.dtype));
    out.emplace_back(at::empty(m.shape, at::TensorOptions().dtype(type).device(c10::kMeta)));
  }
  const std::string kind = node->kind().toUnqualString();
  const bool in_place = kind.size() > 1 && kind.back() == '_' && kind.rfind("__", 0) != 0;
  if (in_place && out.size() == 1 && !inputs.empty() && inputs[0].isTensor()) {
    out[0] = inputs[0];  // the result is self
  }
  return Out(std::move(out));
}

/// `value` with meta tensors replaced by CPU zeros; `pairs` gets (zeros, meta).
IValue materialize(const IValue& value, std::vector<std::pair<at::Tensor, at::Tensor>>& pairs) {
  if (value.isTensor() && value.toTensor().defined() && value.toTensor().is_meta()) {
    const at::Tensor& t = value.toTensor();
    at::Tensor real = at::zeros(t.sizes(), t.options().device(c10::kCPU));
    pairs.emplace_back(real, t);
    return real;
  }
  if (value.isTensorList()) {
    c10::List<at::Tensor> out;
    for (const at::Tensor& t : value.toTensorVector()) {
      out.push_back(materialize(t, pairs).toTensor());
    }
    return IValue(std::move(out));
  }
  if (value.isList() && holds_meta(value)) {
    c10::impl::GenericList out(value.toList().elementType());
    for (const IValue& v : value.toListRef()) out.push_back(materialize(v, pairs));
    return IValue(std::move(out));
  }
  return value;
}

/// A result of a materialized run back on meta: an input it returns (in
/// place) is that input's meta tensor, any other tensor a meta copy.
IValue back_to_meta(const IValue& value,
                    const std::vector<std::pair<at::Tensor, at::Tensor>>& pairs) {
  if (value.isTensor()) {
    const at::Tensor& t = value.toTensor();
    if (!t.defined()) return value;
    for (const auto& [real, meta] : pairs) {
      if (real.unsafeGetTensorImpl() == t.unsafeGetTensorImpl()) return meta;
    }
    return meta_like(t);
  }
  if (value.isTensorList()) {
    c10::List<at::Tensor> out;
    for (const at::Tensor& t : value.toTensorVector()) {
      out.push_back(back_to_meta(t, pairs).toTensor());
    }
    return IValue(std::move(out));
  }
  if (value.isTuple()) {
    std::vector<IValue> items;
    for (const IValue& v : value.toTupleRef().elements()) items.push_back(back_to_meta(v, pairs));
    return c10::ivalue::Tuple::create(std::move(items));
  }
  return value;
}

}  // namespace

core::StatusOr<torch::jit::Stack> run_on_shapes(const Node* node,
                                                const c10::FunctionSchema* schema,
                                                const std::string& op,
                                                const std::vector<IValue>& inputs,
                                                bool recordable, int64_t& real_bytes_left) {
  torch::jit::Stack stack(inputs.begin(), inputs.end());
  std::string error;
  try {
    node->getOperation()(stack);
    return stack;
  } catch (const std::exception& err) {
    error = message_of(err);
  }
  if (!recordable || schema == nullptr ||
      !std::any_of(inputs.begin(), inputs.end(), holds_meta)) {
    return core::invalid_argument(
        error + (std::any_of(inputs.begin(), inputs.end(), holds_meta) ? kMetaHint : ""));
  }
  // No meta kernel in LibTorch (Python registers many more): the planner's
  // shape rules, then the op itself on zeros while that is cheap.
  core::StatusOr<std::optional<torch::jit::Stack>> inferred = std::optional<torch::jit::Stack>();
  try {
    inferred = infer_with_planner(node, *schema, op, inputs);
  } catch (const std::exception& err) {  // shapes torch cannot hold (stride overflow)
    return core::invalid_argument(message_of(err));
  }
  if (!inferred.ok()) return inferred.status();
  if (*inferred) return std::move(**inferred);
  int64_t bytes = 0;
  for (const IValue& v : inputs) bytes += bytes_of(v);
  if (bytes > std::min(kMaterializeLimitBytes, real_bytes_left)) {
    return core::invalid_argument(
        error + " (the op has no shape function in LibTorch and its inputs hold " +
        std::to_string(bytes) + " bytes, more than the importer runs on real tensors to "
        "find shapes (" + std::to_string(kMaterializeLimitBytes >> 20) + " MiB an op, " +
        std::to_string(kRealBytesPerImport >> 20) + " MiB in all); use smaller example "
        "inputs, or capture the model in Python with alpa_torch.capture(model, args).save(path))");
  }
  real_bytes_left -= bytes;
  std::vector<std::pair<at::Tensor, at::Tensor>> pairs;
  stack.clear();
  try {
    for (const IValue& v : inputs) stack.push_back(materialize(v, pairs));
    node->getOperation()(stack);
    for (IValue& v : stack) v = back_to_meta(v, pairs);
  } catch (const std::exception& err) {
    return core::invalid_argument(message_of(err));
  }
  return stack;
}

core::StatusOr<at::ScalarType> to_scalar_type(ir::DType dtype) {
  for (at::ScalarType t : {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16, at::kLong, at::kInt,
                           at::kShort, at::kChar, at::kByte, at::kBool, at::kComplexFloat}) {
    auto d = to_dtype(t);
    if (d.ok() && *d == dtype) return t;
  }
  return core::not_implemented(std::string("dtype ") + std::string(ir::dtype_name(dtype)) +
                               " has no torch tensor type the importer knows");
}

}  // namespace ts_support

core::StatusOr<std::vector<c10::IValue>> example_inputs_from_specs(
    const std::vector<std::string>& specs) {
  constexpr int64_t kMaxBytes = int64_t{1} << 62;
  std::vector<c10::IValue> out;
  for (size_t i = 0; i < specs.size(); ++i) {
    const std::string& spec = specs[i];
    auto bad = [&](const std::string& why) {
      return core::invalid_argument("example input " + std::to_string(i) + " '" + spec + "': " +
                                    why + " (write a tensor type such as f32[8,16] or i64[2,128])");
    };
    if (spec.empty()) return bad("empty");
    auto meta = ir::TensorMeta::parse(spec);
    if (!meta.ok()) return bad(meta.status().message());
    auto type = ts_support::to_scalar_type(meta->dtype);
    if (!type.ok()) return bad(type.status().message());
    // The bytes it would hold, and its strides (empty dims counted as 1),
    // checked against overflow: meta tensors hold no data, but the planner
    // counts bytes and torch computes strides in int64.
    int64_t bytes = static_cast<int64_t>(c10::elementSize(*type));
    for (int64_t d : meta->shape) {
      if (d > 1 && bytes > kMaxBytes / d) return bad("larger than 2^62 bytes");
      bytes *= std::max<int64_t>(d, 1);
    }
    try {
      out.emplace_back(at::empty(meta->shape, at::TensorOptions().dtype(*type).device(c10::kMeta)));
    } catch (const std::exception& err) {
      return bad(ts_support::message_of(err));
    }
  }
  return out;
}

}  // namespace alpa::runtime
