// This file implements the graph verifier: structural invariants (ids,
// names, topological order, value references, roles; a placeholder is one
// tensor; an op fits its tensor schema, ir/op_schema.h), bounded tensor
// ranks and sizes, and shape consistency of every op that shape inference
// knows. A graph that verifies can be planned without crashing the planner.
#pragma once

#include "core/status.h"
#include "ir/graph.h"

namespace alpa::ir {

/// OK, or InvalidArgument naming the first offending node and the fix.
core::Status verify_graph(const Graph& graph);

}  // namespace alpa::ir
