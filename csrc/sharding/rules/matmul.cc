// This file implements the matmul-family rules through einsum signatures:
// mm "mk,kn->mn", bmm "bmk,bkn->bmn", addmm/baddbmm (bias broadcast onto
// the product), linear "...k,nk->...n", matmul with broadcast batch dims, and
// einsum itself. Splitting k (contracted) gives partial sums: Megatron's
// row-parallel layer; splitting n gives the column-parallel layer.
//
// Grouped matmul of mixture-of-experts layers (transformers'
// grouped_mm_fallback, aten._grouped_mm): rows of x [t, k] sorted by expert,
// expert weights w [e, k, n], offs [e] the cumulative row count per expert:
// "tk,ekn,e->tn". Splitting e is expert parallelism: each device holds E/n
// experts and computes the rows routed to them, zeros elsewhere, so the
// output is a sum over devices (forward all-reduce; by duality x's gradient
// is all-reduced in backward). t stays whole (which rows belong to which
// expert is known only at run time) and offs stays replicated.
#include <map>

#include "ir/op_name.h"
#include "sharding/op_signature.h"

namespace alpa::sharding {
namespace {

using ir::Graph;
using ir::Node;

const ir::Shape& shape_of(const Graph& g, const Node& n, size_t i) {
  return g.meta(n.inputs.at(i)).shape;
}

std::optional<OpSignature> mm_like(const Graph& g, const Node& n, bool batched, bool has_bias) {
  size_t a = has_bias ? 1 : 0;
  if (n.inputs.size() != a + 2) return std::nullopt;
  std::string out = batched ? "bmn" : "mn";
  OpSignature sig;
  if (has_bias) {
    sig.inputs.push_back(broadcast_letters(shape_of(g, n, 0), n.outputs[0].shape, out));
    sig.addends = {0};
  }
  sig.inputs.push_back(batched ? "bmk" : "mk");
  sig.inputs.push_back(batched ? "bkn" : "kn");
  sig.outputs = {out};
  return sig;
}

std::optional<OpSignature> linear(const Graph& g, const Node& n) {
  const ir::Shape& x = shape_of(g, n, 0);
  if (x.empty()) return std::nullopt;
  LetterPool pool;
  std::string batch = pool.fresh(static_cast<int64_t>(x.size()) - 1);
  char k = pool.next(), o = pool.next();
  OpSignature sig;
  sig.inputs = {batch + k, std::string{o, k}};
  if (n.inputs.size() == 3) {
    sig.inputs.push_back(broadcast_letters(shape_of(g, n, 2), n.outputs[0].shape, batch + o));
    sig.addends = {2};
  }
  sig.outputs = {batch + o};
  return sig;
}

std::optional<OpSignature> matmul(const Graph& g, const Node& n) {
  const ir::Shape& a = shape_of(g, n, 0);
  const ir::Shape& b = shape_of(g, n, 1);
  if (a.empty() || b.empty()) return std::nullopt;
  LetterPool pool;
  char m = pool.next(), k = pool.next(), o = pool.next();
  const ir::Shape& out = n.outputs[0].shape;
  size_t out_batch = out.size() - (a.size() > 1 ? 1 : 0) - (b.size() > 1 ? 1 : 0);
  std::string batch = pool.fresh(static_cast<int64_t>(out_batch));
  ir::Shape batch_shape(out.begin(), out.begin() + static_cast<long>(out_batch));
  auto operand = [&](const ir::Shape& s, bool left) {
    if (s.size() == 1) return std::string{k};
    ir::Shape bs(s.begin(), s.end() - 2);
    std::string tail = left ? std::string{m, k} : std::string{k, o};
    return broadcast_letters(bs, batch_shape, batch) + tail;
  };
  OpSignature sig;
  sig.inputs = {operand(a, true), operand(b, false)};
  std::string o_letters = batch;
  if (a.size() > 1) o_letters += m;
  if (b.size() > 1) o_letters += o;
  sig.outputs = {o_letters};
  return sig;
}

std::optional<OpSignature> einsum(const Graph& g, const Node& n) {
  const ir::Attr* eq = n.attr("equation");
  const auto* equation = eq ? std::get_if<std::string>(eq) : nullptr;
  if (equation == nullptr || equation->find("...") != std::string::npos) return std::nullopt;
  size_t arrow = equation->find("->");
  if (arrow == std::string::npos) return std::nullopt;
  std::string lhs = equation->substr(0, arrow), rhs = equation->substr(arrow + 2);
  OpSignature sig;
  std::string cur;
  std::map<char, int64_t> sizes;
  for (char c : lhs + ",") {
    if (c == ' ') continue;
    if (c != ',') {
      cur += c;
      continue;
    }
    size_t i = sig.inputs.size();
    if (i >= n.inputs.size() || cur.size() != shape_of(g, n, i).size()) return std::nullopt;
    for (size_t d = 0; d < cur.size(); ++d) {
      int64_t s = shape_of(g, n, i)[d];
      if (s != 1) sizes[cur[d]] = s;
    }
    sig.inputs.push_back(cur);
    cur.clear();
  }
  std::string out;
  for (char c : rhs) if (c != ' ') out += c;
  // Size-1 operand dims broadcast against a larger size never split.
  for (size_t i = 0; i < sig.inputs.size(); ++i) {
    for (size_t d = 0; d < sig.inputs[i].size(); ++d) {
      char c = sig.inputs[i][d];
      if (shape_of(g, n, i)[d] == 1 && sizes.count(c)) sig.inputs[i][d] = kNoSplit;
    }
  }
  sig.outputs = {out};
  if (sig.inputs.size() != n.inputs.size() || out.size() != n.outputs[0].shape.size()) return std::nullopt;
  return sig;
}

std::optional<OpSignature> grouped_mm(const Graph& g, const Node& n) {
  if (n.inputs.size() != 3 || shape_of(g, n, 0).size() != 2 || shape_of(g, n, 1).size() != 3 ||
      shape_of(g, n, 2).size() != 1 || n.outputs.size() != 1) {
    return std::nullopt;
  }
  OpSignature sig;
  sig.inputs = {"tk", "ekn", std::string(1, kNoSplit)};
  sig.outputs = {"tn"};
  sig.unsplittable = "t";
  return sig;
}

}  // namespace

void register_matmul_rules(RuleTable& t) {
  t["mm"] = [](const Graph& g, const Node& n) { return mm_like(g, n, false, false); };
  t["addmm"] = [](const Graph& g, const Node& n) { return mm_like(g, n, false, true); };
  t["bmm"] = [](const Graph& g, const Node& n) { return mm_like(g, n, true, false); };
  t["baddbmm"] = [](const Graph& g, const Node& n) { return mm_like(g, n, true, true); };
  t["linear"] = linear;
  t["matmul"] = matmul;
  t["einsum"] = einsum;
  t["grouped_mm_fallback"] = grouped_mm;
  t["_grouped_mm"] = grouped_mm;
}

}  // namespace alpa::sharding
