// This file implements scaled_dot_product_attention:
// q [..., s, d], k [..., t, d], v [..., t, e] -> [..., s, e]. Batch and head
// dims split freely (Megatron splits heads; grouped key/value heads split
// with them); queries s may split unless the mask is causal; the key
// length t and head dim d stay whole, since softmax needs complete scores.
#include <algorithm>

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
  // Keys and values: a batch dim of q's size, or 1 (broadcast), as usual.
  // A smaller dim that divides q's is grouped-query attention (enable_gqa):
  // q head h reads key head h / (Hq / Hkv), so a split of q's heads is right
  // only with the same split of the key heads (contiguous groups stay
  // together); the one letter makes the split divide both.
  auto with_batch = [&](size_t i, std::string tail) {
    const ir::Shape& shape = g.meta(n.inputs[i]).shape;
    ir::Shape b(shape.begin(), shape.end() - 2);
    std::string letters = broadcast_letters(b, batch_shape, batch);
    const size_t offset = batch_shape.size() - std::min(b.size(), batch_shape.size());
    for (size_t k = 0; k < b.size() && k + offset < batch_shape.size(); ++k) {
      const int64_t full = batch_shape[k + offset];
      if (b[k] > 1 && b[k] < full && full % b[k] == 0) letters[k] = batch[k + offset];
    }
    return letters + tail;
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
  // A causal mask is applied from each query's position: split queries
  // would each see the mask of the first rows, so s stays whole.
  if (n.attr_int("is_causal", 0) != 0) sig.unsplittable.push_back(s);
  sig.outputs = {batch + s + e};
  for (size_t i = 1; i < n.outputs.size(); ++i) sig.outputs.push_back(std::string(n.outputs[i].rank(), kNoSplit));
  return sig;
}

}  // namespace

void register_attention_rules(RuleTable& t) {
  t["scaled_dot_product_attention"] = sdpa;
}

}  // namespace alpa::sharding
