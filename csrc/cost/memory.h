// This file implements the per-device memory model of one training step:
// parameters with their gradients and optimizer state, inputs and buffers,
// and the activations autograd keeps for backward. Views keep no memory of
// their own. All in bytes per device.
#pragma once

#include "cost/communication.h"
#include "ir/graph.h"

namespace alpa::cost {

/// Bytes per device that `node` holds for a whole step when each of its
/// outputs takes `local_output_bytes[i]` bytes per device.
/// `keeps_activation`: the op is differentiated, so its outputs are saved.
double node_memory(const ir::Node& node, const std::vector<double>& local_output_bytes,
                   bool keeps_activation, const CostOptions& options);

/// Whether an op's output aliases its input (view-like: no new memory).
bool is_view_op(const std::string& op);

}  // namespace alpa::cost
