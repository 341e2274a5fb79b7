// This file implements the failure path of ALPA_CHECK.
#include "core/check.h"

namespace alpa::core {

void throw_check_failure(const char* file, int line, const char* condition,
                         const std::string& message) {
  throw InternalError(fmt::format(
      "alpa_torch internal error at {}:{}: check `{}` failed: {} "
      "(this is a bug in alpa_torch; please report it with the model)",
      file, line, condition, message));
}

}  // namespace alpa::core
