// This file implements the versioned JSON form of a Graph:
//   {"format": "alpa_torch.graph", "version": 1, "name": ..., "nodes": [...],
//    "outputs": [...]}
// graph_from_json(graph_to_json(g)) == g exactly (doubles included).
#pragma once

#include <string>
#include <string_view>

#include "core/json.h"
#include "ir/graph.h"

namespace alpa::ir {

inline constexpr const char* kGraphFormatName = "alpa_torch.graph";

core::Json graph_to_json(const Graph& graph);
/// Structural decode only; run verify_graph() to check semantics.
core::StatusOr<Graph> graph_from_json(const core::Json& json);
/// Parses text, decodes, and verifies.
core::StatusOr<Graph> parse_graph_json(std::string_view text);

}  // namespace alpa::ir
