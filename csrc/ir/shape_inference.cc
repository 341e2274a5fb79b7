// This file implements shape inference for matmul-family, elementwise,
// view/permute, reduction, normalization, embedding, convolution and
// attention ops. Ops outside these families return nullopt.
#include "ir/shape_inference.h"

#include <set>
#include <string>

#include <fmt/format.h>

#include "ir/op_name.h"

namespace alpa::ir {
namespace {

using core::Status;
using core::StatusOr;
using Result = StatusOr<std::optional<std::vector<TensorMeta>>>;

const std::set<std::string, std::less<>> kUnary = {
    "relu", "gelu", "tanh", "sigmoid", "silu", "neg", "exp", "log", "sqrt",
    "rsqrt", "abs", "dropout", "clone", "contiguous", "alias", "detach",
    "native_dropout", "softmax", "_softmax", "log_softmax", "_log_softmax",
    "layer_norm", "batch_norm", "group_norm", "erf", "reciprocal", "cos",
    "sin", "sign", "hardtanh", "leaky_relu", "elu", "relu6", "square",
    "cumsum", "_to_copy", "to", "type_as", "lift_fresh_copy", "clamp",
    "masked_fill", "triu", "tril", "fill", "zeros_like", "ones_like",
    "full_like", "rms_norm"};

const std::set<std::string, std::less<>> kBinary = {
    "add", "sub", "mul", "div", "pow", "maximum", "minimum", "eq", "ne",
    "lt", "le", "gt", "ge", "__and__", "__or__", "bitwise_and", "bitwise_or",
    "logical_and", "logical_or", "rsub", "where", "remainder", "fmod",
    "atan2", "floor_divide"};

const std::set<std::string, std::less<>> kCompare = {
    "eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or"};

Status mismatch(const Node& n, const std::string& why) {
  return core::invalid_argument(
      fmt::format("shape mismatch at node '{}' ({}): {}", n.name, n.op, why));
}

std::optional<std::vector<TensorMeta>> one(Shape shape, DType dtype) {
  return std::vector<TensorMeta>{TensorMeta{std::move(shape), dtype}};
}

Result infer_matmul(const Graph& g, const Node& n, std::string_view base) {
  auto in = [&](size_t i) -> const TensorMeta& { return g.meta(n.inputs.at(i)); };
  size_t first = (base == "addmm" || base == "baddbmm") ? 1 : 0;
  if (n.inputs.size() < first + 2) return mismatch(n, "expected two matrix operands");
  const TensorMeta& a = in(first);
  const TensorMeta& b = in(first + 1);
  auto s = [](const TensorMeta& m) { return m.to_string(); };
  if (base == "mm" || base == "addmm") {
    if (a.rank() != 2 || b.rank() != 2 || a.shape[1] != b.shape[0]) {
      return mismatch(n, fmt::format("cannot multiply {} by {}", s(a), s(b)));
    }
    return one({a.shape[0], b.shape[1]}, a.dtype);
  }
  if (base == "bmm" || base == "baddbmm") {
    if (a.rank() != 3 || b.rank() != 3 || a.shape[0] != b.shape[0] ||
        a.shape[2] != b.shape[1]) {
      return mismatch(n, fmt::format("cannot batch-multiply {} by {}", s(a), s(b)));
    }
    return one({a.shape[0], a.shape[1], b.shape[2]}, a.dtype);
  }
  if (base == "linear") {  // x [..., k], weight [n, k]
    if (a.rank() < 1 || b.rank() != 2 || a.shape.back() != b.shape[1]) {
      return mismatch(n, fmt::format("linear input {} does not match weight {} "
                                     "(weight is [out_features, in_features])",
                                     s(a), s(b)));
    }
    Shape out = a.shape;
    out.back() = b.shape[0];
    return one(out, a.dtype);
  }
  // matmul: 1-D operands are promoted, batch dims broadcast.
  if (a.rank() == 0 || b.rank() == 0) return mismatch(n, "matmul of a scalar");
  Shape sa = a.shape, sb = b.shape;
  if (sa.size() == 1) sa.insert(sa.begin(), 1);
  if (sb.size() == 1) sb.push_back(1);
  if (sa.back() != sb[sb.size() - 2]) {
    return mismatch(n, fmt::format("cannot multiply {} by {}", s(a), s(b)));
  }
  Shape ba(sa.begin(), sa.end() - 2), bb(sb.begin(), sb.end() - 2);
  auto batch = broadcast_shapes(ba, bb);
  if (!batch.ok()) return mismatch(n, batch.status().message());
  Shape out = *batch;
  if (a.rank() > 1) out.push_back(sa[sa.size() - 2]);
  if (b.rank() > 1) out.push_back(sb.back());
  return one(out, a.dtype);
}

StatusOr<Shape> resolve_view(const Node& n, const TensorMeta& in,
                             std::vector<int64_t> size) {
  int64_t known = 1;
  int infer = -1;
  for (size_t i = 0; i < size.size(); ++i) {
    if (size[i] == -1) {
      if (infer >= 0) return mismatch(n, "more than one -1 in the size");
      infer = static_cast<int>(i);
    } else {
      known *= size[i];
    }
  }
  if (infer >= 0) {
    if (known == 0 || in.numel() % known != 0) {
      return mismatch(n, fmt::format("cannot view {} as {}", in.to_string(),
                                     shape_to_string(size)));
    }
    size[static_cast<size_t>(infer)] = in.numel() / known;
  } else if (known != in.numel()) {
    return mismatch(n, fmt::format("cannot view {} ({} elements) as {} ({} elements)",
                                   in.to_string(), in.numel(),
                                   shape_to_string(size), known));
  }
  return size;
}

Result infer_shape_op(const Graph& g, const Node& n, std::string_view base) {
  const TensorMeta& in = g.meta(n.inputs.at(0));
  if (base == "view" || base == "reshape" || base == "_unsafe_view") {
    auto size = n.attr_ints("size");
    if (!size) size = n.attr_ints("shape");
    if (!size) return std::optional<std::vector<TensorMeta>>();
    ALPA_ASSIGN_OR_RETURN(Shape out, resolve_view(n, in, *size));
    return one(out, in.dtype);
  }
  if (base == "permute") {
    auto dims = n.attr_ints("dims");
    if (!dims || static_cast<int64_t>(dims->size()) != in.rank()) {
      return mismatch(n, fmt::format("permute dims do not match rank {}", in.rank()));
    }
    Shape out;
    for (int64_t d : *dims) {
      ALPA_ASSIGN_OR_RETURN(int64_t nd, normalize_dim(d, in.rank()));
      out.push_back(in.shape[static_cast<size_t>(nd)]);
    }
    return one(out, in.dtype);
  }
  if (base == "transpose") {
    ALPA_ASSIGN_OR_RETURN(int64_t d0, normalize_dim(n.attr_int("dim0", 0), in.rank()));
    ALPA_ASSIGN_OR_RETURN(int64_t d1, normalize_dim(n.attr_int("dim1", 1), in.rank()));
    if (in.rank() == 0) return one(in.shape, in.dtype);  // a scalar transposes to itself
    Shape out = in.shape;
    std::swap(out[static_cast<size_t>(d0)], out[static_cast<size_t>(d1)]);
    return one(out, in.dtype);
  }
  if (base == "t") {
    Shape out(in.shape.rbegin(), in.shape.rend());
    return one(out, in.dtype);
  }
  if (base == "unsqueeze") {
    ALPA_ASSIGN_OR_RETURN(int64_t d, normalize_dim(n.attr_int("dim", 0), in.rank() + 1));
    Shape out = in.shape;
    out.insert(out.begin() + d, 1);
    return one(out, in.dtype);
  }
  if (base == "expand") {
    auto size = n.attr_ints("size");
    if (!size || static_cast<int64_t>(size->size()) < in.rank()) {
      return mismatch(n, "expand size has fewer dims than the input");
    }
    Shape out = *size;
    size_t offset = out.size() - in.shape.size();
    for (size_t i = 0; i < out.size(); ++i) {
      int64_t src = i >= offset ? in.shape[i - offset] : 1;
      if (out[i] == -1) out[i] = src;
      if (src != 1 && src != out[i]) {
        return mismatch(n, fmt::format("cannot expand {} to {}", in.to_string(),
                                       shape_to_string(*size)));
      }
    }
    return one(out, in.dtype);
  }
  return std::optional<std::vector<TensorMeta>>();
}

Result infer_reduction(const Graph& g, const Node& n) {
  const TensorMeta& in = g.meta(n.inputs.at(0));
  auto dims = n.attr_ints("dim");
  if (in.rank() == 0) {  // a scalar reduces to itself (dim 0 or -1, as in ATen)
    for (int64_t d : dims.value_or(std::vector<int64_t>{})) {
      ALPA_RETURN_IF_ERROR(normalize_dim(d, 0).status());
    }
    return one({}, in.dtype);
  }
  bool keepdim = n.attr_int("keepdim", 0) != 0;
  std::vector<bool> reduced(in.shape.size(), !dims || dims->empty());
  if (dims) {
    for (int64_t d : *dims) {
      ALPA_ASSIGN_OR_RETURN(int64_t nd, normalize_dim(d, in.rank()));
      reduced[static_cast<size_t>(nd)] = true;
    }
  }
  Shape out;
  for (size_t i = 0; i < in.shape.size(); ++i) {
    if (!reduced[i]) out.push_back(in.shape[i]);
    else if (keepdim) out.push_back(1);
  }
  return one(out, in.dtype);
}

Result infer_embedding(const Graph& g, const Node& n) {
  const TensorMeta& weight = g.meta(n.inputs.at(0));
  const TensorMeta& idx = g.meta(n.inputs.at(1));
  if (weight.rank() != 2) {
    return mismatch(n, fmt::format("embedding weight {} must be 2-D", weight.to_string()));
  }
  Shape out = idx.shape;
  out.push_back(weight.shape[1]);
  return one(out, weight.dtype);
}

Result infer_sdpa(const Graph& g, const Node& n) {
  const TensorMeta& q = g.meta(n.inputs.at(0));
  const TensorMeta& k = g.meta(n.inputs.at(1));
  const TensorMeta& v = g.meta(n.inputs.at(2));
  if (q.rank() < 2 || k.rank() != q.rank() || v.rank() != q.rank() ||
      q.shape.back() != k.shape.back() ||
      k.shape[k.shape.size() - 2] != v.shape[v.shape.size() - 2]) {
    return mismatch(n, fmt::format("attention q {} k {} v {} are inconsistent",
                                   q.to_string(), k.to_string(), v.to_string()));
  }
  Shape out = q.shape;
  out.back() = v.shape.back();
  return one(out, q.dtype);
}

}  // namespace

StatusOr<int64_t> normalize_dim(int64_t dim, int64_t rank) {
  const int64_t wrap = std::max<int64_t>(rank, 1);  // a scalar takes dim 0 or -1, as in ATen
  int64_t d = dim < 0 ? dim + wrap : dim;
  if (d < 0 || d >= wrap) {
    return core::invalid_argument(
        fmt::format("dim {} is out of range for a tensor of rank {}", dim, rank));
  }
  return d;
}

StatusOr<Shape> broadcast_shapes(const Shape& a, const Shape& b) {
  Shape out(std::max(a.size(), b.size()), 1);
  for (size_t i = 0; i < out.size(); ++i) {
    int64_t da = i < a.size() ? a[a.size() - 1 - i] : 1;
    int64_t db = i < b.size() ? b[b.size() - 1 - i] : 1;
    if (da != db && da != 1 && db != 1) {
      return core::invalid_argument(fmt::format(
          "shapes {} and {} do not broadcast", shape_to_string(a), shape_to_string(b)));
    }
    out[out.size() - 1 - i] = da == 1 ? db : da;
  }
  return out;
}

Result infer_output_meta(const Graph& g, const Node& n) {
  if (n.kind != NodeKind::kOp || n.inputs.empty()) {
    return std::optional<std::vector<TensorMeta>>();
  }
  std::string_view base = op_base_name(n.op);
  if (base == "mm" || base == "bmm" || base == "addmm" || base == "baddbmm" ||
      base == "linear" || base == "matmul") {
    return infer_matmul(g, n, base);
  }
  if (kUnary.count(base) && n.inputs.size() == 1) {
    const TensorMeta& in = g.meta(n.inputs[0]);
    if (base == "dropout" || base == "native_dropout" || base == "batch_norm" ||
        base == "layer_norm" || base == "group_norm") {
      // Multi-output variants (native_*) are not inferred here.
      if (n.outputs.size() > 1) return std::optional<std::vector<TensorMeta>>();
    }
    DType dtype = in.dtype;
    if (!n.outputs.empty() && (base == "_to_copy" || base == "to" || base == "type_as")) {
      dtype = n.outputs[0].dtype;
    }
    return one(in.shape, dtype);
  }
  if (kBinary.count(base)) {
    Shape shape = g.meta(n.inputs[0]).shape;
    for (size_t i = 1; i < n.inputs.size(); ++i) {
      auto b = broadcast_shapes(shape, g.meta(n.inputs[i]).shape);
      if (!b.ok()) return mismatch(n, b.status().message());
      shape = *b;
    }
    DType dtype = kCompare.count(base) ? DType::kBool : g.meta(n.inputs[0]).dtype;
    if (!n.outputs.empty()) dtype = n.outputs[0].dtype;  // type promotion
    return one(shape, dtype);
  }
  if (base == "sum" || base == "mean" || base == "amax" || base == "amin") {
    return infer_reduction(g, n);
  }
  if (base == "embedding") return infer_embedding(g, n);
  if (base == "scaled_dot_product_attention") return infer_sdpa(g, n);
  return infer_shape_op(g, n, base);
}

}  // namespace alpa::ir
