// This file implements the alpa_torch._C extension module: the one pybind11
// module, which only gathers the per-area bindings.
#include <pybind11/pybind11.h>

#include "python/status_exceptions.h"

namespace py = pybind11;

namespace alpa::python {
void bind_ir(py::module_& m);
void bind_planner(py::module_& m);
void bind_stage_dp(py::module_& m);
void bind_layer_clustering(py::module_& m);
void bind_schedule(py::module_& m);
void bind_cross_mesh(py::module_& m);
void bind_local_program(py::module_& m);
}  // namespace alpa::python

PYBIND11_MODULE(_C, m) {
  m.doc() = "alpa_torch C++ core: graph IR and planner";
  alpa::python::register_exception_translators(m);
  alpa::python::bind_ir(m);
  alpa::python::bind_planner(m);
  alpa::python::bind_stage_dp(m);
  alpa::python::bind_layer_clustering(m);
  alpa::python::bind_schedule(m);
  alpa::python::bind_cross_mesh(m);
  alpa::python::bind_local_program(m);
}
