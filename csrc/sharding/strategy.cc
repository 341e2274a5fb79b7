// This file implements strategy generation from op signatures.
#include "sharding/strategy.h"

#include <algorithm>
#include <map>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace alpa::sharding {
namespace {

// mesh axes assigned to each letter, for one strategy
using Assignment = std::map<char, MeshAxes>;
// block factor of each split letter (absent = 1)
using Blocks = std::map<char, int64_t>;

ShardingSpec spec_for(const std::string& letters, const Assignment& assign, const Blocks& blocks) {
  ShardingSpec spec = ShardingSpec::replicated(static_cast<int64_t>(letters.size()));
  for (size_t d = 0; d < letters.size(); ++d) {
    auto it = assign.find(letters[d]);
    if (it == assign.end()) continue;
    spec.dims[d] = it->second;
    auto b = blocks.find(letters[d]);
    if (b != blocks.end()) spec.set_block(static_cast<int64_t>(d), b->second);
  }
  return spec;
}

// Block-factor choices per assigned letter: the split rule's required
// factor on inputs, else 1 plus every hinted factor of a dim it labels.
std::vector<std::pair<Blocks, Blocks>> block_variants(const ir::Graph& g, const ir::Node& n,
                                                      const OpSignature& sig, const Assignment& assign,
                                                      const BlockHints& hints) {
  std::vector<std::pair<Blocks, Blocks>> out{{{}, {}}};  // (input blocks, output blocks)
  for (const auto& [letter, axes] : assign) {
    auto fixed = sig.input_blocks.find(letter);
    std::vector<std::pair<int64_t, int64_t>> choices;  // (input factor, output factor)
    if (fixed != sig.input_blocks.end()) {
      choices.push_back({fixed->second, 1});
    } else {
      choices.push_back({1, 1});
      std::set<int64_t> factors;
      for (size_t i = 0; i < n.inputs.size(); ++i) {
        for (size_t d = 0; d < sig.inputs[i].size(); ++d) {
          if (sig.inputs[i][d] != letter) continue;
          for (const auto& [size, f] : hints) {
            if (size == g.meta(n.inputs[i]).shape[d]) factors.insert(f);
          }
        }
      }
      for (size_t j = 0; j < n.outputs.size(); ++j) {
        for (size_t d = 0; d < sig.outputs[j].size(); ++d) {
          if (sig.outputs[j][d] != letter) continue;
          for (const auto& [size, f] : hints) {
            if (size == n.outputs[j].shape[d]) factors.insert(f);
          }
        }
      }
      for (int64_t f : factors) choices.push_back({f, f});
    }
    std::vector<std::pair<Blocks, Blocks>> next;
    for (const auto& [in_b, out_b] : out) {
      for (const auto& [fi, fo] : choices) {
        Blocks a = in_b, b = out_b;
        if (fi != 1) a[letter] = fi;
        if (fo != 1) b[letter] = fo;
        next.push_back({a, b});
      }
    }
    out = std::move(next);
  }
  return out;
}

MeshAxes axes_of_letters(const Assignment& assign, const std::string& letters, bool inside) {
  MeshAxes axes;
  for (const auto& [letter, a] : assign) {
    bool in = letters.find(letter) != std::string::npos;
    if (in == inside) axes.insert(axes.end(), a.begin(), a.end());
  }
  std::sort(axes.begin(), axes.end());
  return axes;
}

double local_bytes(const ir::TensorMeta& meta, const ShardingSpec& spec,
                   const mesh::DeviceMesh& mesh) {
  return static_cast<double>(meta.bytes()) / static_cast<double>(spec.total_shards(mesh));
}

MeshAxes without(MeshAxes axes, const MeshAxes& drop) {
  axes.erase(std::remove_if(axes.begin(), axes.end(),
                            [&](int a) { return std::find(drop.begin(), drop.end(), a) != drop.end(); }),
             axes.end());
  return axes;
}

// Axes that split both letters of the signature's token exchange.
MeshAxes exchange_axes(const OpSignature& sig, const Assignment& assign) {
  MeshAxes out;
  if (sig.exchange.size() != 2) return out;
  auto tokens = assign.find(sig.exchange[0]), experts = assign.find(sig.exchange[1]);
  if (tokens == assign.end() || experts == assign.end()) return out;
  for (int a : experts->second) {
    if (std::find(tokens->second.begin(), tokens->second.end(), a) != tokens->second.end()) out.push_back(a);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Collectives an op needs under `assign` (see op_signature.h for the rules).
void add_op_collectives(const ir::Graph& g, const ir::Node& n, const OpSignature& sig,
                        const Assignment& assign, const mesh::DeviceMesh& mesh,
                        const std::vector<bool>& input_needs_grad, Strategy& s) {
  std::string out_letters;
  for (const std::string& o : sig.outputs) out_letters += o;
  const MeshAxes exchange = exchange_axes(sig, assign);
  MeshAxes contracted = without(axes_of_letters(assign, out_letters, false), exchange);
  if (!contracted.empty()) {
    for (size_t j = 0; j < n.outputs.size(); ++j) {
      s.collectives.push_back({CollectiveKind::kAllReduce, contracted,
                               local_bytes(n.outputs[j], s.outputs[j], mesh),
                               Phase::kForward, "partial sums of output", -1, false,
                               CollectiveRole::kPartialOutput});
    }
  }
  bool any_grad = false;
  for (size_t i = 0; i < n.inputs.size(); ++i) {
    if (!input_needs_grad[i]) continue;
    any_grad = true;
    bool addend = std::find(sig.addends.begin(), sig.addends.end(), static_cast<int64_t>(i)) != sig.addends.end();
    MeshAxes missing;
    for (const auto& [letter, axes] : assign) {
      bool in_input = sig.inputs[i].find(letter) != std::string::npos;
      bool in_output = out_letters.find(letter) != std::string::npos;
      if (!in_input && (in_output || !addend)) missing.insert(missing.end(), axes.begin(), axes.end());
    }
    missing = without(missing, exchange);
    std::sort(missing.begin(), missing.end());
    missing.erase(std::unique(missing.begin(), missing.end()), missing.end());
    if (missing.empty()) continue;
    s.collectives.push_back({CollectiveKind::kAllReduce, missing,
                             local_bytes(g.meta(n.inputs[i]), s.inputs[i], mesh),
                             Phase::kBackward, fmt::format("partial grad of input {}", i),
                             static_cast<int64_t>(i), false, CollectiveRole::kInputGrad});
  }
  if (!exchange.empty()) {
    auto i = static_cast<size_t>(sig.exchange_input);
    double bytes = sig.exchange_rows * local_bytes(g.meta(n.inputs.at(i)), s.inputs.at(i), mesh);
    s.collectives.push_back({CollectiveKind::kAllToAll, exchange, bytes, Phase::kForward,
                             "token dispatch", -1, false, CollectiveRole::kTokenDispatch});
    s.collectives.push_back({CollectiveKind::kAllToAll, exchange, bytes, Phase::kForward,
                             "token combine", -1, false, CollectiveRole::kTokenCombine});
    if (any_grad) {
      s.collectives.push_back({CollectiveKind::kAllToAll, exchange, bytes, Phase::kBackward,
                               "token combine (backward)", -1, false, CollectiveRole::kTokenCombine});
      s.collectives.push_back({CollectiveKind::kAllToAll, exchange, bytes, Phase::kBackward,
                               "token dispatch (backward)", -1, false, CollectiveRole::kTokenDispatch});
    }
  }
  if (!sig.sync_letters.empty()) {
    MeshAxes sync;
    for (const auto& [letter, a] : assign) {
      if (sig.sync_letters.find(letter) != std::string::npos) sync.insert(sync.end(), a.begin(), a.end());
    }
    if (!sync.empty()) {
      std::sort(sync.begin(), sync.end());
      const ir::Shape& in = g.meta(n.inputs[0]).shape;
      double elems = sig.sync_floats;
      for (size_t d = 0; d < in.size(); ++d) {
        if (sig.sync_size_letters.find(sig.inputs[0][d]) != std::string::npos) {
          elems *= static_cast<double>(in[d]) / static_cast<double>(s.inputs[0].shards(static_cast<int64_t>(d), mesh));
        }
      }
      s.collectives.push_back({CollectiveKind::kAllReduce, sync, elems * 4, Phase::kForward,
                               "synced statistics", -1, false, CollectiveRole::kSyncedStatistics});
      if (any_grad) {
        s.collectives.push_back({CollectiveKind::kAllReduce, sync, elems * 4, Phase::kBackward,
                                 "synced statistic grads", -1, false,
                                 CollectiveRole::kSyncedStatisticGrads});
      }
    }
  }
}

bool divides(const std::string& letters, const ir::Shape& shape, const Assignment& assign,
             const Blocks& blocks, const mesh::DeviceMesh& mesh) {
  for (size_t d = 0; d < letters.size(); ++d) {
    auto it = assign.find(letters[d]);
    if (it == assign.end()) continue;
    auto b = blocks.find(letters[d]);
    int64_t n = b == blocks.end() ? 1 : b->second;
    for (int a : it->second) n *= mesh.axis_size(a);
    if (shape[d] % n != 0) return false;
  }
  return true;
}

}  // namespace

std::string strategy_name(const std::vector<ShardingSpec>& outputs,
                          const std::vector<ShardingSpec>& inputs) {
  std::vector<std::string> o, i;
  for (const auto& s : outputs) o.push_back(s.to_string().empty() ? "-" : s.to_string());
  for (const auto& s : inputs) i.push_back(s.to_string().empty() ? "-" : s.to_string());
  return fmt::format("{} = {}", fmt::join(o, ","), fmt::join(i, " x "));
}

std::vector<Strategy> op_strategies(const ir::Graph& g, const ir::Node& n,
                                    const OpSignature& sig, const mesh::DeviceMesh& mesh,
                                    const std::vector<bool>& input_needs_grad,
                                    const BlockHints& block_hints) {
  std::set<char> letters;
  for (const auto* list : {&sig.inputs, &sig.outputs}) {
    for (const std::string& s : *list) {
      for (char c : s) {
        if (c != kNoSplit && sig.unsplittable.find(c) == std::string::npos) letters.insert(c);
      }
    }
  }
  std::vector<char> choices0{0}, choices1{0};  // 0 = axis unused
  // kBoth: the axis splits both letters of the token exchange
  constexpr char kBoth = '+';
  bool exchange = sig.exchange.size() == 2 && letters.count(sig.exchange[0]) && letters.count(sig.exchange[1]);
  if (exchange) letters.insert(kBoth);
  for (char c : letters) {
    if (mesh.axis_size(0) > 1) choices0.push_back(c);
    if (mesh.axis_size(1) > 1) choices1.push_back(c);
  }
  std::vector<Strategy> out;
  std::set<std::string> seen;
  for (char c0 : choices0) {
    for (char c1 : choices1) {
      // experts split on one axis by exchange and on the other by partial
      // sums is not a strategy (see OpSignature::exchange)
      if (exchange && ((c0 == kBoth && c1 == sig.exchange[1]) || (c1 == kBoth && c0 == sig.exchange[1]))) continue;
      Assignment assign;
      for (auto [c, axis] : {std::pair{c0, 0}, std::pair{c1, 1}}) {
        if (c == kBoth) {
          assign[sig.exchange[0]].push_back(axis);
          assign[sig.exchange[1]].push_back(axis);
        } else if (c) {
          assign[c].push_back(axis);
        }
      }
      for (const auto& [in_blocks, out_blocks] : block_variants(g, n, sig, assign, block_hints)) {
        bool ok = true;
        for (size_t i = 0; i < n.inputs.size() && ok; ++i) {
          ok = divides(sig.inputs[i], g.meta(n.inputs[i]).shape, assign, in_blocks, mesh);
        }
        for (size_t j = 0; j < n.outputs.size() && ok; ++j) {
          ok = divides(sig.outputs[j], n.outputs[j].shape, assign, out_blocks, mesh);
        }
        if (!ok) continue;
        Strategy s;
        for (size_t i = 0; i < n.inputs.size(); ++i) s.inputs.push_back(spec_for(sig.inputs[i], assign, in_blocks));
        for (size_t j = 0; j < n.outputs.size(); ++j) s.outputs.push_back(spec_for(sig.outputs[j], assign, out_blocks));
        s.name = strategy_name(s.outputs, s.inputs);
        if (!seen.insert(s.name).second) continue;
        std::set<int> split_axes;
        for (const auto& [letter, axes] : assign) split_axes.insert(axes.begin(), axes.end());
        for (int a : split_axes) s.parallel_degree *= mesh.axis_size(a);
        add_op_collectives(g, n, sig, assign, mesh, input_needs_grad, s);
        out.push_back(std::move(s));
      }
    }
  }
  return out;
}

Strategy replicated_strategy(const ir::Graph& g, const ir::Node& n) {
  Strategy s;
  for (const ir::ValueRef& v : n.inputs) s.inputs.push_back(ShardingSpec::replicated(g.meta(v).rank()));
  for (const ir::TensorMeta& m : n.outputs) s.outputs.push_back(ShardingSpec::replicated(m.rank()));
  s.name = strategy_name(s.outputs, s.inputs);
  return s;
}

BlockHints collect_block_hints(const ir::Graph& g) {
  BlockHints hints;
  for (const ir::Node& n : g.nodes()) {
    if (n.kind != ir::NodeKind::kOp) continue;
    auto sig = op_signature(g, n);
    if (!sig) continue;
    for (const auto& [letter, factor] : sig->input_blocks) {
      for (size_t i = 0; i < n.inputs.size(); ++i) {
        for (size_t d = 0; d < sig->inputs[i].size(); ++d) {
          if (sig->inputs[i][d] != letter) continue;
          std::pair<int64_t, int64_t> hint{g.meta(n.inputs[i]).shape[d], factor};
          if (std::find(hints.begin(), hints.end(), hint) == hints.end()) hints.push_back(hint);
        }
      }
    }
  }
  std::sort(hints.begin(), hints.end());
  return hints;
}

std::vector<Strategy> placeholder_strategies(const ir::Node& n, const mesh::DeviceMesh& mesh,
                                             const BlockHints& block_hints) {
  std::vector<Strategy> out;
  for (ShardingSpec& spec : enumerate_specs(n.outputs.at(0).shape, mesh, block_hints)) {
    Strategy s;
    s.outputs = {std::move(spec)};
    s.name = s.outputs[0].to_string().empty() ? "-" : s.outputs[0].to_string();
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace alpa::sharding
