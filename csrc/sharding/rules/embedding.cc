// This file implements embedding and gather rules. Embedding is
// "vd,(batch)->(batch)d" with the vocabulary v contracted: a vocabulary-split
// table gives each device the rows it owns (others zero) and the partial
// results are all-reduced — Megatron's vocab-parallel embedding. gather and
// index_select keep the indexed dim whole.
#include "sharding/op_signature.h"

namespace alpa::sharding {
namespace {

using ir::Graph;
using ir::Node;

std::optional<OpSignature> embedding(const Graph& g, const Node& n) {
  const ir::Shape& idx = g.meta(n.inputs.at(1)).shape;
  LetterPool pool;
  char v = pool.next(), d = pool.next();
  std::string batch = pool.fresh(static_cast<int64_t>(idx.size()));
  OpSignature sig;
  sig.inputs = {std::string{v, d}, batch};
  sig.outputs = {batch + d};
  return sig;
}

// gather(self, dim, index): out has index's shape.
std::optional<OpSignature> gather(const Graph& g, const Node& n) {
  const ir::Shape& self = g.meta(n.inputs.at(0)).shape;
  const ir::Shape& index = g.meta(n.inputs.at(1)).shape;
  if (self.size() != index.size()) return std::nullopt;
  if (self.empty()) return identity_signature(g, n);  // scalars: no dim to index
  LetterPool pool;
  std::string letters = pool.fresh(static_cast<int64_t>(self.size()));
  int64_t dim = dim_attr(n, "dim", static_cast<int64_t>(self.size()), 0);
  std::string self_l = letters, index_l = letters;
  for (size_t i = 0; i < self.size(); ++i) {
    if (static_cast<int64_t>(i) == dim || self[i] != index[i]) {
      self_l[i] = kNoSplit;
      index_l[i] = index[i] == self[i] ? letters[i] : kNoSplit;
    }
  }
  self_l[static_cast<size_t>(dim)] = kNoSplit;
  OpSignature sig;
  sig.inputs = {self_l, index_l};
  sig.outputs = {index_l};
  return sig;
}

// index_select(self, dim, index [k]) -> self with dim resized to k.
std::optional<OpSignature> index_select(const Graph& g, const Node& n) {
  const ir::Shape& self = g.meta(n.inputs.at(0)).shape;
  if (self.empty()) return identity_signature(g, n);  // a scalar self: no dim to index
  LetterPool pool;
  std::string letters = pool.fresh(static_cast<int64_t>(self.size()));
  int64_t dim = dim_attr(n, "dim", static_cast<int64_t>(self.size()), 0);
  letters[static_cast<size_t>(dim)] = kNoSplit;
  OpSignature sig;
  sig.inputs = {letters, std::string(g.meta(n.inputs.at(1)).shape.size(), kNoSplit)};
  sig.outputs = {letters};
  return sig;
}

}  // namespace

void register_embedding_rules(RuleTable& t) {
  t["embedding"] = embedding;
  t["gather"] = gather;
  t["index_select"] = index_select;
}

}  // namespace alpa::sharding
