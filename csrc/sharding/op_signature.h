// This file implements OpSignature: an op's tensor dims labelled
// einsum-style, the single description from which every sharding strategy of
// the op is generated (DTensor-style: one rule serves mm, bmm, linear...).
//
//   mm       inputs {"mk", "kn"}     outputs {"mn"}
//   add      inputs {"mn", "1n"}     outputs {"mn"}    ('1': a broadcast dim)
//   softmax  inputs {"bsv"}          outputs {"bsv"}   unsplittable "v"
//
// A mesh axis assigned to a letter splits every dim carrying that letter.
// Letters in no output are contracted: splitting one leaves partial sums,
// so the output is all-reduced (forward) — and, by duality, an input that
// lacks a split letter receives a partial gradient, all-reduced in backward.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace alpa::sharding {

inline constexpr char kNoSplit = '1';

struct OpSignature {
  std::vector<std::string> inputs;   ///< per Node::inputs entry, a letter per dim
  std::vector<std::string> outputs;  ///< per Node::outputs entry
  std::string unsplittable;          ///< letters that must stay replicated
  /// Sync statistics (BatchNorm in training): when an axis splits one of
  /// `sync_letters`, the per-channel statistics — `sync_floats` floats per
  /// element of the `sync_size_letters` dims — are all-reduced forward and
  /// backward.
  std::string sync_letters;
  std::string sync_size_letters;
  double sync_floats = 0;
  /// Letters whose input dims must be block-interleaved with this factor
  /// when split (outputs plain): splitting a dim into equal chunks is local
  /// exactly when every device holds a slice of every chunk.
  std::map<char, int64_t> input_blocks;
  /// Inputs added to the result after the contraction (addmm's bias): they
  /// take no part in partial sums, so only a split of an output letter they
  /// lack makes their gradient partial. The runtime adds them after the
  /// forward all-reduce.
  std::vector<int64_t> addends;
  /// Token exchange of mixture-of-experts layers: {token letter, expert
  /// letter}, or empty. A mesh axis may split both at once (written "t+e"
  /// in a strategy's assignment): each device holds its own tokens and its
  /// own experts, and every routed row travels by all-to-all to the device
  /// of its expert and back (`exchange_rows` rows per token of input
  /// `exchange_input`), forward and, by duality, backward. On such an axis
  /// the expert letter is not contracted (each expert sees all its rows)
  /// and no gradient is partial. An axis on the expert letter alone still
  /// means partial sums; the two are not mixed in one strategy.
  std::string exchange;
  double exchange_rows = 1;
  int64_t exchange_input = 0;
};

/// Signature of `node`, or nullopt when no rule covers its op (the planner
/// then keeps it replicated and warns). `reason` gets why.
std::optional<OpSignature> op_signature(const ir::Graph& graph, const ir::Node& node,
                                        std::string* reason = nullptr);

/// Allocates distinct letters; `next()` never returns kNoSplit.
class LetterPool {
 public:
  char next();
  /// `rank` fresh letters.
  std::string fresh(int64_t rank);

 private:
  int used_ = 0;
};

// ---- rule registry (one file per op family under rules/) --------------------
using RuleFn = std::function<std::optional<OpSignature>(const ir::Graph&, const ir::Node&)>;
using RuleTable = std::map<std::string, RuleFn, std::less<>>;

void register_matmul_rules(RuleTable& table);
void register_elementwise_rules(RuleTable& table);
void register_reduction_rules(RuleTable& table);
void register_norm_rules(RuleTable& table);
void register_embedding_rules(RuleTable& table);
void register_shape_rules(RuleTable& table);
void register_attention_rules(RuleTable& table);
void register_conv_rules(RuleTable& table);
void register_expert_rules(RuleTable& table);

// ---- helpers shared by the rules ----------------------------------------------
/// Letters for a tensor of `shape` whose trailing dims align with `full`
/// (NumPy broadcasting): a size-1 dim broadcast against a larger one is
/// kNoSplit, other dims take the letter of `full` at that position.
std::string broadcast_letters(const ir::Shape& shape, const ir::Shape& full,
                              const std::string& full_letters);
/// Normalized dim attribute `key` of `node` for a tensor of `rank`.
int64_t dim_attr(const ir::Node& node, const char* key, int64_t rank, int64_t fallback);
/// Letters of the node's input `i` when every output has the same letters
/// (identity-like ops), for convenience.
OpSignature identity_signature(const ir::Graph& graph, const ir::Node& node);

}  // namespace alpa::sharding
