// This file implements the Python bindings of cross-mesh resharding plans.
#include <pybind11/pybind11.h>

namespace py = pybind11;

namespace alpa::python {

void bind_cross_mesh(py::module_& m) {}

}  // namespace alpa::python
