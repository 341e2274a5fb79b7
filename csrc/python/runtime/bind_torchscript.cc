// This file implements the Python face of the TorchScript importer
// (runtime/torchscript_import.h), so Python (and the fuzz target
// tests/fuzz/torchscript_target.py) reaches the C++ code that LibTorch
// applications use:
//
//   alpa_torch._runtime.import_torchscript(path_or_bytes, ["f32[8,16]"]) -> graph JSON
//
// The result is the graph's JSON text (alpa_torch.Graph.from_json reads it):
// the graph types live in the torch-free alpa_torch._C, not in this module.
#include <torch/extension.h>

#include <sstream>
#include <string>
#include <vector>

#include "ir/json_format.h"
#include "python/status_exceptions.h"
#include "runtime/pickle_framing.h"
#include "runtime/torchscript_import.h"

namespace py = pybind11;

namespace alpa::runtime {
namespace {

py::str import_torchscript_json(const py::object& source,
                                    const std::vector<std::string>& input_specs,
                                    const std::string& method,
                                    const std::vector<std::string>& input_names,
                                    const std::string& graph_name) {
  TorchScriptImportOptions options;
  options.method = method;
  options.input_names = input_names;
  options.graph_name = graph_name;
  const std::vector<c10::IValue> inputs =
      python::unwrap(example_inputs_from_specs(input_specs));
  const bool from_bytes = py::isinstance<py::bytes>(source);
  const std::string text = from_bytes
      ? source.cast<std::string>()
      : py::str(py::module_::import("os").attr("fspath")(source)).cast<std::string>();
  auto graph = [&] {
    py::gil_scoped_release release;  // the import runs torch ops only
    if (!from_bytes) return import_torchscript_file(text, inputs, options);
    std::istringstream stream(text);
    return import_torchscript_stream(stream, "the TorchScript bytes", inputs, options);
  }();
  // Names come from the user's file: bytes that are not UTF-8 become U+FFFD.
  const std::string json = core::dump_json(ir::graph_to_json(python::unwrap(std::move(graph))));
  return py::reinterpret_steal<py::str>(
      PyUnicode_DecodeUTF8(json.data(), static_cast<Py_ssize_t>(json.size()), "replace"));
}

}  // namespace

void bind_torchscript(py::module_& m) {
  m.def(
      "check_pickle_framing",
      [](const py::bytes& pickle, const std::string& name) {
        const std::string bytes = pickle;
        python::throw_if_error(check_pickle_framing(bytes, name));
      },
      py::arg("pickle"), py::arg("name") = "pickle",
      "Raises ValueError when the pickle's opcodes declare lengths, lines or memo indexes "
      "its bytes cannot hold (the check the importer runs on an archive's .pkl records "
      "before torch::jit::load).");
  m.def("import_torchscript", &import_torchscript_json, py::arg("source"),
        py::arg("input_specs"), py::arg("method") = "forward",
        py::arg("input_names") = std::vector<std::string>{}, py::arg("graph_name") = "",
        "The graph of a TorchScript module (a path, or the bytes of a file written by "
        "torch.jit.save) called with inputs of the given tensor types (\"f32[8,16]\"), as "
        "JSON text for alpa_torch.Graph.from_json. Shapes only: the importer runs on meta "
        "tensors. Raises ValueError (bad file or inputs) or NotImplementedError (an op the "
        "planner does not support, named with its module).");
}

}  // namespace alpa::runtime
