// This file implements sharding strategies: for one node, a choice of specs
// for its inputs and outputs plus the collectives the op itself then needs
// (forward all-reduce of partial sums, backward all-reduce of partial
// gradients, synced statistics). Generated from the op's signature by
// assigning each mesh axis to at most one letter (both axes on one letter
// gives S01).
#pragma once

#include <string>
#include <vector>

#include "ir/graph.h"
#include "mesh/device_mesh.h"
#include "sharding/collective.h"
#include "sharding/op_signature.h"
#include "sharding/sharding_spec.h"

namespace alpa::sharding {

struct Strategy {
  std::string name;                  ///< e.g. "S0R = S0R x RR" (outputs = inputs)
  std::vector<ShardingSpec> inputs;  ///< required spec of each node input
  std::vector<ShardingSpec> outputs;
  /// Devices that share the op's arithmetic (product of the mesh axes that
  /// split some letter); the rest compute redundantly.
  int64_t parallel_degree = 1;
  std::vector<Collective> collectives;
};

/// All strategies of op `node` from `signature` on `mesh`, the replicated one
/// first. `input_needs_grad[i]`: node input i receives a gradient.
std::vector<Strategy> op_strategies(const ir::Graph& graph, const ir::Node& node,
                                    const OpSignature& signature,
                                    const mesh::DeviceMesh& mesh,
                                    const std::vector<bool>& input_needs_grad,
                                    const BlockHints& block_hints = {});

/// (dim size, chunks) of every equal split in the graph: the dims that may
/// be worth holding block-interleaved.
BlockHints collect_block_hints(const ir::Graph& graph);

/// Everything replicated (for ops without a rule).
Strategy replicated_strategy(const ir::Graph& graph, const ir::Node& node);

/// Strategies of a placeholder (input, parameter, buffer, constant): one per
/// valid spec of its tensor; a pinned spec (user override) gives just that.
std::vector<Strategy> placeholder_strategies(const ir::Node& node,
                                             const mesh::DeviceMesh& mesh,
                                             const BlockHints& block_hints = {});

/// "S0R = S0R x RR" naming used in plans and explain().
std::string strategy_name(const std::vector<ShardingSpec>& outputs,
                          const std::vector<ShardingSpec>& inputs);

}  // namespace alpa::sharding
