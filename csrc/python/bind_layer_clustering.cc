// This file implements the Python bindings of layer clustering.
#include <pybind11/pybind11.h>

namespace py = pybind11;

namespace alpa::python {

void bind_layer_clustering(py::module_& m) {}

}  // namespace alpa::python
