// This file implements ALPA_CHECK: internal invariants that, when broken,
// mean a bug in alpa_torch, not bad user input. They throw InternalError
// (never abort: the planner lives inside a Python process).
#pragma once

#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace alpa::core {

class InternalError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

[[noreturn]] void throw_check_failure(const char* file, int line,
                                      const char* condition,
                                      const std::string& message);

}  // namespace alpa::core

/// ALPA_CHECK(cond, "fmt {}", args...): throws InternalError with the
/// condition, location and formatted message when `cond` is false.
#define ALPA_CHECK(cond, ...)                                             \
  do {                                                                    \
    if (!(cond)) {                                                        \
      ::alpa::core::throw_check_failure(__FILE__, __LINE__, #cond,        \
                                        ::fmt::format(__VA_ARGS__));      \
    }                                                                     \
  } while (false)
