// This file implements the op-signature registry and shared helpers.
#include "sharding/op_signature.h"

#include <fmt/format.h>

#include "core/check.h"
#include "ir/op_name.h"
#include "ir/shape_inference.h"

namespace alpa::sharding {

char LetterPool::next() {
  static const char kLetters[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ@#%&*+=?<>^~";
  ALPA_CHECK(used_ < static_cast<int>(sizeof(kLetters) - 1), "too many dims in one op");
  return kLetters[used_++];
}

std::string LetterPool::fresh(int64_t rank) {
  std::string s;
  for (int64_t i = 0; i < rank; ++i) s += next();
  return s;
}

std::string broadcast_letters(const ir::Shape& shape, const ir::Shape& full,
                              const std::string& full_letters) {
  std::string out(shape.size(), kNoSplit);
  size_t offset = full.size() >= shape.size() ? full.size() - shape.size() : 0;
  for (size_t i = 0; i < shape.size(); ++i) {
    size_t f = i + offset;
    if (f < full.size() && shape[i] == full[f]) out[i] = full_letters[f];
  }
  return out;
}

int64_t dim_attr(const ir::Node& node, const char* key, int64_t rank, int64_t fallback) {
  int64_t d = node.attr_int(key, fallback);
  auto nd = ir::normalize_dim(d, rank);
  return nd.ok() ? *nd : fallback;
}

OpSignature identity_signature(const ir::Graph& graph, const ir::Node& node) {
  OpSignature sig;
  const ir::Shape& out = node.outputs.at(0).shape;
  LetterPool pool;
  std::string letters = pool.fresh(static_cast<int64_t>(out.size()));
  for (const ir::ValueRef& v : node.inputs) {
    sig.inputs.push_back(broadcast_letters(graph.meta(v).shape, out, letters));
  }
  for (const ir::TensorMeta& m : node.outputs) {
    sig.outputs.push_back(m.shape == out ? letters : std::string(m.shape.size(), kNoSplit));
  }
  return sig;
}

namespace {

const RuleTable& rule_table() {
  static const RuleTable table = [] {
    RuleTable t;
    register_matmul_rules(t);
    register_elementwise_rules(t);
    register_reduction_rules(t);
    register_norm_rules(t);
    register_embedding_rules(t);
    register_shape_rules(t);
    register_attention_rules(t);
    register_conv_rules(t);
    register_expert_rules(t);
    return t;
  }();
  return table;
}

bool consistent(const ir::Graph& g, const ir::Node& n, const OpSignature& sig) {
  if (sig.inputs.size() != n.inputs.size() || sig.outputs.size() != n.outputs.size()) {
    return false;
  }
  std::map<char, int64_t> size;
  auto check = [&](const std::string& letters, const ir::Shape& shape) {
    if (letters.size() != shape.size()) return false;
    for (size_t i = 0; i < shape.size(); ++i) {
      if (letters[i] == kNoSplit) continue;
      (void)size[letters[i]];
    }
    return true;
  };
  for (size_t i = 0; i < n.inputs.size(); ++i) {
    if (!check(sig.inputs[i], g.meta(n.inputs[i]).shape)) return false;
  }
  for (size_t i = 0; i < n.outputs.size(); ++i) {
    if (!check(sig.outputs[i], n.outputs[i].shape)) return false;
  }
  return true;
}

}  // namespace

std::optional<OpSignature> op_signature(const ir::Graph& graph, const ir::Node& node,
                                        std::string* reason) {
  if (node.kind != ir::NodeKind::kOp) return std::nullopt;
  const RuleTable& table = rule_table();
  auto it = table.find(ir::op_base_name(node.op));
  if (it == table.end()) {
    if (reason) *reason = fmt::format("no sharding rule for {}", node.op);
    return std::nullopt;
  }
  std::optional<OpSignature> sig = it->second(graph, node);
  if (!sig) {
    if (reason) *reason = fmt::format("the {} rule does not cover this use (node {})", node.op, node.name);
    return std::nullopt;
  }
  ALPA_CHECK(consistent(graph, node, *sig), "rule for {} returned letters that do not match the shapes of node {}",
             node.op, node.name);
  return sig;
}

}  // namespace alpa::sharding
