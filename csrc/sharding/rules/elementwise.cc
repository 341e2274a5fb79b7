// This file implements the elementwise rule: every operand's dims align with
// the output's by NumPy broadcasting, so one split applies to all of them;
// a broadcast (size-1) dim is never split. Also covers identity-like ops
// (clone, contiguous, dtype casts, dropout) and tensor factories.
#include "sharding/op_signature.h"

namespace alpa::sharding {

void register_elementwise_rules(RuleTable& t) {
  auto identity = [](const ir::Graph& g, const ir::Node& n) -> std::optional<OpSignature> {
    return identity_signature(g, n);
  };
  for (const char* op : {
           // binary and ternary
           "add", "add_", "sub", "mul", "div", "pow", "maximum", "minimum", "eq", "ne", "lt",
           "le", "gt", "ge", "__and__", "__or__", "bitwise_and", "bitwise_or", "logical_and",
           "logical_or", "rsub", "where", "remainder", "fmod", "floor_divide", "atan2",
           "masked_fill", "addcmul", "addcdiv", "lerp", "clamp", "clamp_min", "clamp_max",
           // unary
           "relu", "gelu", "tanh", "sigmoid", "silu", "neg", "exp", "log", "sqrt", "rsqrt",
           "abs", "erf", "reciprocal", "cos", "sin", "sign", "hardtanh", "leaky_relu", "elu",
           "relu6", "square", "softplus", "log1p", "expm1", "threshold", "mish", "hardswish",
           "hardsigmoid", "logical_not", "bitwise_not", "floor", "ceil", "round", "trunc",
           "triu", "tril", "isnan", "isinf", "nan_to_num",
           // identity-like
           "dropout", "native_dropout", "clone", "contiguous", "alias", "detach",
           "lift_fresh_copy", "_to_copy", "to", "type_as", "zeros_like", "ones_like",
           "full_like", "empty_like", "rand_like", "randn_like", "fill"}) {
    t[op] = identity;
  }
  // Factories: the output may be created already split (each device makes
  // its slice), so its letters are free.
  auto factory = [](const ir::Graph& g, const ir::Node& n) -> std::optional<OpSignature> {
    OpSignature sig;
    LetterPool pool;
    std::string letters = pool.fresh(n.outputs[0].rank());
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      sig.inputs.push_back(std::string(g.meta(n.inputs[i]).shape.size(), kNoSplit));
    }
    sig.outputs = {letters};
    if (n.outputs.size() != 1) return std::nullopt;
    if (!n.inputs.empty()) return std::nullopt;
    return sig;
  };
  for (const char* op : {"arange", "zeros", "ones", "full", "empty", "rand", "randn",
                         "scalar_tensor"}) {
    t[op] = factory;
  }
}

}  // namespace alpa::sharding
