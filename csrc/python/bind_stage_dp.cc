// This file implements the Python bindings of the inter-op stage DP and sub-mesh enumeration.
#include <pybind11/pybind11.h>

namespace py = pybind11;

namespace alpa::python {

void bind_stage_dp(py::module_& m) {}

}  // namespace alpa::python
