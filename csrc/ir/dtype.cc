// This file implements DType names and sizes.
#include "ir/dtype.h"

#include <array>

#include <fmt/format.h>

namespace alpa::ir {
namespace {

struct DTypeInfo {
  DType dtype;
  const char* name;
  const char* short_name;
  int64_t size;
};

constexpr std::array<DTypeInfo, 11> kDTypes = {{
    {DType::kFloat32, "float32", "f32", 4},
    {DType::kFloat64, "float64", "f64", 8},
    {DType::kFloat16, "float16", "f16", 2},
    {DType::kBFloat16, "bfloat16", "bf16", 2},
    {DType::kInt64, "int64", "i64", 8},
    {DType::kInt32, "int32", "i32", 4},
    {DType::kInt16, "int16", "i16", 2},
    {DType::kInt8, "int8", "i8", 1},
    {DType::kUInt8, "uint8", "u8", 1},
    {DType::kBool, "bool", "b8", 1},
    {DType::kComplex64, "complex64", "c64", 8},
}};

const DTypeInfo& info(DType dtype) {
  return kDTypes[static_cast<size_t>(dtype)];
}

}  // namespace

int64_t dtype_size(DType dtype) { return info(dtype).size; }
const char* dtype_name(DType dtype) { return info(dtype).name; }
const char* dtype_short_name(DType dtype) { return info(dtype).short_name; }

core::StatusOr<DType> parse_dtype(std::string_view name) {
  if (name.substr(0, 6) == "torch.") name.remove_prefix(6);
  for (const auto& d : kDTypes) {
    if (name == d.name || name == d.short_name) return d.dtype;
  }
  if (name == "float") return DType::kFloat32;
  if (name == "double") return DType::kFloat64;
  if (name == "half") return DType::kFloat16;
  if (name == "long") return DType::kInt64;
  if (name == "int") return DType::kInt32;
  return core::invalid_argument(fmt::format(
      "unknown dtype '{}' (expected one of float32, float64, float16, "
      "bfloat16, int64, int32, int16, int8, uint8, bool, complex64)",
      name));
}

bool is_floating(DType dtype) {
  return dtype == DType::kFloat32 || dtype == DType::kFloat64 ||
         dtype == DType::kFloat16 || dtype == DType::kBFloat16;
}

}  // namespace alpa::ir
