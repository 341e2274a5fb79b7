// This file implements rules for ops that move data without arithmetic:
// view/reshape, permute/transpose, unsqueeze/squeeze, expand, slice/select,
// cat/stack, split/chunk. A reshape keeps a split only on the leading dim of
// each group of dims it merges or splits:
//
//   [b, s, h] -> [b*s, h]:   b ~ (b*s)  (a split of b is a split of b*s)
//                            s stays whole, h ~ h
#include <vector>

#include "ir/op_name.h"
#include "sharding/op_signature.h"

namespace alpa::sharding {
namespace {

using ir::Graph;
using ir::Node;

// Letters for in/out of a reshape: dims grouped by equal running products;
// the leading non-1 dims of each group share a letter, the rest never split.
std::optional<OpSignature> reshape_between(const ir::Shape& in, const ir::Shape& out) {
  LetterPool pool;
  std::string li(in.size(), kNoSplit), lo(out.size(), kNoSplit);
  size_t i = 0, o = 0;
  while (i < in.size() || o < out.size()) {
    while (i < in.size() && in[i] == 1) ++i;
    while (o < out.size() && out[o] == 1) ++o;
    if (i >= in.size() || o >= out.size()) break;
    size_t gi = i, go = o;
    int64_t pi = in[i++], po = out[o++];
    while (pi != po) {
      if (pi < po) {
        if (i >= in.size()) return std::nullopt;
        pi *= in[i++];
      } else {
        if (o >= out.size()) return std::nullopt;
        po *= out[o++];
      }
    }
    char c = pool.next();
    li[gi] = c;
    lo[go] = c;
  }
  OpSignature sig;
  sig.inputs = {li};
  sig.outputs = {lo};
  return sig;
}

// view_as / reshape_as / expand_as(self, other): `other` only lends the
// output's shape, so it is laid out as the output.
std::optional<OpSignature> with_shape_operand(std::optional<OpSignature> sig, const Graph& g,
                                              const Node& n) {
  for (size_t i = 1; sig && i < n.inputs.size(); ++i) {
    const ir::Shape& s = g.meta(n.inputs[i]).shape;
    sig->inputs.push_back(s == n.outputs.at(0).shape ? sig->outputs[0]
                                                     : std::string(s.size(), kNoSplit));
  }
  return sig;
}

std::optional<OpSignature> reshape(const Graph& g, const Node& n) {
  return with_shape_operand(
      reshape_between(g.meta(n.inputs.at(0)).shape, n.outputs.at(0).shape), g, n);
}

std::optional<OpSignature> permute(const Graph& g, const Node& n) {
  int64_t rank = g.meta(n.inputs.at(0)).rank();
  if (rank == 0) return identity_signature(g, n);  // a scalar: nothing to move
  LetterPool pool;
  std::string in = pool.fresh(rank), out = in;
  std::string_view base = ir::op_base_name(n.op);
  if (base == "permute") {
    auto dims = n.attr_ints("dims");
    if (!dims || static_cast<int64_t>(dims->size()) != rank) return std::nullopt;
    for (int64_t k = 0; k < rank; ++k) {
      int64_t d = (*dims)[static_cast<size_t>(k)];
      out[static_cast<size_t>(k)] = in[static_cast<size_t>(d < 0 ? d + rank : d)];
    }
  } else if (base == "t") {
    out = std::string(in.rbegin(), in.rend());
  } else {
    int64_t d0 = dim_attr(n, "dim0", rank, 0), d1 = dim_attr(n, "dim1", rank, 0);
    std::swap(out[static_cast<size_t>(d0)], out[static_cast<size_t>(d1)]);
  }
  OpSignature sig;
  sig.inputs = {in};
  sig.outputs = {out};
  return sig;
}

// expand: input dims of size 1 that grow are fresh (unsplit) in the input.
std::optional<OpSignature> expand(const Graph& g, const Node& n) {
  const ir::Shape& in = g.meta(n.inputs.at(0)).shape;
  const ir::Shape& out = n.outputs.at(0).shape;
  LetterPool pool;
  std::string lo = pool.fresh(static_cast<int64_t>(out.size()));
  OpSignature sig;
  sig.inputs = {broadcast_letters(in, out, lo)};
  sig.outputs = {lo};
  return with_shape_operand(sig, g, n);
}

// Ops that keep every dim but one whole-dim `dim` (slice, cat, split...).
// `same_rank` outputs copy the input letters with `dim` never split.
std::optional<OpSignature> along(const Graph& g, const Node& n, bool removes_dim) {
  int64_t rank = g.meta(n.inputs.at(0)).rank();
  if (rank == 0) return identity_signature(g, n);  // roll/flip of a scalar
  LetterPool pool;
  std::string letters = pool.fresh(rank);
  int64_t d = dim_attr(n, "dim", rank, 0);
  letters[static_cast<size_t>(d)] = kNoSplit;
  OpSignature sig;
  for (const ir::ValueRef& v : n.inputs) {
    sig.inputs.push_back(g.meta(v).rank() == rank ? letters : std::string(g.meta(v).rank(), kNoSplit));
  }
  std::string out = letters;
  if (removes_dim) out.erase(static_cast<size_t>(d), 1);
  for (const ir::TensorMeta& m : n.outputs) {
    sig.outputs.push_back(m.rank() == static_cast<int64_t>(out.size()) ? out : std::string(m.rank(), kNoSplit));
  }
  return sig;
}

// split/chunk into equal chunks: the dim splits when block-interleaved
// (S0x3 for three chunks); unequal chunks keep it whole.
std::optional<OpSignature> split(const Graph& g, const Node& n) {
  int64_t rank = g.meta(n.inputs.at(0)).rank();
  int64_t d = dim_attr(n, "dim", rank, 0);
  int64_t chunks = static_cast<int64_t>(n.outputs.size());
  bool equal = chunks > 1;
  for (const ir::TensorMeta& m : n.outputs) {
    equal = equal && m.rank() == rank &&
            m.shape[static_cast<size_t>(d)] * chunks == g.meta(n.inputs[0]).shape[static_cast<size_t>(d)];
  }
  if (!equal) return along(g, n, false);
  LetterPool pool;
  std::string letters = pool.fresh(rank);
  OpSignature sig;
  sig.inputs = {letters};
  sig.outputs = std::vector<std::string>(n.outputs.size(), letters);
  sig.input_blocks[letters[static_cast<size_t>(d)]] = chunks;
  return sig;
}

std::optional<OpSignature> slice(const Graph& g, const Node& n) {
  const ir::Shape& in = g.meta(n.inputs.at(0)).shape;
  if (in == n.outputs.at(0).shape) return identity_signature(g, n);  // a full slice
  return along(g, n, false);
}

std::optional<OpSignature> stack(const Graph& g, const Node& n) {
  int64_t rank = g.meta(n.inputs.at(0)).rank();
  LetterPool pool;
  std::string letters = pool.fresh(rank);
  int64_t d = dim_attr(n, "dim", rank + 1, 0);
  OpSignature sig;
  sig.inputs = std::vector<std::string>(n.inputs.size(), letters);
  std::string out = letters;
  out.insert(out.begin() + d, kNoSplit);
  sig.outputs = {out};
  return sig;
}

std::optional<OpSignature> unsqueeze(const Graph& g, const Node& n) {
  return reshape(g, n);  // inserting a size-1 dim is a reshape
}

}  // namespace

void register_shape_rules(RuleTable& t) {
  for (const char* op : {"view", "reshape", "_unsafe_view", "flatten", "unflatten",
                         "unsqueeze", "squeeze", "view_as", "reshape_as"}) {
    t[op] = reshape;
  }
  t["unsqueeze"] = unsqueeze;
  for (const char* op : {"permute", "transpose", "t", "swapaxes"}) t[op] = permute;
  t["expand"] = expand;
  t["expand_as"] = expand;
  t["slice"] = slice;
  t["narrow"] = slice;
  t["select"] = [](const Graph& g, const Node& n) { return along(g, n, true); };
  t["unbind"] = [](const Graph& g, const Node& n) { return along(g, n, true); };
  for (const char* op : {"split", "split_with_sizes", "chunk"}) t[op] = split;
  for (const char* op : {"cat", "concat", "tensor_split", "roll", "flip"}) {
    t[op] = [](const Graph& g, const Node& n) { return along(g, n, false); };
  }
  t["stack"] = stack;
}

}  // namespace alpa::sharding
