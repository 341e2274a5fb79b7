// This file implements Attr: the value of one non-tensor argument of an op
// (an int, a list of dims, a string, ...) or the position of a tensor
// argument among the node's inputs. Every schema argument of a captured op is
// recorded by name, so sharding rules read `dim`, `stride`, `bias` by name.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "core/json.h"
#include "core/status.h"

namespace alpa::ir {

/// A tensor argument: index into Node::inputs.
struct InputRef {
  int64_t position = 0;
  friend bool operator==(InputRef a, InputRef b) { return a.position == b.position; }
};
/// A list of tensor arguments (cat's tensors, index's indices); -1 = None.
struct InputRefs {
  std::vector<int64_t> positions;
  friend bool operator==(const InputRefs& a, const InputRefs& b) {
    return a.positions == b.positions;
  }
};
/// A list of floats (distinct from a list of ints so round trips are exact).
struct Floats {
  std::vector<double> values;
  friend bool operator==(const Floats& a, const Floats& b) {
    return a.values == b.values;
  }
};

using Attr = std::variant<std::monostate, bool, int64_t, double, std::string,
                          std::vector<int64_t>, Floats, InputRef, InputRefs>;

/// Text form: none, true, 3, 1.5, "tanh", [1,2], f[0.5], $0, $[0,-1].
std::string attr_to_string(const Attr& attr);
core::Json attr_to_json(const Attr& attr);
core::StatusOr<Attr> attr_from_json(const core::Json& json);

}  // namespace alpa::ir
