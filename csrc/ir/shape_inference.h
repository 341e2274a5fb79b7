// This file implements output-shape inference for the common ATen ops. The
// verifier uses it to reject graphs whose recorded shapes are inconsistent,
// and GraphBuilder uses it so C++ users need not spell out every shape.
#pragma once

#include <optional>
#include <vector>

#include "core/status.h"
#include "ir/graph.h"

namespace alpa::ir {

/// Output metas of `node` computed from its input metas and attributes.
/// nullopt when the op is not known to the inference (that is no error);
/// an InvalidArgument status when the inputs are inconsistent (e.g. mm of
/// [8,16] and [32,4]), naming the node and the shapes.
core::StatusOr<std::optional<std::vector<TensorMeta>>> infer_output_meta(
    const Graph& graph, const Node& node);

/// Broadcast of two shapes (NumPy rules); error when incompatible.
core::StatusOr<Shape> broadcast_shapes(const Shape& a, const Shape& b);

/// Normalizes a possibly negative dim into [0, rank) (a 0-dim tensor takes 0
/// or -1, as in ATen, both 0); error when out of range.
core::StatusOr<int64_t> normalize_dim(int64_t dim, int64_t rank);

}  // namespace alpa::ir
