// This file implements the tensor schemas of the ATen ops the planner has
// rules for: which tensor inputs (Node::inputs, in argument order) an op
// takes, which tensors it returns (Node::outputs), and the rank relations
// the sharding rules rely on. The verifier rejects a node that does not fit,
// so rules and cost model, which index inputs and outputs by position and
// give every dim a letter, only ever see nodes shaped like their op.
//
//   linear       (input, weight, bias?) -> (out)
//   conv2d       (input[r], weight, bias?[1]) -> (out[r])
//   stack        (tensors+[r]) -> (out[r+1])
//   split        (self[>=1]) -> (outs+)
//
// '?' marks an optional tensor, '+' one or more; [r] a rank shared by every
// argument that names r, [1] a fixed rank, [r+1] one more than r, [>=1] at
// least that rank.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"
#include "ir/graph.h"

namespace alpa::ir {

/// The schema text of the op with base name `base` ("(input, weight,
/// bias?) -> (out)"), or nullopt for ops outside the table (the planner
/// keeps those replicated and reads any number of inputs and outputs).
std::optional<std::string> op_schema_text(std::string_view base);

/// OK when `node` (an op node whose inputs exist) fits its op's schema, or
/// its op has none; else InvalidArgument naming the node, the op, the
/// schema and what the node has instead.
core::Status check_op_schema(const Graph& graph, const Node& node);

}  // namespace alpa::ir
