// This file implements Status and StatusOr<T>: how the torch-free planner
// reports errors a user can cause (bad input, unsupported op, infeasible
// memory). Internal invariants throw core::InternalError instead (check.h).
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace alpa::core {

/// Error classes; the pybind layer maps each to one Python exception type.
enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // ValueError
  kParseError,       // ValueError (malformed JSON or text)
  kNotImplemented,   // NotImplementedError
  kInfeasible,       // alpa_torch.PlanInfeasibleError
  kNotFound,         // KeyError-like lookups
  kInternal,         // RuntimeError
};

const char* status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message)
      : code_(code), message_(std::move(message)) {}

  static Status ok_status() { return Status(); }
  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  /// "InvalidArgument: <message>", or "OK".
  std::string to_string() const;
  /// Prefixes context to the message ("while reading node 3: ...").
  Status with_context(const std::string& context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status ok_status() { return Status(); }
inline Status invalid_argument(std::string m) {
  return Status(StatusCode::kInvalidArgument, std::move(m));
}
inline Status parse_error(std::string m) {
  return Status(StatusCode::kParseError, std::move(m));
}
inline Status not_implemented(std::string m) {
  return Status(StatusCode::kNotImplemented, std::move(m));
}
inline Status infeasible(std::string m) {
  return Status(StatusCode::kInfeasible, std::move(m));
}
inline Status not_found(std::string m) {
  return Status(StatusCode::kNotFound, std::move(m));
}
inline Status internal_error(std::string m) {
  return Status(StatusCode::kInternal, std::move(m));
}

/// Thrown by value() on an error StatusOr and by check failures.
class StatusError : public std::exception {
 public:
  explicit StatusError(Status status)
      : status_(std::move(status)), what_(status_.to_string()) {}
  const Status& status() const { return status_; }
  const char* what() const noexcept override { return what_.c_str(); }

 private:
  Status status_;
  std::string what_;
};

template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(Status status) : status_(std::move(status)) {  // NOLINT
    if (status_.ok()) {
      status_ = internal_error("StatusOr constructed from an OK status");
    }
  }
  StatusOr(T value) : value_(std::move(value)) {}  // NOLINT

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }

  /// The value; throws StatusError when this holds an error.
  T& value() & {
    throw_if_error();
    return *value_;
  }
  const T& value() const& {
    throw_if_error();
    return *value_;
  }
  T&& value() && {
    throw_if_error();
    return std::move(*value_);
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  void throw_if_error() const {
    if (!status_.ok()) throw StatusError(status_);
  }
  Status status_;
  std::optional<T> value_;
};

}  // namespace alpa::core

#define ALPA_CONCAT_INNER_(a, b) a##b
#define ALPA_CONCAT_(a, b) ALPA_CONCAT_INNER_(a, b)

/// Returns the status from the enclosing function when `expr` fails.
#define ALPA_RETURN_IF_ERROR(expr)                  \
  do {                                              \
    ::alpa::core::Status alpa_status_ = (expr);     \
    if (!alpa_status_.ok()) return alpa_status_;    \
  } while (false)

#define ALPA_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(tmp).value()

/// `ALPA_ASSIGN_OR_RETURN(auto x, f());` unwraps a StatusOr or returns its
/// error from the enclosing function.
#define ALPA_ASSIGN_OR_RETURN(lhs, expr) \
  ALPA_ASSIGN_OR_RETURN_IMPL_(ALPA_CONCAT_(alpa_or_, __LINE__), lhs, expr)
