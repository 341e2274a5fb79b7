// This file implements forward FLOP counts per node. Matmul-family,
// convolution and attention counts follow the multiply-add = 2 FLOPs
// convention of torch.utils.flop_counter (and of the Alpa paper), so a
// captured model's total over those nodes equals FlopCounterMode's.
#pragma once

#include <string_view>

#include "core/status.h"
#include "ir/graph.h"

namespace alpa::ir {

enum class OpCategory {
  kMatmul,       // mm, addmm, bmm, baddbmm, linear, matmul, einsum
  kConvolution,  // convolution, conv1d/2d/3d
  kAttention,    // scaled_dot_product_attention and its fused variants
  kNorm,         // layer/batch/group/rms norm
  kSoftmax,      // softmax, log_softmax
  kReduction,    // sum, mean, amax, ...
  kElementwise,  // unary and binary pointwise ops
  kData,         // views, copies, indexing: no arithmetic
};
const char* op_category_name(OpCategory category);
OpCategory op_category(std::string_view op);

/// Forward FLOPs of `node` from its input and output metas; 0 for data
/// movement. Error only when a matmul/conv node's shapes are unusable.
core::StatusOr<double> node_flops(const Graph& graph, const Node& node);

/// Sets Node::flops on every op node.
core::Status annotate_flops(Graph& graph);

}  // namespace alpa::ir
