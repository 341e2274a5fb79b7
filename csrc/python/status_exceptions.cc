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

/// Sets the Python error from a message that may hold bytes that are not
/// UTF-8 (quoted from a user's file): they become U+FFFD, so the user sees
/// the exception the status maps to, never a UnicodeDecodeError.
void set_error(PyObject* type, const std::string& message) {
  PyObject* text = PyUnicode_DecodeUTF8(message.data(), static_cast<Py_ssize_t>(message.size()),
                                        "replace");
  PyErr_SetObject(type, text);
  Py_XDECREF(text);
}

}  // namespace

void throw_if_error(const core::Status& status) {
  if (status.ok()) return;
  set_error(exception_type(status.code()), status.message());
  throw py::error_already_set();
}

void register_exception_translators(py::module_& m) {
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const core::StatusError& e) {
      set_error(exception_type(e.status().code()), e.status().message());
    } catch (const core::InternalError& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    }
  });
}

}  // namespace alpa::python
