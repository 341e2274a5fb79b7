// This file implements the graph verifier: structural invariants
// (ids, names, topological order, value references, roles) and shape
// consistency of every op that shape inference knows.
#pragma once

#include "core/status.h"
#include "ir/graph.h"

namespace alpa::ir {

/// OK, or InvalidArgument naming the first offending node and the fix.
core::Status verify_graph(const Graph& graph);

}  // namespace alpa::ir
