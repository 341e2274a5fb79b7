// This file implements FLOP formulas per op category.
#include "ir/flops.h"

#include <map>
#include <set>
#include <string>

#include <fmt/format.h>

#include "ir/op_name.h"

namespace alpa::ir {
namespace {

const std::set<std::string, std::less<>> kMatmulOps = {
    "mm", "addmm", "bmm", "baddbmm", "linear", "matmul", "einsum", "addbmm",
    "grouped_mm_fallback", "_grouped_mm",  // MoE: each row meets one expert
    "moe_experts"};
const std::set<std::string, std::less<>> kConvOps = {
    "convolution", "conv1d", "conv2d", "conv3d", "_convolution"};
const std::set<std::string, std::less<>> kAttentionOps = {
    "scaled_dot_product_attention", "_scaled_dot_product_flash_attention",
    "_scaled_dot_product_efficient_attention",
    "_scaled_dot_product_flash_attention_for_cpu",
    "_scaled_dot_product_cudnn_attention"};
const std::set<std::string, std::less<>> kNormOps = {
    "layer_norm", "native_layer_norm", "batch_norm", "native_batch_norm",
    "_native_batch_norm_legit", "_native_batch_norm_legit_functional",
    "_native_batch_norm_legit_no_training", "group_norm", "native_group_norm",
    "rms_norm", "_fused_rms_norm"};
const std::set<std::string, std::less<>> kSoftmaxOps = {
    "softmax", "_softmax", "log_softmax", "_log_softmax"};
const std::set<std::string, std::less<>> kReductionOps = {
    "sum", "mean", "amax", "amin", "max", "min", "var", "std", "var_mean",
    "prod", "logsumexp", "norm", "argmax", "argmin", "cumsum", "topk",
    "cross_entropy_loss", "nll_loss", "nll_loss_forward", "mse_loss",
    "cross_entropy", "all", "any"};
const std::set<std::string, std::less<>> kElementwiseOps = {
    "add", "sub", "mul", "div", "pow", "maximum", "minimum", "eq", "ne", "lt",
    "le", "gt", "ge", "__and__", "__or__", "bitwise_and", "bitwise_or",
    "logical_and", "logical_or", "logical_not", "rsub", "where", "relu",
    "gelu", "tanh", "sigmoid", "silu", "neg", "exp", "log", "sqrt", "rsqrt",
    "abs", "dropout", "native_dropout", "erf", "reciprocal", "cos", "sin",
    "sign", "hardtanh", "leaky_relu", "elu", "relu6", "square", "clamp",
    "masked_fill", "remainder", "fmod", "floor_divide", "addcmul", "addcdiv",
    "lerp", "softplus", "log1p", "expm1", "threshold", "mish", "hardswish",
    "hardsigmoid", "glu", "triu", "tril", "bitwise_not", "floor", "ceil",
    "round", "trunc", "atan2"};

int64_t prod(const Shape& s, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t i = begin; i < end && i < s.size(); ++i) p *= s[i];
  return p;
}

core::StatusOr<double> einsum_flops(const Graph& g, const Node& n) {
  const Attr* eq = n.attr("equation");
  const auto* equation = eq ? std::get_if<std::string>(eq) : nullptr;
  if (equation == nullptr) {
    return core::invalid_argument(fmt::format("einsum node '{}' has no equation", n.name));
  }
  std::string lhs = equation->substr(0, equation->find("->"));
  std::map<char, int64_t> sizes;
  size_t operand = 0, dim = 0;
  for (char c : lhs) {
    if (c == ',') {
      ++operand;
      dim = 0;
    } else if (c != ' ' && operand < n.inputs.size()) {
      const Shape& s = g.meta(n.inputs[operand]).shape;
      if (dim < s.size()) sizes[c] = std::max<int64_t>(sizes[c], s[dim]);
      ++dim;
    }
  }
  double total = 1;
  for (const auto& [c, size] : sizes) total *= static_cast<double>(size);
  return n.inputs.size() >= 2 ? 2 * total : total;
}

// A whole experts layer: each of the t·k routed rows multiplies one
// expert's slice of every parameter [e, ...] (weights; biases add little).
core::StatusOr<double> moe_experts_flops(const Graph& g, const Node& n) {
  if (n.inputs.size() < 4) {
    return core::invalid_argument(fmt::format("moe_experts node '{}' has no expert parameters", n.name));
  }
  const Shape& index = g.meta(n.inputs[1]).shape;
  double rows = static_cast<double>(prod(index, 0, index.size()));
  double per_row = 0;
  for (size_t i = 3; i < n.inputs.size(); ++i) {
    const Shape& p = g.meta(n.inputs[i]).shape;
    if (p.size() >= 3) per_row += static_cast<double>(prod(p, 1, p.size()));
  }
  return 2 * rows * per_row;
}

core::StatusOr<double> matmul_flops(const Graph& g, const Node& n) {
  std::string_view base = op_base_name(n.op);
  if (base == "einsum") return einsum_flops(g, n);
  if (base == "moe_experts") return moe_experts_flops(g, n);
  size_t a_pos = (base == "addmm" || base == "baddbmm" || base == "addbmm") ? 1 : 0;
  if (n.inputs.size() < a_pos + 2) {
    return core::invalid_argument(fmt::format("matmul node '{}' has too few inputs", n.name));
  }
  const Shape& a = g.meta(n.inputs[a_pos]).shape;
  if (a.empty()) return 0.0;
  double k = static_cast<double>(a.back());
  double out = 0;
  for (const TensorMeta& m : n.outputs) out += static_cast<double>(m.numel());
  if (base == "addbmm") out *= static_cast<double>(a[0]);
  return 2 * out * k;
}

double conv_flops(const Graph& g, const Node& n) {
  const Shape& x = g.meta(n.inputs.at(0)).shape;
  const Shape& w = g.meta(n.inputs.at(1)).shape;  // [c_out, c_in/groups, k...]
  const Shape& y = n.outputs.at(0).shape;
  bool transposed = n.attr_int("transposed", 0) != 0;
  const Shape& spatial_src = transposed ? x : y;
  double batch = x.empty() ? 1 : static_cast<double>(x[0]);
  double spatial = static_cast<double>(prod(spatial_src, 2, spatial_src.size()));
  return 2 * batch * spatial * static_cast<double>(prod(w, 0, w.size()));
}

double attention_flops(const Graph& g, const Node& n) {
  const Shape& q = g.meta(n.inputs.at(0)).shape;  // [..., Sq, D]
  const Shape& k = g.meta(n.inputs.at(1)).shape;  // [..., Sk, D]
  const Shape& v = g.meta(n.inputs.at(2)).shape;  // [..., Sk, Dv]
  if (q.size() < 2 || k.size() < 2 || v.size() < 2) return 0;
  double batch = static_cast<double>(prod(q, 0, q.size() - 2));
  double sq = static_cast<double>(q[q.size() - 2]);
  double sk = static_cast<double>(k[k.size() - 2]);
  double d = static_cast<double>(q.back()), dv = static_cast<double>(v.back());
  return 2 * batch * sq * sk * d + 2 * batch * sq * sk * dv;
}

}  // namespace

const char* op_category_name(OpCategory c) {
  switch (c) {
    case OpCategory::kMatmul: return "matmul";
    case OpCategory::kConvolution: return "convolution";
    case OpCategory::kAttention: return "attention";
    case OpCategory::kNorm: return "norm";
    case OpCategory::kSoftmax: return "softmax";
    case OpCategory::kReduction: return "reduction";
    case OpCategory::kElementwise: return "elementwise";
    case OpCategory::kData: return "data";
  }
  return "?";
}

OpCategory op_category(std::string_view op) {
  std::string_view base = op_base_name(op);
  if (kMatmulOps.count(base)) return OpCategory::kMatmul;
  if (kConvOps.count(base)) return OpCategory::kConvolution;
  if (kAttentionOps.count(base)) return OpCategory::kAttention;
  if (kNormOps.count(base)) return OpCategory::kNorm;
  if (kSoftmaxOps.count(base)) return OpCategory::kSoftmax;
  if (kReductionOps.count(base)) return OpCategory::kReduction;
  if (kElementwiseOps.count(base)) return OpCategory::kElementwise;
  return OpCategory::kData;
}

core::StatusOr<double> node_flops(const Graph& g, const Node& n) {
  if (n.kind != NodeKind::kOp || n.outputs.empty()) return 0.0;
  double out_numel = static_cast<double>(n.outputs[0].numel());
  switch (op_category(n.op)) {
    case OpCategory::kMatmul: return matmul_flops(g, n);
    case OpCategory::kConvolution:
      if (n.inputs.size() < 2) {
        return core::invalid_argument(fmt::format("convolution node '{}' needs input and weight", n.name));
      }
      return conv_flops(g, n);
    case OpCategory::kAttention:
      if (n.inputs.size() < 3) {
        return core::invalid_argument(fmt::format("attention node '{}' needs q, k, v", n.name));
      }
      return attention_flops(g, n);
    // Normalization: mean, variance, normalize, scale, shift ~ 5 per element.
    case OpCategory::kNorm: return 5 * out_numel;
    // Softmax: max, subtract, exp, sum, divide.
    case OpCategory::kSoftmax: return 5 * out_numel;
    case OpCategory::kReduction:
      return n.inputs.empty() ? 0.0 : static_cast<double>(g.meta(n.inputs[0]).numel());
    case OpCategory::kElementwise: return out_numel;
    case OpCategory::kData: return 0.0;
  }
  return 0.0;
}

core::Status annotate_flops(Graph& graph) {
  for (Node& n : graph.mutable_nodes()) {
    auto f = node_flops(graph, n);
    if (!f.ok()) return f.status();
    n.flops = *f;
  }
  return core::ok_status();
}

}  // namespace alpa::ir
