// This file implements autocast_graph().
#include "ir/autocast.h"

#include <set>
#include <string>

#include "ir/flops.h"
#include "ir/op_name.h"

namespace alpa::ir {
namespace {

// Ops autocast runs in fp32 whatever their inputs (besides norms and
// softmax, which op_category() names).
const std::set<std::string, std::less<>> kFloat32Ops = {
    "cross_entropy", "cross_entropy_loss", "nll_loss", "nll_loss_forward", "nll_loss2d_forward",
    "nll_loss_nd", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "kl_div",
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "sum", "prod", "cumsum",
    "cumprod", "exp", "expm1", "log", "log2", "log10", "log1p", "pow", "reciprocal", "rsqrt",
    "norm", "linalg_vector_norm", "softplus", "erfinv", "acos", "asin", "cosh", "sinh", "tan"};

bool is_wide(DType d) { return d == DType::kFloat32 || d == DType::kFloat64; }

// The dtype autocast gives an op whose output was `original`.
DType op_dtype(const Graph& graph, const Node& n, DType original, DType half) {
  if (!is_floating(original)) return original;
  const OpCategory category = op_category(n.op);
  if (category == OpCategory::kMatmul || category == OpCategory::kConvolution ||
      category == OpCategory::kAttention) {
    return half;
  }
  if (category == OpCategory::kNorm || category == OpCategory::kSoftmax ||
      kFloat32Ops.count(op_base_name(n.op)) > 0) {
    return DType::kFloat32;
  }
  bool any_floating = false;
  DType widest = half;
  for (ValueRef v : n.inputs) {
    const DType d = graph.meta(v).dtype;
    if (!is_floating(d)) continue;
    any_floating = true;
    if (is_wide(d) && !is_wide(widest)) widest = d;
    if (d == DType::kFloat64) widest = d;
  }
  return any_floating ? widest : original;  // a factory op (zeros, arange) keeps its dtype
}

}  // namespace

Graph autocast_graph(const Graph& graph, DType half) {
  Graph out = graph;
  if (half != DType::kBFloat16 && half != DType::kFloat16) return out;
  for (Node& n : out.mutable_nodes()) {  // topological order: inputs first
    if (n.kind != NodeKind::kOp) continue;
    for (TensorMeta& meta : n.outputs) meta.dtype = op_dtype(out, n, meta.dtype, half);
  }
  return out;
}

}  // namespace alpa::ir
