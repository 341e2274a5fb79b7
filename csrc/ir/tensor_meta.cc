// This file implements TensorMeta sizes and its text form.
#include "ir/tensor_meta.h"

#include <cstdlib>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace alpa::ir {

int64_t TensorMeta::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int64_t TensorMeta::bytes() const { return numel() * dtype_size(dtype); }

std::string shape_to_string(const Shape& shape) {
  return fmt::format("[{}]", fmt::join(shape, ","));
}

std::string TensorMeta::to_string() const {
  return std::string(dtype_short_name(dtype)) + shape_to_string(shape);
}

core::StatusOr<TensorMeta> TensorMeta::parse(std::string_view text) {
  auto bad = [&](const char* why) {
    return core::parse_error(fmt::format(
        "bad tensor type '{}': {} (expected e.g. f32[8,1024])", text, why));
  };
  size_t open = text.find('[');
  if (open == std::string_view::npos || text.back() != ']') {
    return bad("missing [dims]");
  }
  TensorMeta meta;
  ALPA_ASSIGN_OR_RETURN(meta.dtype, parse_dtype(text.substr(0, open)));
  std::string_view dims = text.substr(open + 1, text.size() - open - 2);
  while (!dims.empty()) {
    size_t comma = dims.find(',');
    std::string token(dims.substr(0, comma));
    char* end = nullptr;
    long long v = std::strtoll(token.c_str(), &end, 10);
    if (token.empty() || end != token.c_str() + token.size() || v < 0) {
      return bad("dims must be non-negative integers");
    }
    meta.shape.push_back(v);
    if (comma == std::string_view::npos) break;
    dims.remove_prefix(comma + 1);
  }
  return meta;
}

}  // namespace alpa::ir
