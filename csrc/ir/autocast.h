// This file implements the dtypes a graph's values take under mixed
// precision (torch.autocast with a 16-bit dtype, fp32 master weights), so
// the cost model prices bytes, collectives and FLOP/s of the values a
// mixed-precision step really moves:
//
//   parameters, buffers, inputs      keep their dtype (fp32 master weights)
//   matmul, convolution, attention   the 16-bit dtype (autocast casts inputs)
//   norms, softmax, losses, sum,     fp32 (autocast's fp32 list)
//   exp/log/pow/rsqrt...
//   any other op                     the widest floating dtype of its
//                                    floating inputs (type promotion)
//
// Non-floating values never change. The graph's structure (nodes, ids,
// names, edges) is the input's, so a plan made on the result applies to the
// input graph node for node.
#pragma once

#include "ir/dtype.h"
#include "ir/graph.h"

namespace alpa::ir {

/// `graph` with each op output's dtype as autocast to `half` (kBFloat16 or
/// kFloat16) would make it. `half` = kFloat32 returns the graph unchanged.
Graph autocast_graph(const Graph& graph, DType half);

}  // namespace alpa::ir
