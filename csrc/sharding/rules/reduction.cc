// This file implements reduction rules. sum/mean over a split dim leave
// partial sums (all-reduced); max-like reductions, softmax, cumsum, topk and
// the class dim of losses keep their reduced dim whole.
#include <set>

#include "ir/op_name.h"
#include "sharding/op_signature.h"

namespace alpa::sharding {
namespace {

using ir::Graph;
using ir::Node;

// Reduced dims of `node` over an input of `rank` (all when "dim" is absent,
// None, or empty).
std::set<int64_t> reduced_dims(const Node& n, int64_t rank) {
  std::set<int64_t> dims;
  auto list = n.attr_ints("dim");
  if (!list || list->empty()) {
    for (int64_t d = 0; d < rank; ++d) dims.insert(d);
    return dims;
  }
  for (int64_t d : *list) dims.insert(d < 0 ? d + rank : d);
  return dims;
}

std::optional<OpSignature> reduce(const Graph& g, const Node& n, bool splittable) {
  const ir::Shape& in = g.meta(n.inputs.at(0)).shape;
  int64_t rank = static_cast<int64_t>(in.size());
  LetterPool pool;
  std::string letters = pool.fresh(rank);
  std::set<int64_t> dims = reduced_dims(n, rank);
  bool keepdim = n.attr_int("keepdim", 0) != 0;
  std::string out;
  OpSignature sig;
  for (int64_t d = 0; d < rank; ++d) {
    char c = letters[static_cast<size_t>(d)];
    if (!dims.count(d)) {
      out += c;
    } else {
      if (keepdim) out += kNoSplit;
      if (!splittable) sig.unsplittable += c;
    }
  }
  sig.inputs = {letters};
  for (size_t i = 0; i < n.outputs.size(); ++i) {
    if (n.outputs[i].shape.size() != out.size()) return std::nullopt;
    sig.outputs.push_back(out);
  }
  return sig;
}

// Ops whose letters are the input's, with `dim` kept whole (softmax, cumsum).
std::optional<OpSignature> along_dim(const Graph& g, const Node& n) {
  OpSignature sig = identity_signature(g, n);
  int64_t rank = g.meta(n.inputs.at(0)).rank();
  if (rank == 0) return sig;
  int64_t d = dim_attr(n, "dim", rank, rank - 1);
  sig.unsplittable += sig.inputs[0][static_cast<size_t>(d)];
  for (std::string& o : sig.outputs) {
    if (static_cast<int64_t>(o.size()) == rank) o[static_cast<size_t>(d)] = sig.inputs[0][static_cast<size_t>(d)];
  }
  return sig;
}

std::optional<OpSignature> topk(const Graph& g, const Node& n) {
  const ir::Shape& in = g.meta(n.inputs.at(0)).shape;
  int64_t rank = static_cast<int64_t>(in.size());
  if (rank == 0) return identity_signature(g, n);  // no dim to keep whole
  LetterPool pool;
  std::string letters = pool.fresh(rank);
  int64_t d = dim_attr(n, "dim", rank, rank - 1);
  OpSignature sig;
  sig.unsplittable += letters[static_cast<size_t>(d)];
  sig.inputs = {letters};
  std::string out = letters;
  out[static_cast<size_t>(d)] = kNoSplit;
  sig.outputs = std::vector<std::string>(n.outputs.size(), out);
  return sig;
}

// Losses: input [N, C, d...], target [N, d...]; C whole; batch dims summed
// (mean/sum) or kept (reduction none).
std::optional<OpSignature> loss(const Graph& g, const Node& n) {
  const ir::Shape& in = g.meta(n.inputs.at(0)).shape;
  if (in.empty()) return std::nullopt;
  LetterPool pool;
  std::string letters = pool.fresh(static_cast<int64_t>(in.size()));
  OpSignature sig;
  char cls = in.size() >= 2 ? letters[1] : letters[0];
  sig.unsplittable += cls;
  std::string batch;
  for (size_t i = 0; i < letters.size(); ++i) if (letters[i] != cls || in.size() == 1) batch += letters[i];
  if (in.size() == 1) batch.clear();
  sig.inputs.push_back(letters);
  for (size_t i = 1; i < n.inputs.size(); ++i) {
    const ir::Shape& s = g.meta(n.inputs[i]).shape;
    if (s.size() == batch.size()) sig.inputs.push_back(batch);
    else if (s.size() == 1 && in.size() >= 2 && s[0] == in[1]) sig.inputs.push_back(std::string{cls});  // class weights
    else sig.inputs.push_back(std::string(s.size(), kNoSplit));
  }
  for (const ir::TensorMeta& m : n.outputs) {
    sig.outputs.push_back(m.shape.size() == batch.size() ? batch : std::string(m.shape.size(), kNoSplit));
  }
  return sig;
}

}  // namespace

void register_reduction_rules(RuleTable& t) {
  for (const char* op : {"sum", "mean"}) {
    t[op] = [](const Graph& g, const Node& n) { return reduce(g, n, true); };
  }
  for (const char* op : {"amax", "amin", "max", "min", "var", "std", "var_mean", "prod",
                         "logsumexp", "norm", "argmax", "argmin", "all", "any"}) {
    t[op] = [](const Graph& g, const Node& n) { return reduce(g, n, false); };
  }
  // max.other / min.other(self, other): elementwise, like maximum/minimum.
  for (const char* op : {"max", "min"}) {
    t[op] = [](const Graph& g, const Node& n) {
      return n.inputs.size() == 2 ? std::optional<OpSignature>(identity_signature(g, n))
                                  : reduce(g, n, false);
    };
  }
  for (const char* op : {"softmax", "_softmax", "log_softmax", "_log_softmax", "cumsum",
                         "cumprod", "sort", "argsort", "diff"}) {
    t[op] = along_dim;
  }
  t["topk"] = topk;
  for (const char* op : {"cross_entropy_loss", "nll_loss", "nll_loss_forward",
                         "nll_loss2d_forward", "cross_entropy"}) {
    t[op] = loss;
  }
  t["mse_loss"] = [](const Graph& g, const Node& n) -> std::optional<OpSignature> {
    OpSignature sig = identity_signature(g, n);  // output scalar: letters all summed
    if (n.outputs[0].rank() == 0) sig.outputs = {""};
    return sig;
  };
}

}  // namespace alpa::sharding
