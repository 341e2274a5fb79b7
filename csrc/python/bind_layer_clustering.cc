// This file implements the Python bindings of layer clustering (Alpa §5.1):
// cluster_layers(graph, ...) returns plain Python data (a dict), and
// auto_num_layers / repeated_blocks expose how L is chosen automatically.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "inter_op/layer_clustering.h"
#include "python/status_exceptions.h"

namespace py = pybind11;

namespace alpa::python {
namespace {

py::dict clustering_to_dict(const ir::Graph& graph, const inter_op::LayerClustering& c) {
  py::list flops, input_bytes, ranges;
  for (const inter_op::Layer& layer : c.layers) {
    flops.append(layer.flops);
    input_bytes.append(layer.input_bytes);
    ranges.append(py::make_tuple(layer.first_node, layer.last_node));
  }
  py::dict shared;  // placeholder name -> layers reading it
  for (const inter_op::SharedPlaceholder& s : c.shared) {
    shared[py::str(graph.nodes()[s.node].name)] = s.layers;
  }
  py::dict out;
  out["layer_of_node"] = c.layer_of_node;
  out["num_layers"] = c.num_layers();
  out["layer_flops"] = flops;
  out["layer_input_bytes"] = input_bytes;
  out["layer_node_ranges"] = ranges;
  out["max_input_bytes"] = c.max_input_bytes();
  out["shared_placeholders"] = shared;
  out["text"] = c.to_string();
  return out;
}

}  // namespace

void bind_layer_clustering(py::module_& m) {
  m.def("cluster_layers", [](const ir::Graph& graph, int64_t num_layers, double eps,
                             int64_t max_auto_layers) {
    inter_op::LayerClusteringOptions options{num_layers, eps, max_auto_layers};
    core::StatusOr<inter_op::LayerClustering> result = core::internal_error("unset");
    {
      py::gil_scoped_release release;
      result = inter_op::cluster_layers(graph, options);
    }
    throw_if_error(result.status());
    return clustering_to_dict(graph, *result);
  }, py::arg("graph"), py::arg("num_layers") = 0, py::arg("eps") = 0.5,
     py::arg("max_auto_layers") = 16,
     "Cut the op nodes into contiguous layers minimizing the largest bytes "
     "flowing into a layer, each layer within (1 + eps) * total / L FLOPs "
     "(Alpa §5.1). num_layers=0 picks L from the repeated blocks. Returns a "
     "dict: layer_of_node (every node), num_layers, layer_flops, "
     "layer_input_bytes (bytes), layer_node_ranges (first, last op node id), "
     "max_input_bytes, shared_placeholders (name -> layers), text.");
  m.def("auto_num_layers", &inter_op::auto_num_layers, py::arg("graph"),
        py::arg("max_layers") = 16,
        "The automatic layer count: repeated blocks (else 8), capped.");
  m.def("repeated_blocks", [](const ir::Graph& graph) {
    inter_op::RepeatedBlocks blocks = inter_op::find_repeated_blocks(graph);
    return py::make_tuple(blocks.prefix, blocks.count);
  }, py::arg("graph"),
     "(container prefix, count) of the model's repeated blocks; count 0 when none.");
}

}  // namespace alpa::python
