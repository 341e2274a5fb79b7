// This file implements the rule of a whole mixture-of-experts layer,
// alpa.moe_experts (capture keeps transformers' experts modules as one op,
// see alpa_torch/graph/experts.py):
//
//   moe_experts(hidden [t, h], top_k_index [t, k], top_k_weights [t, k],
//               params... [e, ...]) -> [t, h]
//
// Each token is sent to the k experts it was routed to and comes back as the
// weighted sum of their outputs. Three ways to split it, all from one
// signature {"t1", "t1", "t1", "e1..."} -> {"t1"} with token exchange "te":
// - t alone: data parallel (every device holds every expert; parameter
//   gradients are all-reduced);
// - e alone: each device computes its experts' rows for every token, so the
//   output is a partial sum;
// - t and e on one axis: expert parallelism (GShard, Alpa's MoE): tokens
//   stay split, each routed row moves to its expert's device and back by
//   all-to-all, and nothing is reduced.
// The hidden dim and the experts' inner dims stay whole.
#include "ir/op_name.h"
#include "sharding/op_signature.h"

namespace alpa::sharding {
namespace {

using ir::Graph;
using ir::Node;

std::optional<OpSignature> moe_experts(const Graph& g, const Node& n) {
  if (n.inputs.size() < 4 || n.outputs.size() != 1) return std::nullopt;
  const ir::Shape& hidden = g.meta(n.inputs[0]).shape;
  const ir::Shape& index = g.meta(n.inputs[1]).shape;
  if (hidden.size() != 2 || index.size() != 2 || g.meta(n.inputs[2]).shape != index ||
      index[0] != hidden[0] || n.outputs[0].shape != hidden) {
    return std::nullopt;
  }
  OpSignature sig;
  const std::string rows = std::string("t") + kNoSplit;
  sig.inputs = {rows, rows, rows};
  int64_t experts = -1;
  for (size_t i = 3; i < n.inputs.size(); ++i) {
    const ir::Shape& p = g.meta(n.inputs[i]).shape;
    if (p.empty() || (experts >= 0 && p[0] != experts)) return std::nullopt;
    experts = p[0];
    sig.inputs.push_back("e" + std::string(p.size() - 1, kNoSplit));
  }
  sig.outputs = {rows};
  sig.exchange = "te";
  sig.exchange_rows = static_cast<double>(index[1]);
  sig.exchange_input = 0;
  return sig;
}

}  // namespace

void register_expert_rules(RuleTable& t) { t["moe_experts"] = moe_experts; }

}  // namespace alpa::sharding
