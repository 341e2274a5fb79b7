// This file implements the memory model.
#include "cost/memory.h"

#include <set>
#include <string>

#include "ir/op_name.h"

namespace alpa::cost {

bool is_view_op(const std::string& op) {
  static const std::set<std::string, std::less<>> kViews = {
      "view", "reshape", "_unsafe_view", "permute", "transpose", "t", "unsqueeze",
      "squeeze", "expand", "alias", "detach", "slice", "select", "split", "chunk",
      "unbind", "flatten", "unflatten", "as_strided", "view_as", "expand_as", "narrow",
      "split_with_sizes", "contiguous"};
  return kViews.count(ir::op_base_name(op)) > 0;
}

double node_memory(const ir::Node& node, const std::vector<double>& local_output_bytes,
                   bool keeps_activation, const CostOptions& options) {
  double total = 0;
  for (double b : local_output_bytes) total += b;
  switch (node.kind) {
    case ir::NodeKind::kParameter:
      // parameter + gradient + optimizer state
      return node.requires_grad ? total * (2 + options.optimizer_state_factor) : total;
    case ir::NodeKind::kInput:
    case ir::NodeKind::kBuffer:
    case ir::NodeKind::kConstant:
      return total;
    case ir::NodeKind::kOp:
      if (!keeps_activation || is_view_op(node.op)) return 0;
      return total;
  }
  return total;
}

}  // namespace alpa::cost
