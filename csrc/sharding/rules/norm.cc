// This file implements normalization rules. LayerNorm/RMSNorm keep the
// normalized (trailing) dims whole; their weight and bias carry those
// letters, so a batch split makes their gradients partial (all-reduced in
// backward). BatchNorm in training splits batch and spatial dims with synced
// statistics (the mean and variance are all-reduced, as SyncBatchNorm does),
// so a data-parallel run computes exactly what one process does.
#include "sharding/op_signature.h"

namespace alpa::sharding {
namespace {

using ir::Graph;
using ir::Node;

std::optional<OpSignature> layer_norm(const Graph& g, const Node& n, const char* shape_key) {
  const ir::Shape& in = g.meta(n.inputs.at(0)).shape;
  auto normalized = n.attr_ints(shape_key);
  int64_t k = normalized ? static_cast<int64_t>(normalized->size()) : 1;
  int64_t rank = static_cast<int64_t>(in.size());
  if (k > rank) return std::nullopt;
  LetterPool pool;
  std::string letters = pool.fresh(rank);
  std::string tail = letters.substr(static_cast<size_t>(rank - k));
  OpSignature sig;
  sig.unsplittable = tail;
  sig.inputs.push_back(letters);
  for (size_t i = 1; i < n.inputs.size(); ++i) {
    sig.inputs.push_back(broadcast_letters(g.meta(n.inputs[i]).shape, in, letters));
  }
  for (const ir::TensorMeta& m : n.outputs) {
    sig.outputs.push_back(m.shape == in ? letters : broadcast_letters(m.shape, in, letters));
  }
  return sig;
}

// input [B, C, spatial...]; weight, bias, running stats [C].
std::optional<OpSignature> batch_norm(const Graph& g, const Node& n) {
  const ir::Shape& in = g.meta(n.inputs.at(0)).shape;
  if (in.size() < 2) return std::nullopt;
  LetterPool pool;
  std::string letters = pool.fresh(static_cast<int64_t>(in.size()));
  char c = letters[1];
  OpSignature sig;
  sig.inputs.push_back(letters);
  for (size_t i = 1; i < n.inputs.size(); ++i) {
    const ir::Shape& s = g.meta(n.inputs[i]).shape;
    sig.inputs.push_back(s.size() == 1 && s[0] == in[1] ? std::string{c}
                                                          : std::string(s.size(), kNoSplit));
  }
  for (const ir::TensorMeta& m : n.outputs) {
    if (m.shape == in) sig.outputs.push_back(letters);
    else if (m.shape.size() == 1 && m.shape[0] == in[1]) sig.outputs.push_back(std::string{c});
    else sig.outputs.push_back(std::string(m.shape.size(), kNoSplit));
  }
  bool training = n.attr_int("training", 1) != 0;
  if (training) {
    for (char l : letters) if (l != c) sig.sync_letters += l;
    sig.sync_size_letters = std::string{c};
    sig.sync_floats = 2;  // mean and variance
  }
  return sig;
}

// GroupNorm mixes channels within a group: only the batch dim splits.
std::optional<OpSignature> group_norm(const Graph& g, const Node& n) {
  const ir::Shape& in = g.meta(n.inputs.at(0)).shape;
  if (in.size() < 2) return std::nullopt;
  LetterPool pool;
  std::string letters = pool.fresh(static_cast<int64_t>(in.size()));
  OpSignature sig;
  sig.unsplittable = letters.substr(1);
  sig.inputs.push_back(letters);
  for (size_t i = 1; i < n.inputs.size(); ++i) {
    const ir::Shape& s = g.meta(n.inputs[i]).shape;
    sig.inputs.push_back(s.size() == 1 && s[0] == in[1] ? std::string{letters[1]}
                                                          : std::string(s.size(), kNoSplit));
  }
  for (const ir::TensorMeta& m : n.outputs) {
    sig.outputs.push_back(m.shape == in ? letters : std::string(m.shape.size(), kNoSplit));
  }
  return sig;
}

}  // namespace

void register_norm_rules(RuleTable& t) {
  t["layer_norm"] = [](const Graph& g, const Node& n) { return layer_norm(g, n, "normalized_shape"); };
  t["native_layer_norm"] = t["layer_norm"];
  t["rms_norm"] = t["layer_norm"];
  t["_fused_rms_norm"] = t["layer_norm"];
  for (const char* op : {"batch_norm", "native_batch_norm", "_native_batch_norm_legit",
                         "_native_batch_norm_legit_functional",
                         "_native_batch_norm_legit_no_training"}) {
    t[op] = batch_norm;
  }
  t["group_norm"] = group_norm;
  t["native_group_norm"] = group_norm;
}

}  // namespace alpa::sharding
