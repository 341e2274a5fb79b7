// This file implements alpa_torch._runtime: the Python face of the C++
// pipeline executor. It is a second extension module, separate from the
// torch-free alpa_torch._C, because it passes tensors (torch's pybind
// casters) and so compiles against torch's headers and libtorch_python.
// The executor runs with the GIL released; a Python stage runner is called
// with the GIL held only around its compute. set_failure_hook lets Python
// turn a failed collective or transfer (runtime/failures.h) into an error
// that names the failed peer.
#include <torch/extension.h>

#include "runtime/failures.h"
#include "runtime/pipeline_executor.h"

namespace py = pybind11;

namespace alpa::runtime {
namespace {

/// A StageRunner calling a Python callable forward(stage, mb, inputs).
class PyStageRunner : public StageRunner {
 public:
  explicit PyStageRunner(py::object fn) : fn_(std::move(fn)) {}

  std::vector<at::Tensor> forward(int64_t stage, int64_t micro_batch,
                                  const std::vector<at::Tensor>& inputs) override {
    py::gil_scoped_acquire gil;
    py::object result = fn_(stage, micro_batch, inputs);
    return result.cast<std::vector<at::Tensor>>();
  }

 private:
  py::object fn_;
};

std::unique_ptr<PipelineExecutor> make_executor(const std::string& plan_json, int64_t device,
                                                const std::string& group_name, double timeout_s,
                                                double loss_scale) {
  auto plan = plan::Plan::parse(plan_json);
  if (!plan.ok()) throw py::value_error(plan.status().to_string());
  ExecutorOptions options;
  options.timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  options.loss_scale = loss_scale;
  return PipelineExecutor::create(*plan, device, group_name, options);
}

/// hook(collective, group, node, group_rank, peers, error, timed_out) is
/// called (GIL held) on every failure; what it raises propagates.
void set_python_failure_hook(py::object fn) {
  if (fn.is_none()) {
    set_failure_hook({});
    return;
  }
  // Never freed: the hook may be called from an autograd thread at any time,
  // and a py::object must not be destroyed without the GIL at exit.
  auto* held = new py::object(std::move(fn));
  set_failure_hook([held](const CollectiveFailure& f) {
    if (!Py_IsInitialized()) return;
    py::gil_scoped_acquire gil;
    (*held)(f.collective, f.group, f.node, f.group_rank, f.peers, f.error, f.timed_out);
  });
}

}  // namespace

void bind_torchscript(py::module_& m);  // bind_torchscript.cc
}  // namespace alpa::runtime

PYBIND11_MODULE(_runtime, m) {
  using alpa::runtime::PipelineExecutor;
  m.doc() = "alpa_torch runtime: the C++ pipeline executor";
  alpa::runtime::bind_torchscript(m);
  m.def("set_failure_hook", &alpa::runtime::set_python_failure_hook, py::arg("hook"),
        "hook(collective, group, node, group_rank, peers, error, timed_out) runs on every "
        "failed collective or transfer of torch.ops.alpa.* and the executor (None removes it); "
        "an exception it raises replaces the runtime's DistBackendError.");
  py::class_<PipelineExecutor>(m, "PipelineExecutor")
      .def(py::init(&alpa::runtime::make_executor), py::arg("plan_json"), py::arg("device"),
           py::arg("group_name"), py::arg("timeout_s") = 120.0, py::arg("loss_scale") = 1.0)
      .def("run",
           [](PipelineExecutor& e, py::object fn) {
             alpa::runtime::PyStageRunner runner(std::move(fn));
             py::gil_scoped_release release;
             return e.run(runner);
           },
           py::arg("forward"),
           "Runs one step; forward(stage, microbatch, inputs) -> outputs is called "
           "for each F action. Returns the microbatch losses on the last stage.")
      .def_property_readonly("stage", &PipelineExecutor::stage)
      .def("actions_text", &PipelineExecutor::actions_text)
      .def("schedule_text", [](const PipelineExecutor& e) { return e.schedule().to_string(); });
}
