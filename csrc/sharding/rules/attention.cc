// This file implements scaled_dot_product_attention:
// q [..., s, d], k [..., t, d], v [..., t, e] -> [..., s, e]. Batch and head
// dims split freely (Megatron splits heads); queries s may split; the key
// length t and head dim d stay whole, since softmax needs complete scores.
#include "sharding/op_signature.h"

namespace alpa::sharding {
namespace {

std::optional<OpSignature> sdpa(const ir::Graph& g, const ir::Node& n) {
  if (n.inputs.size() < 3) return std::nullopt;
  const ir::Shape& q = g.meta(n.inputs[0]).shape;
  if (q.size() < 2) return std::nullopt;
  LetterPool pool;
  std::string batch = pool.fresh(static_cast<int64_t>(q.size()) - 2);
  char s = pool.next(), d = pool.next(), t = pool.next(), e = pool.next();
  ir::Shape batch_shape(q.begin(), q.end() - 2);
  auto with_batch = [&](size_t i, std::string tail) {
    const ir::Shape& shape = g.meta(n.inputs[i]).shape;
    ir::Shape b(shape.begin(), shape.end() - 2);
    return broadcast_letters(b, batch_shape, batch) + tail;
  };
  OpSignature sig;
  sig.inputs = {batch + s + d, with_batch(1, {t, d}), with_batch(2, {t, e})};
  for (size_t i = 3; i < n.inputs.size(); ++i) {  // attention mask [..., s, t]
    ir::Shape full = batch_shape;
    full.push_back(q[q.size() - 2]);
    full.push_back(g.meta(n.inputs[1]).shape.end()[-2]);
    sig.inputs.push_back(broadcast_letters(g.meta(n.inputs[i]).shape, full, batch + s + t));
  }
  sig.unsplittable = {t, d};
  sig.outputs = {batch + s + e};
  for (size_t i = 1; i < n.outputs.size(); ++i) sig.outputs.push_back(std::string(n.outputs[i].rank(), kNoSplit));
  return sig;
}

}  // namespace

void register_attention_rules(RuleTable& t) {
  t["scaled_dot_product_attention"] = sdpa;
}

}  // namespace alpa::sharding
