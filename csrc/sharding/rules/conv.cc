// This file implements convolution: input [B, C, spatial...], weight
// [O, C/groups, kernel...] -> [B, O, spatial'...]. Batch splits (data
// parallel), O splits (output channels), C is contracted (partial sums) when
// groups == 1. Spatial dims stay whole (a split would need halo exchange).
#include "sharding/op_signature.h"

namespace alpa::sharding {
namespace {

std::optional<OpSignature> convolution(const ir::Graph& g, const ir::Node& n) {
  if (n.inputs.size() < 2) return std::nullopt;
  const ir::Shape& x = g.meta(n.inputs[0]).shape;
  const ir::Shape& w = g.meta(n.inputs[1]).shape;
  if (x.size() < 3 || w.size() != x.size()) return std::nullopt;
  if (n.attr_int("transposed", 0) != 0) return std::nullopt;
  size_t spatial = x.size() - 2;
  LetterPool pool;
  char b = pool.next(), c = pool.next(), o = pool.next();
  std::string in_sp = pool.fresh(static_cast<int64_t>(spatial));
  std::string out_sp = pool.fresh(static_cast<int64_t>(spatial));
  OpSignature sig;
  sig.unsplittable = in_sp + out_sp;
  bool grouped = n.attr_int("groups", 1) != 1;
  if (grouped) sig.unsplittable += std::string{c, o};
  sig.inputs = {std::string{b, c} + in_sp, std::string{o, grouped ? kNoSplit : c} + std::string(spatial, kNoSplit)};
  if (n.inputs.size() == 3) {
    sig.inputs.push_back(std::string{o});
    sig.addends = {2};
  }
  sig.outputs = {std::string{b, o} + out_sp};
  return sig;
}

// adaptive_avg_pool / max_pool: per-channel spatial windows.
std::optional<OpSignature> pool(const ir::Graph& g, const ir::Node& n) {
  const ir::Shape& x = g.meta(n.inputs.at(0)).shape;
  if (x.size() < 3) return std::nullopt;
  LetterPool pool_letters;
  std::string bc = pool_letters.fresh(2);
  std::string in_sp = pool_letters.fresh(static_cast<int64_t>(x.size()) - 2);
  std::string out_sp = pool_letters.fresh(static_cast<int64_t>(x.size()) - 2);
  OpSignature sig;
  sig.unsplittable = in_sp + out_sp;
  sig.inputs = {bc + in_sp};
  for (const ir::TensorMeta& m : n.outputs) {
    sig.outputs.push_back(m.rank() == static_cast<int64_t>(x.size()) ? bc + out_sp
                                                                     : std::string(m.rank(), kNoSplit));
  }
  return sig;
}

}  // namespace

void register_conv_rules(RuleTable& t) {
  for (const char* op : {"convolution", "conv1d", "conv2d", "conv3d", "_convolution"}) {
    t[op] = convolution;
  }
  for (const char* op : {"adaptive_avg_pool2d", "adaptive_avg_pool1d", "avg_pool2d",
                         "max_pool2d", "max_pool2d_with_indices", "_adaptive_avg_pool2d",
                         "adaptive_max_pool2d", "avg_pool1d", "max_pool1d"}) {
    t[op] = pool;
  }
}

}  // namespace alpa::sharding
