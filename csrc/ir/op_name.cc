// This file implements op-name parsing.
#include "ir/op_name.h"

namespace alpa::ir {

std::string_view op_base_name(std::string_view q) {
  size_t first = q.find('.');
  if (first == std::string_view::npos) return q;
  std::string_view rest = q.substr(first + 1);
  size_t second = rest.find('.');
  return second == std::string_view::npos ? rest : rest.substr(0, second);
}

std::string_view op_overload(std::string_view q) {
  size_t first = q.find('.');
  if (first == std::string_view::npos) return {};
  std::string_view rest = q.substr(first + 1);
  size_t second = rest.find('.');
  return second == std::string_view::npos ? std::string_view{}
                                          : rest.substr(second + 1);
}

}  // namespace alpa::ir
