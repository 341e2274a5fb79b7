// This file implements scaled_dot_product_attention:
// q [..., s, d], k [..., t, d], v [..., t, e] -> [..., s, e]. Batch and head
// dims split freely (Megatron splits heads); queries s may split unless
// the mask is causal; the key length t and head dim d stay whole, since
// softmax needs complete scores.
//
// Grouped-query attention (enable_gqa): q has H heads, k and v have H/r;
// query head h reads key head h / r. Contiguous chunks of the heads keep
// that map local (chunk i of q's heads reads chunk i of k's), so one letter
// labels both heads dims and the split must divide the key/value heads.
#include <variant>

#include "sharding/op_signature.h"

namespace alpa::sharding {
namespace {

// True when `n` is an enable_gqa attention whose k/v have fewer heads than q
// (dim -3), a whole fraction of them.
bool gqa_heads(const ir::Graph& g, const ir::Node& n, const ir::Shape& q) {
  const ir::Attr* flag = n.attr("enable_gqa");
  if (flag == nullptr || !std::holds_alternative<bool>(*flag) || !std::get<bool>(*flag)) return false;
  if (q.size() < 3) return false;
  int64_t hq = q.end()[-3];
  for (size_t i : {1, 2}) {
    const ir::Shape& kv = g.meta(n.inputs[i]).shape;
    if (kv.size() != q.size()) return false;
    int64_t hk = kv.end()[-3];
    if (hk == hq || hk <= 0 || hq % hk != 0) return false;
  }
  return true;
}

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
  if (gqa_heads(g, n, q)) {
    char heads = batch.back();
    for (size_t i : {1, 2}) sig.inputs[i][sig.inputs[i].size() - 3] = heads;
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
