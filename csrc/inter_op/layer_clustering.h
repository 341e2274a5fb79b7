// This file implements layer clustering (Alpa §5.1, "operator clustering"):
// the op nodes of a graph, in graph order, are cut into L contiguous layers,
// the units the stage DP (Alpa §5.2) assigns to pipeline stages.
//
//   ops:    o0 o1 o2 | o3 o4 o5 o6 | o7 o8          L = 3
//   layer:   0  0  0 |  1  1  1  1 |  2  2
//
// Objective, lexicographic:
//   1. minimize the largest number of bytes flowing INTO a layer (Alpa §5.1);
//   2. among those, balance FLOPs: minimize Σ_l FLOPs(l)² (the variance of
//      the layer FLOPs, as their sum is fixed);
//   3. among those, minimize the sum over layers of the bytes flowing in;
//   4. among those, prefer the earliest boundaries (deterministic).
// Why balance before the byte sum: in a transformer, cutting after a block's
// attention residual moves as many bytes as cutting at the block boundary,
// but a layer holding only an MLP half does not re-read the attention mask;
// the byte sum alone therefore alternated 1.5-block and 0.5-block layers to
// save a few mask reads. With balance first, equal blocks become equal
// layers (12 blocks, L = 12, 6 or 4: whole blocks per layer), while the
// bytes still decide between equally balanced splits. The price: when one
// unavoidable layer sets a high max (criterion 1), the others may cut
// anywhere under that max for the sake of balance.
// FLOPs in criterion 2 are counted in integer units (the graph's total
// scaled by a power of two to at most 2^29 units, each op rounded), so equal
// blocks weigh exactly the same and sums are exact.
// Bytes into a layer: every distinct value (node, output) the layer's ops
// read that is produced by an op of an earlier layer, or is a user input
// (NodeKind::kInput); each counted once per layer. Parameters, buffers and
// constants are not counted: they live with the stage that holds the layer.
//
// Constraints:
//   - FLOPs of each layer ≤ (1 + eps) · total_flops / L (compared with a
//     relative tolerance of 1e-9 so that equal blocks fit with eps = 0);
//   - each layer holds at least one op with FLOPs > 0 (when the graph has
//     any): FLOP-less ops such as views and embedding lookups never form a
//     layer of their own; a FLOP-less tail joins the last layer, a FLOP-less
//     head the first one, and FLOP-less ops in between go where the bytes
//     objective (then the earliest-boundary rule) puts them.
//
// Placeholders join the layer of their first user (smallest op node id);
// one read by several layers (tied embeddings) is recorded in
// LayerClustering::shared. Unused placeholders join layer 0.
//
// Cost: one pass enumerates every FLOP-feasible segment from each start and
// extends its end one op at a time, adding each newly read outside value
// once (a stamp array); three passes (min-max forward DP over (end, layers),
// backward DP of criteria 2-3 under the optimal max, reconstruction taking
// the earliest optimal end) cost O(#feasible segments · (L + reads per op)).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "ir/graph.h"

namespace alpa::inter_op {

struct LayerClusteringOptions {
  /// Number of layers L; 0 picks it with auto_num_layers(graph,
  /// max_auto_layers), lowered to the largest L whose FLOP bound some split
  /// meets (so an automatic L never fails on the bound). An explicit L must
  /// not exceed the number of op nodes with FLOPs > 0.
  int64_t num_layers = 0;
  /// FLOP imbalance: each layer holds ≤ (1 + eps) · total / L FLOPs; ≥ 0.
  double eps = 0.5;
  /// Cap on the automatically chosen L; ≥ 1.
  int64_t max_auto_layers = 16;
};

/// One layer: the op nodes with ids in [first_node, last_node] (the
/// placeholders in that range belong to whichever layer first reads them).
struct Layer {
  int64_t first_node = 0;   ///< node id of the layer's first op node
  int64_t last_node = 0;    ///< node id of its last op node (inclusive)
  int64_t num_ops = 0;      ///< op nodes in the layer
  double flops = 0;         ///< forward FLOPs of its op nodes
  int64_t input_bytes = 0;  ///< bytes flowing into the layer (see file header)
  friend bool operator==(const Layer& a, const Layer& b) {
    return a.first_node == b.first_node && a.last_node == b.last_node &&
           a.num_ops == b.num_ops && a.flops == b.flops &&
           a.input_bytes == b.input_bytes;
  }
};

/// A placeholder (parameter, buffer, constant or input) read by ops of more
/// than one layer; it is assigned to the first of them.
struct SharedPlaceholder {
  int64_t node = 0;             ///< node id of the placeholder
  std::vector<int64_t> layers;  ///< every layer reading it, ascending (≥ 2)
  friend bool operator==(const SharedPlaceholder& a, const SharedPlaceholder& b) {
    return a.node == b.node && a.layers == b.layers;
  }
};

struct LayerClustering {
  /// Layer of every node of the graph, placeholders included.
  std::vector<int64_t> layer_of_node;
  std::vector<Layer> layers;
  std::vector<SharedPlaceholder> shared;

  int64_t num_layers() const { return static_cast<int64_t>(layers.size()); }
  /// Largest Layer::input_bytes (the objective), in bytes.
  int64_t max_input_bytes() const;
  /// Sum of Layer::input_bytes (criterion 3), in bytes.
  int64_t total_input_bytes() const;

  /// Text form, read back by parse(). Nodes inside a layer's node range
  /// belong to it unless listed under another layer's "also nodes"
  /// (placeholders outside their layer's range):
  ///   layer_clustering: 2 layers, 9 nodes
  ///   layer 0: nodes 3..5, 3 ops, 1200 flops, 4096 bytes in, also nodes 0,1,2
  ///   layer 1: nodes 6..8, 3 ops, 1200 flops, 2048 bytes in
  ///   shared node 1: layers 0,1
  std::string to_string() const;
  static core::StatusOr<LayerClustering> parse(std::string_view text);

  friend bool operator==(const LayerClustering& a, const LayerClustering& b) {
    return a.layer_of_node == b.layer_of_node && a.layers == b.layers &&
           a.shared == b.shared;
  }
};

/// Clusters the op nodes of `graph` (topological order) into layers; see the
/// file header for the objective and constraints.
/// Errors: InvalidArgument for bad options, a graph without op nodes, an
/// input that refers to a later node, negative or non-finite FLOPs, or more
/// layers than op nodes with FLOPs > 0; Infeasible when no segmentation
/// meets the FLOP bound (the message names the op with the largest FLOP
/// share and the largest L and the smallest eps that would work).
core::StatusOr<LayerClustering> cluster_layers(const ir::Graph& graph,
                                               const LayerClusteringOptions& options);

/// The repeated blocks of a model, found from its op nodes' module FQNs.
struct RepeatedBlocks {
  std::string prefix;  ///< "transformer.h" for transformer.h.0 .. .11
  int64_t count = 0;   ///< distinct sibling indices; 0 when none found
};

/// For every op node's module path, the part before its first integer
/// component is a container ("transformer.h.3.attn" → "transformer.h",
/// index 3). The container with the most distinct indices wins (ties: the
/// shorter prefix, then the lexicographically smaller one); containers
/// nested inside a repeated block ("h.0.mlp.experts.5") do not count, so an
/// MoE's experts never outnumber its blocks. Fewer than 2 siblings → none.
RepeatedBlocks find_repeated_blocks(const ir::Graph& graph);

/// The automatic L: the repeated-block count when the model has ≥ 2 blocks,
/// else 8; capped at `max_layers` and at the number of op nodes with
/// FLOPs > 0 (every layer needs one), and at least 1.
int64_t auto_num_layers(const ir::Graph& graph, int64_t max_layers);

}  // namespace alpa::inter_op
