// This file implements the human-readable text form of a Graph, one node
// per line, which parses back to an equal Graph:
//
//   graph "mlp" {
//     %x: f32[8,16] = input "x"
//     %fc1.weight: f32[32,16] = parameter "fc1.weight" [requires_grad=true]
//     %linear: f32[8,32] = aten.linear.default(%x, %fc1.weight)
//         {input=$0, weight=$1, bias=none} [flops=8192.0, module="fc1"]
//     %ln: (f32[8,32], f32[8,1]) = ...        multi-output; read as %ln#1
//     output %linear
//     output %add_3 mutates "bn.running_mean"
//   }
//
// (Each node is on one line; the wrap above is for the comment only.)
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"
#include "ir/graph.h"

namespace alpa::ir {

std::string graph_to_text(const Graph& graph);
/// Parses and verifies. Errors carry the line and column.
core::StatusOr<Graph> parse_graph_text(std::string_view text);

}  // namespace alpa::ir
