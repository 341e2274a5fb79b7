// This file implements the op schema table and check_op_schema(): one row
// per ATen signature, written the way native_functions.yaml reads (tensor
// arguments only), parsed once into counts and rank constraints.
#include "ir/op_schema.h"

#include <cctype>
#include <map>
#include <tuple>
#include <vector>

#include <fmt/format.h>

#include "core/check.h"
#include "ir/op_name.h"

namespace alpa::ir {
namespace {

struct Row {
  std::vector<const char*> ops;
  const char* inputs;   // "input[r], weight, bias?[1]"
  const char* outputs;  // "out[r]"
};

// Every op that shape inference or a sharding rule knows. Scalar overloads
// (add.Scalar, pow.Scalar...) take one tensor fewer, hence the optional
// second operand of the binary ops.
const std::vector<Row>& rows() {
  static const std::vector<Row> table = {
      {{"relu", "gelu", "tanh", "sigmoid", "silu", "neg", "exp", "log", "sqrt", "rsqrt", "abs",
        "erf", "reciprocal", "cos", "sin", "sign", "hardtanh", "leaky_relu", "elu", "relu6",
        "square", "softplus", "log1p", "expm1", "threshold", "mish", "hardswish", "hardsigmoid",
        "logical_not", "bitwise_not", "floor", "ceil", "round", "trunc", "triu", "tril", "isnan",
        "isinf", "nan_to_num", "dropout", "clone", "contiguous", "alias", "detach",
        "lift_fresh_copy", "_to_copy", "zeros_like", "ones_like", "full_like", "empty_like",
        "rand_like", "randn_like"},
       "self", "out"},
      {{"add", "add_", "sub", "mul", "div", "pow", "eq", "ne", "lt", "le", "gt", "ge", "__and__",
        "__or__", "bitwise_and", "bitwise_or", "rsub", "remainder", "fmod", "floor_divide"},
       "self, other?", "out"},
      {{"maximum", "minimum", "atan2", "logical_and", "logical_or"}, "self, other", "out"},
      {{"to", "type_as"}, "self, other?", "out"},
      {{"fill"}, "self, value?", "out"},
      {{"where"}, "condition, self?, other?", "out"},
      {{"masked_fill"}, "self, mask, value?", "out"},
      {{"addcmul", "addcdiv"}, "self, tensor1, tensor2", "out"},
      {{"lerp"}, "self, end, weight?", "out"},
      {{"clamp"}, "self, min?, max?", "out"},
      {{"clamp_min", "clamp_max"}, "self, bound?", "out"},
      {{"native_dropout"}, "input", "out, mask"},
      {{"arange", "zeros", "ones", "full", "empty", "rand", "randn", "scalar_tensor"}, "", "out"},
      // matmul family
      {{"mm", "bmm"}, "self, mat2", "out"},
      {{"addmm", "baddbmm"}, "self, mat1, mat2", "out"},
      {{"linear"}, "input, weight, bias?", "out"},
      {{"matmul"}, "self, other", "out"},
      {{"einsum"}, "operands+", "out"},
      // reductions
      {{"sum", "mean", "amax", "amin", "var", "std", "prod", "logsumexp", "norm", "argmax",
        "argmin", "all", "any", "softmax", "_softmax", "log_softmax", "_log_softmax", "cumsum",
        "cumprod", "argsort"},
       "self", "out"},
      {{"max", "min"}, "self, other?", "values, indices?"},
      {{"var_mean"}, "self", "var, mean"},
      {{"sort", "topk"}, "self[r]", "values[r], indices[r]"},
      {{"diff"}, "self, prepend?, append?", "out"},
      {{"cross_entropy_loss", "cross_entropy", "nll_loss"}, "self, target, weight?", "out"},
      {{"nll_loss_forward", "nll_loss2d_forward"}, "self, target, weight?", "output, total_weight"},
      {{"mse_loss"}, "self, target", "out"},
      // normalization
      {{"layer_norm", "group_norm"}, "input, weight?, bias?", "out"},
      {{"native_layer_norm", "native_group_norm"}, "input, weight?, bias?", "out, mean, rstd"},
      {{"rms_norm"}, "input, weight?", "out"},
      {{"_fused_rms_norm"}, "input, weight?", "out, rstd"},
      {{"batch_norm"}, "input, weight?, bias?, running_mean?, running_var?", "out"},
      {{"native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training"},
       "input, weight?, bias?, running_mean?, running_var?", "out, save_mean, save_invstd"},
      {{"_native_batch_norm_legit_functional"},
       "input, weight?, bias?, running_mean?, running_var?",
       "out, save_mean, save_invstd, new_running_mean, new_running_var"},
      // embedding and indexing
      {{"embedding"}, "weight, indices", "out"},
      {{"gather"}, "self[r], index[r]", "out[r]"},
      {{"index_select"}, "self[r], index", "out[r]"},
      // data movement
      {{"view", "reshape", "_unsafe_view", "flatten", "unflatten", "unsqueeze", "squeeze",
        "expand", "roll", "flip"},
       "self", "out"},
      // ATen rejects a 0-dim tensor for these.
      {{"slice", "select"}, "self[>=1]", "out"},
      {{"permute", "transpose", "t", "swapaxes"}, "self[r]", "out[r]"},
      {{"view_as", "reshape_as", "expand_as"}, "self, other", "out"},
      {{"narrow"}, "self[>=1], start?", "out"},
      {{"unbind", "split", "split_with_sizes", "chunk"}, "self[>=1]", "outs+"},
      {{"tensor_split"}, "self[>=1], indices?", "outs+"},
      {{"cat", "concat"}, "tensors+[>=1]", "out"},
      {{"stack"}, "tensors+[r]", "out[r+1]"},
      // attention, convolution, pooling
      {{"scaled_dot_product_attention"}, "query[r], key[r], value[r], attn_mask?", "out[r]"},
      {{"convolution", "conv1d", "conv2d", "conv3d", "_convolution"},
       "input[r], weight, bias?[1]", "out[r]"},
      {{"adaptive_avg_pool2d", "adaptive_avg_pool1d", "avg_pool2d", "max_pool2d",
        "_adaptive_avg_pool2d", "avg_pool1d", "max_pool1d"},
       "self", "out"},
      {{"max_pool2d_with_indices", "adaptive_max_pool2d"}, "self", "out, indices"},
  };
  return table;
}

// One tensor argument: "bias?[1]" is optional with rank 1.
struct Arg {
  std::string name;
  bool optional = false;
  bool variadic = false;  // one or more
  std::string rank_var;   // "r" in [r] or [r+1]; empty: none or fixed
  int64_t rank = -1;      // fixed rank, or the offset added to rank_var
  int64_t min_rank = 0;   // [>=1]: at least this rank
};

struct Schema {
  std::vector<Arg> inputs, outputs;
  std::string text;
};

Arg parse_arg(std::string_view text) {
  Arg a;
  size_t bracket = text.find('[');
  std::string_view head = text.substr(0, bracket);
  if (!head.empty() && (head.back() == '?' || head.back() == '+')) {
    (head.back() == '?' ? a.optional : a.variadic) = true;
    head.remove_suffix(1);
  }
  a.name = std::string(head);
  if (bracket != std::string_view::npos) {
    std::string_view spec = text.substr(bracket + 1, text.size() - bracket - 2);
    if (spec.substr(0, 2) == ">=") {
      a.min_rank = std::stoll(std::string(spec.substr(2)));
    } else if (std::isdigit(static_cast<unsigned char>(spec[0]))) {
      a.rank = std::stoll(std::string(spec));
    } else {
      size_t plus = spec.find('+');
      a.rank_var = std::string(spec.substr(0, plus));
      a.rank = plus == std::string_view::npos ? 0 : std::stoll(std::string(spec.substr(plus + 1)));
    }
  }
  return a;
}

std::vector<Arg> parse_args(std::string_view list) {
  std::vector<Arg> out;
  size_t start = 0;
  while (start < list.size()) {
    size_t end = std::min(list.find(',', start), list.size());
    std::string_view arg = list.substr(start, end - start);
    while (!arg.empty() && arg.front() == ' ') arg.remove_prefix(1);
    if (!arg.empty()) out.push_back(parse_arg(arg));
    start = end + 1;
  }
  return out;
}

const std::map<std::string, Schema, std::less<>>& table() {
  static const auto* built = [] {
    auto* out = new std::map<std::string, Schema, std::less<>>();
    for (const Row& row : rows()) {
      Schema s{parse_args(row.inputs), parse_args(row.outputs),
               fmt::format("({}) -> ({})", row.inputs, row.outputs)};
      for (const char* op : row.ops) {
        ALPA_CHECK(out->emplace(op, s).second, "op '{}' is listed twice in the schema table", op);
      }
    }
    return out;
  }();
  return *built;
}

std::pair<int64_t, int64_t> count_range(const std::vector<Arg>& args) {
  int64_t lo = 0, hi = 0;
  for (const Arg& a : args) {
    if (!a.optional) ++lo;
    hi = a.variadic || hi == INT64_MAX ? INT64_MAX : hi + 1;
  }
  return {lo, hi};
}

std::string describe_range(std::pair<int64_t, int64_t> range) {
  auto [lo, hi] = range;
  if (hi == INT64_MAX) return fmt::format("at least {}", lo);
  if (lo == hi) return fmt::format("{}", lo);
  return fmt::format("{} to {}", lo, hi);
}

// The schema argument that value `i` of `count` binds to, when that is
// certain: a variadic argument takes every value; otherwise value i is
// argument i if no optional argument comes before it, or all are present.
const Arg* bound_arg(const std::vector<Arg>& args, size_t i, size_t count) {
  if (args.size() == 1 && args[0].variadic) return &args[0];
  if (i >= args.size()) return nullptr;
  if (count == args.size()) return &args[i];
  for (size_t j = 0; j < i; ++j) {
    if (args[j].optional) return nullptr;
  }
  return &args[i];
}

}  // namespace

std::optional<std::string> op_schema_text(std::string_view base) {
  auto it = table().find(base);
  if (it == table().end()) return std::nullopt;
  return it->second.text;
}

core::Status check_op_schema(const Graph& g, const Node& n) {
  std::string_view base = op_base_name(n.op);
  auto it = table().find(base);
  if (it == table().end()) return core::ok_status();
  const Schema& s = it->second;
  auto fix = [&](const char* what) { return fmt::format("; re-capture the model or fix the node's {}", what); };
  for (auto [args, found, what] : {std::tuple{&s.inputs, n.inputs.size(), "inputs"},
                                   std::tuple{&s.outputs, n.outputs.size(), "outputs"}}) {
    auto range = count_range(*args);
    int64_t count = static_cast<int64_t>(found);
    if (count < range.first || count > range.second) {
      return core::invalid_argument(fmt::format(
          "node '{}' ({}) has {} tensor {}, but {} {} has {}{}", n.name, n.op, count, what,
          base, s.text, describe_range(range), fix(what)));
    }
  }
  std::map<std::string, std::pair<int64_t, std::string>> vars;  // rank var -> (value, where)
  auto check_rank = [&](const std::vector<Arg>& args, size_t i, size_t count, int64_t rank,
                        const std::string& where) -> core::Status {
    const Arg* a = bound_arg(args, i, count);
    if (a != nullptr && rank < a->min_rank) {
      return core::invalid_argument(fmt::format(
          "node '{}' ({}): {} ('{}') has rank {}, but {} {} needs rank ≥ {} there", n.name, n.op,
          where, a->name, rank, base, s.text, a->min_rank));
    }
    if (a == nullptr || a->rank < 0) return core::ok_status();
    if (a->rank_var.empty()) {
      if (rank == a->rank) return core::ok_status();
      return core::invalid_argument(fmt::format(
          "node '{}' ({}): {} ('{}') has rank {}, but {} {} needs rank {}", n.name, n.op, where,
          a->name, rank, base, s.text, a->rank));
    }
    auto [var, inserted] = vars.try_emplace(a->rank_var, rank - a->rank, where);
    if (inserted || var->second.first + a->rank == rank) return core::ok_status();
    return core::invalid_argument(fmt::format(
        "node '{}' ({}): {} ('{}') has rank {}, but {} {} needs rank {} there ({} = {} from {})",
        n.name, n.op, where, a->name, rank, base, s.text, var->second.first + a->rank,
        a->rank_var, var->second.first, var->second.second));
  };
  for (size_t i = 0; i < n.inputs.size(); ++i) {
    ALPA_RETURN_IF_ERROR(check_rank(s.inputs, i, n.inputs.size(), g.meta(n.inputs[i]).rank(),
                                    fmt::format("input #{}", i)));
  }
  for (size_t i = 0; i < n.outputs.size(); ++i) {
    ALPA_RETURN_IF_ERROR(check_rank(s.outputs, i, n.outputs.size(), n.outputs[i].rank(),
                                    fmt::format("output #{}", i)));
  }
  return core::ok_status();
}

}  // namespace alpa::ir
