// This file implements DType: the element types a captured tensor can have,
// their sizes, and their names in PyTorch ("float32") and text form ("f32").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace alpa::ir {

enum class DType {
  kFloat32,
  kFloat64,
  kFloat16,
  kBFloat16,
  kInt64,
  kInt32,
  kInt16,
  kInt8,
  kUInt8,
  kBool,
  kComplex64,
};

/// Bytes per element.
int64_t dtype_size(DType dtype);
/// PyTorch name without the "torch." prefix: "float32", "bfloat16", "bool".
const char* dtype_name(DType dtype);
/// Short name used by the text form: "f32", "bf16", "i64", "b8".
const char* dtype_short_name(DType dtype);
/// Accepts both the PyTorch and the short name.
core::StatusOr<DType> parse_dtype(std::string_view name);
bool is_floating(DType dtype);

}  // namespace alpa::ir
