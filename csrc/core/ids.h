// This file implements typed integer ids (NodeId, StrategyIdx, ...) so that
// indices into different tables cannot be mixed up silently.
#pragma once

#include <cstdint>
#include <functional>

namespace alpa::core {

template <typename Tag>
struct TypedId {
  int64_t value = -1;

  constexpr TypedId() = default;
  constexpr explicit TypedId(int64_t v) : value(v) {}
  constexpr bool valid() const { return value >= 0; }
  constexpr size_t index() const { return static_cast<size_t>(value); }
  friend constexpr bool operator==(TypedId a, TypedId b) {
    return a.value == b.value;
  }
  friend constexpr bool operator!=(TypedId a, TypedId b) {
    return a.value != b.value;
  }
  friend constexpr bool operator<(TypedId a, TypedId b) {
    return a.value < b.value;
  }
};

}  // namespace alpa::core

template <typename Tag>
struct std::hash<alpa::core::TypedId<Tag>> {
  size_t operator()(alpa::core::TypedId<Tag> id) const {
    return std::hash<int64_t>()(id.value);
  }
};
