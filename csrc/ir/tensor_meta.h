// This file implements TensorMeta: the static shape and dtype of one tensor
// value, with its text form "f32[8,1024]" ("f32[]" for a scalar).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "ir/dtype.h"

namespace alpa::ir {

using Shape = std::vector<int64_t>;

struct TensorMeta {
  Shape shape;
  DType dtype = DType::kFloat32;

  int64_t rank() const { return static_cast<int64_t>(shape.size()); }
  /// Number of elements (1 for a scalar).
  int64_t numel() const;
  /// numel × element size, in bytes.
  int64_t bytes() const;
  std::string to_string() const;
  static core::StatusOr<TensorMeta> parse(std::string_view text);

  friend bool operator==(const TensorMeta& a, const TensorMeta& b) {
    return a.shape == b.shape && a.dtype == b.dtype;
  }
  friend bool operator!=(const TensorMeta& a, const TensorMeta& b) {
    return !(a == b);
  }
};

/// "[8,1024]".
std::string shape_to_string(const Shape& shape);

}  // namespace alpa::ir
