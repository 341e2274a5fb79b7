// This file implements the Python binding of the local programs
// (csrc/rewrite/): a stage's program as its text form.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "plan/plan.h"
#include "python/status_exceptions.h"
#include "rewrite/build_local_program.h"

namespace py = pybind11;

namespace alpa::python {

void bind_local_program(py::module_& m) {
  m.def("local_program", [](const ir::Graph& graph, const std::string& plan_json, int64_t stage) {
    plan::Plan plan = unwrap(plan::Plan::parse(plan_json));
    return unwrap(rewrite::build_local_program(graph, plan, stage)).to_string();
  }, py::arg("graph"), py::arg("plan_json"), py::arg("stage") = 0,
     "The local program of one stage of a plan, as text (csrc/rewrite/local_program.h): per node "
     "the resharding steps of its inputs, gradient reductions, partial sums and local sizes.");
}

}  // namespace alpa::python
