// This file implements the one place where planner errors become Python
// exceptions: InvalidArgument/ParseError -> ValueError, NotImplemented ->
// NotImplementedError, Infeasible -> alpa_torch.PlanInfeasibleError,
// NotFound -> KeyError, Internal -> RuntimeError.
#pragma once

#include <pybind11/pybind11.h>

#include "core/status.h"

namespace alpa::python {

/// Raises the Python exception for a non-OK status (throws
/// pybind11::error_already_set); returns when `status` is OK.
void throw_if_error(const core::Status& status);

/// Unwraps a StatusOr or raises.
template <typename T>
T unwrap(core::StatusOr<T> result) {
  throw_if_error(result.status());
  return std::move(result).value();
}

/// Registers translators for core::StatusError and core::InternalError.
void register_exception_translators(pybind11::module_& m);

}  // namespace alpa::python
