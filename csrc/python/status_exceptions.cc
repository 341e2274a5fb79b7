// This file implements the Status -> Python exception mapping.
#include "python/status_exceptions.h"

#include "core/check.h"

namespace py = pybind11;

namespace alpa::python {
namespace {

PyObject* exception_type(core::StatusCode code) {
  switch (code) {
    case core::StatusCode::kInvalidArgument:
    case core::StatusCode::kParseError:
      return PyExc_ValueError;
    case core::StatusCode::kNotImplemented:
      return PyExc_NotImplementedError;
    case core::StatusCode::kNotFound:
      return PyExc_KeyError;
    case core::StatusCode::kInfeasible: {
      // Defined in Python so users can catch it without importing _C.
      static py::object cls =
          py::module_::import("alpa_torch.errors").attr("PlanInfeasibleError");
      return cls.ptr();
    }
    default:
      return PyExc_RuntimeError;
  }
}

}  // namespace

void throw_if_error(const core::Status& status) {
  if (status.ok()) return;
  PyErr_SetString(exception_type(status.code()), status.message().c_str());
  throw py::error_already_set();
}

void register_exception_translators(py::module_& m) {
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const core::StatusError& e) {
      PyErr_SetString(exception_type(e.status().code()),
                      e.status().message().c_str());
    } catch (const core::InternalError& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    }
  });
}

}  // namespace alpa::python
