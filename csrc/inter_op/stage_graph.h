// This file implements the graph of one pipeline stage: the op nodes of a
// contiguous range of layers cut out of the whole graph, with the values
// that cross the stage boundary turned into inputs and outputs.
//
//   whole graph, layers 0 | 1 | 2          stage graph of layer 1
//   x ─ op0 ─ h0 ─┬ op1 ─ h1 ─ op2 ─ y     h0(input) ─ op1 ─ h1(output)
//                 └─────────────┘          h0(input) ──────── h0(output)
//
// A value produced before the stage and read by it or by a later stage
// enters as a kInput node named after the value; a value the stage produces
// (or passes through) that a later stage or the graph's outputs read leaves
// as a user output. Values skipping a stage therefore travel through it, so
// every transfer is between neighbouring stages, which is what the
// schedules' SEND/RECV actions describe. User inputs count as produced
// before stage 0. Parameters, buffers and constants go to every stage that
// reads them (tied weights are shared, and their gradients summed, by the
// runtime).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "ir/graph.h"

namespace alpa::inter_op {

/// One value crossing a stage boundary.
struct BoundaryValue {
  std::string name;       ///< node name in the stage graph (kInput / output)
  std::string producer;   ///< producing node in the whole graph
  int64_t index = 0;      ///< output index of `producer`
  ir::TensorMeta meta;
  bool requires_grad = false;  ///< a gradient flows back across the boundary
};

struct StageGraph {
  ir::Graph graph;
  std::vector<BoundaryValue> inputs;   ///< received from the previous stage
  std::vector<BoundaryValue> outputs;  ///< sent to the next stage
  /// Indices into graph.outputs() of the whole graph's outputs this stage
  /// produces (the last stage: all user outputs and buffer mutations).
  std::vector<int64_t> graph_outputs;
};

/// Layer of every node: op nodes from `layer_of_node`, placeholders ignored.
/// Cuts layers [first_layer, last_layer] (inclusive) out of `graph`.
/// `num_layers`: layers in total (the last stage also emits the graph's
/// user outputs). Buffer mutations go with the stage that computes them.
core::StatusOr<StageGraph> extract_stage_graph(const ir::Graph& graph,
                                               const std::vector<int64_t>& layer_of_node,
                                               int64_t first_layer, int64_t last_layer,
                                               int64_t num_layers);

/// Whether each value of `graph` may carry a gradient: floating point and
/// computed from a parameter or an input that requires grad. Indexed
/// [node][output].
std::vector<std::vector<bool>> values_requiring_grad(const ir::Graph& graph);

/// Hash of a graph's structure: ops, attributes, shapes, dtypes, wiring and
/// node kinds, but not node names, FQNs or module paths — so the identical
/// blocks of a transformer hash equal and their intra-op costs are solved
/// once (Alpa §5.2 profiles every candidate stage; equal stages share).
uint64_t structural_hash(const ir::Graph& graph);

}  // namespace alpa::inter_op
