// This file implements the Python bindings of the graph IR (alpa_torch._C):
// Graph with its JSON and text forms, read-only node views, and FLOP
// categories. Python builds graphs by handing the versioned JSON form to
// Graph.from_json, so there is one decoder for files and captures alike.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "ir/flops.h"
#include "ir/graph.h"
#include "ir/json_format.h"
#include "ir/text_format.h"
#include "ir/verifier.h"
#include "python/status_exceptions.h"

namespace py = pybind11;

namespace alpa::python {
namespace {

py::object attr_to_py(const ir::Attr& attr) {
  struct Visitor {
    py::object operator()(std::monostate) const { return py::none(); }
    py::object operator()(bool b) const { return py::bool_(b); }
    py::object operator()(int64_t v) const { return py::int_(v); }
    py::object operator()(double v) const { return py::float_(v); }
    py::object operator()(const std::string& s) const { return py::str(s); }
    py::object operator()(const std::vector<int64_t>& v) const { return py::cast(v); }
    py::object operator()(const ir::Floats& f) const { return py::cast(f.values); }
    py::object operator()(ir::InputRef r) const {
      return py::dict(py::arg("input") = r.position);
    }
    py::object operator()(const ir::InputRefs& r) const {
      return py::dict(py::arg("inputs") = r.positions);
    }
  };
  return std::visit(Visitor{}, attr);
}

ir::Graph graph_from_json_text(const std::string& text, bool annotate) {
  auto json = core::parse_json(text);
  throw_if_error(json.status());
  ir::Graph graph = unwrap(ir::graph_from_json(*json));
  throw_if_error(ir::verify_graph(graph));
  if (annotate) throw_if_error(ir::annotate_flops(graph));
  return graph;
}

}  // namespace

void bind_ir(py::module_& m) {
  py::class_<ir::Node>(m, "Node", "One node of the captured graph (read-only view).")
      .def_property_readonly("id", [](const ir::Node& n) { return n.id.value; })
      .def_readonly("name", &ir::Node::name)
      .def_property_readonly("kind", [](const ir::Node& n) { return ir::node_kind_name(n.kind); })
      .def_readonly("op", &ir::Node::op)
      .def_readonly("target", &ir::Node::target)
      .def_property_readonly("inputs", [](const ir::Node& n) {
        py::list out;
        for (const auto& v : n.inputs) out.append(py::make_tuple(v.node.value, v.index));
        return out;
      })
      .def_property_readonly("attrs", [](const ir::Node& n) {
        py::dict out;
        for (const auto& [k, v] : n.attrs) out[py::str(k)] = attr_to_py(v);
        return out;
      })
      .def_property_readonly("outputs", [](const ir::Node& n) {
        py::list out;
        for (const auto& t : n.outputs) {
          out.append(py::make_tuple(py::cast(t.shape), ir::dtype_name(t.dtype)));
        }
        return out;
      })
      .def_property_readonly("category", [](const ir::Node& n) {
        return n.is_placeholder() ? "placeholder" : ir::op_category_name(ir::op_category(n.op));
      })
      .def_readonly("flops", &ir::Node::flops)
      .def_readonly("module", &ir::Node::module)
      .def_readonly("requires_grad", &ir::Node::requires_grad)
      .def("__repr__", [](const ir::Node& n) {
        return "<Node %" + n.name + " " + (n.is_placeholder() ? ir::node_kind_name(n.kind) : n.op) + ">";
      });

  py::class_<ir::Graph>(m, "Graph", "The planner's ATen-level graph IR.")
      .def_static("from_json", &graph_from_json_text, py::arg("text"),
                  py::arg("annotate_flops") = false,
                  "Decode and verify the versioned JSON form; optionally "
                  "compute per-node FLOPs.")
      .def_static("from_text", [](const std::string& text) {
        return unwrap(ir::parse_graph_text(text));
      })
      .def("to_json", [](const ir::Graph& g, int indent) {
        return core::dump_json(ir::graph_to_json(g), indent);
      }, py::arg("indent") = -1)
      .def("to_text", &ir::graph_to_text)
      .def("verify", [](const ir::Graph& g) { throw_if_error(ir::verify_graph(g)); })
      .def_property_readonly("name", &ir::Graph::name)
      .def_property_readonly("nodes", [](const ir::Graph& g) { return g.nodes(); })
      .def_property_readonly("num_nodes", &ir::Graph::num_nodes)
      .def_property_readonly("outputs", [](const ir::Graph& g) {
        py::list out;
        for (const auto& o : g.outputs()) {
          out.append(py::make_tuple(py::make_tuple(o.value.node.value, o.value.index),
                                    ir::output_role_name(o.role), o.target));
        }
        return out;
      })
      .def("total_flops", &ir::Graph::total_flops)
      .def("parameter_bytes", &ir::Graph::parameter_bytes)
      .def("fingerprint", &ir::Graph::fingerprint)
      .def("__eq__", [](const ir::Graph& a, const ir::Graph& b) { return a == b; })
      .def("__len__", &ir::Graph::num_nodes);

  m.def("op_category", [](const std::string& op) {
    return ir::op_category_name(ir::op_category(op));
  }, "FLOP category of an ATen op name: matmul, convolution, attention, norm, "
     "softmax, reduction, elementwise or data.");
}

}  // namespace alpa::python
