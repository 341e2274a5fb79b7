// This file implements the Python bindings of sharding specs and of the
// local programs (csrc/rewrite/): read-only classes the FX emitter walks,
// so that Python parses no spec and makes no decision of its own.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "plan/plan.h"
#include "python/status_exceptions.h"
#include "rewrite/build_local_program.h"

namespace py = pybind11;

namespace alpa::python {

namespace {

using rewrite::LocalProgram;
using sharding::ShardingSpec;

std::vector<int64_t> blocks_of(const ShardingSpec& s) {
  std::vector<int64_t> out;
  for (int64_t d = 0; d < s.rank(); ++d) out.push_back(s.block(d));
  return out;
}

void bind_spec(py::module_& m) {
  py::class_<ShardingSpec>(m, "ShardingSpec",
                           "How a tensor is laid out on a logical mesh (DESIGN §4): per dim the "
                           "mesh axes splitting it and its block factor, and the partial-sum axes.")
      .def_static("parse", [](const std::string& text) {
        return unwrap(ShardingSpec::parse(text == "-" ? "" : text));
      }, py::arg("text"))
      .def_property_readonly("dims", [](const ShardingSpec& s) { return s.dims; })
      .def_property_readonly("blocks", &blocks_of)
      .def_property_readonly("partial", [](const ShardingSpec& s) { return s.partial; })
      .def_property_readonly("rank", &ShardingSpec::rank)
      .def("is_replicated", &ShardingSpec::is_replicated)
      .def("pieces", [](const ShardingSpec& s, std::array<int64_t, 2> mesh_shape,
                        std::array<int64_t, 2> coord) {
        std::vector<std::tuple<int64_t, int64_t, int64_t>> out;
        for (const auto& p : s.pieces(mesh_shape, coord)) out.emplace_back(p.index, p.count, p.block);
        return out;
      }, py::arg("mesh_shape"), py::arg("coord"),
         "Per dim (piece index, piece count, block factor) of the device at `coord`.")
      .def("__str__", &ShardingSpec::to_string)
      .def("__repr__", [](const ShardingSpec& s) { return "ShardingSpec('" + s.to_string() + "')"; })
      .def("__eq__", [](const ShardingSpec& a, const ShardingSpec& b) { return a == b; })
      .def("__hash__", [](const ShardingSpec& s) { return py::hash(py::str(s.to_string())); });

  py::enum_<sharding::ReshardOp>(m, "ReshardOp")
      .value("all_reduce", sharding::ReshardOp::kAllReduce)
      .value("reduce_scatter", sharding::ReshardOp::kReduceScatter)
      .value("slice", sharding::ReshardOp::kSlice)
      .value("all_to_all", sharding::ReshardOp::kAllToAll)
      .value("all_gather", sharding::ReshardOp::kAllGather);
  // Named as the Plan JSON's "role" field names them.
  py::enum_<sharding::CollectiveRole> roles(m, "CollectiveRole",
                                            "Why a collective runs (sharding/collective.h).");
  for (auto role : {sharding::CollectiveRole::kReshard, sharding::CollectiveRole::kPartialOutput,
                    sharding::CollectiveRole::kInputGrad, sharding::CollectiveRole::kParameterGrad,
                    sharding::CollectiveRole::kSyncedStatistics,
                    sharding::CollectiveRole::kSyncedStatisticGrads,
                    sharding::CollectiveRole::kTokenDispatch,
                    sharding::CollectiveRole::kTokenCombine}) {
    roles.value(sharding::collective_role_name(role), role);
  }
  py::class_<sharding::ReshardStep>(m, "ReshardStep", "One resharding step over one mesh axis.")
      .def_readonly("op", &sharding::ReshardStep::op)
      .def_readonly("axis", &sharding::ReshardStep::axis)
      .def_readonly("from_dim", &sharding::ReshardStep::from_dim)
      .def_readonly("to_dim", &sharding::ReshardStep::to_dim);
}

void bind_program(py::module_& m) {
  py::class_<rewrite::Move>(m, "Move", "A value moved from one layout to another, step by step.")
      .def_readonly("from_spec", &rewrite::Move::from)
      .def_readonly("to_spec", &rewrite::Move::to)
      .def_readonly("steps", &rewrite::Move::steps);
  py::class_<rewrite::ValueName>(m, "ValueName", "Output `index` of graph node `node`.")
      .def_readonly("node", &rewrite::ValueName::node)
      .def_readonly("index", &rewrite::ValueName::index)
      .def("__str__", &rewrite::ValueName::to_string);
  py::class_<rewrite::LocalValue>(m, "LocalValue")
      .def_readonly("value", &rewrite::LocalValue::value)
      .def_property_readonly("shape", [](const rewrite::LocalValue& v) { return v.meta.shape; })
      .def_property_readonly("dtype", [](const rewrite::LocalValue& v) { return ir::dtype_name(v.meta.dtype); })
      .def_readonly("spec", &rewrite::LocalValue::spec)
      .def_readonly("local_shape", &rewrite::LocalValue::local_shape);
  py::class_<rewrite::LocalPlaceholder>(m, "LocalPlaceholder")
      .def_property_readonly("kind", [](const rewrite::LocalPlaceholder& p) { return ir::node_kind_name(p.kind); })
      .def_readonly("target", &rewrite::LocalPlaceholder::target)
      .def_readonly("value", &rewrite::LocalPlaceholder::value);
  py::class_<rewrite::LocalInput>(m, "LocalInput")
      .def_readonly("value", &rewrite::LocalInput::value)
      .def_readonly("move", &rewrite::LocalInput::move)
      .def_readonly("buffer_view", &rewrite::LocalInput::buffer_view)
      .def_readonly("grad_reduce", &rewrite::LocalInput::grad_reduce)
      .def_readonly("bucketed", &rewrite::LocalInput::bucketed);
  py::enum_<rewrite::LocalOpKind>(m, "LocalOpKind")
      .value("plain", rewrite::LocalOpKind::kPlain)
      .value("partial_sum", rewrite::LocalOpKind::kPartialSum)
      .value("row_split_embedding", rewrite::LocalOpKind::kRowSplitEmbedding)
      .value("synced_batch_norm", rewrite::LocalOpKind::kSyncedBatchNorm)
      .value("experts", rewrite::LocalOpKind::kExperts)
      .value("expert_rows", rewrite::LocalOpKind::kExpertRows)
      .value("whole_then_slice", rewrite::LocalOpKind::kWholeThenSlice);
  py::class_<rewrite::LocalNode>(m, "LocalNode")
      .def_readonly("name", &rewrite::LocalNode::name)
      .def_readonly("op", &rewrite::LocalNode::op)
      .def_readonly("kind", &rewrite::LocalNode::kind)
      .def_readonly("inputs", &rewrite::LocalNode::inputs)
      .def_readonly("outputs", &rewrite::LocalNode::outputs)
      .def_property_readonly("args", [](const rewrite::LocalNode& n) {
        py::dict out;
        for (const auto& a : n.args) out[py::str(a.name)] = py::cast(a.value);
        return out;
      })
      .def_readonly("reduce_axes", &rewrite::LocalNode::reduce_axes)
      .def_readonly("local_op", &rewrite::LocalNode::local_op)
      .def_readonly("addend", &rewrite::LocalNode::addend)
      .def_readonly("addend_broadcast", &rewrite::LocalNode::addend_broadcast)
      .def_readonly("mean_divisor", &rewrite::LocalNode::mean_divisor)
      .def_readonly("rows_per_piece", &rewrite::LocalNode::rows_per_piece)
      .def_readonly("statistics_count", &rewrite::LocalNode::statistics_count)
      .def_readonly("exchange_axes", &rewrite::LocalNode::exchange_axes);
  py::class_<rewrite::GradBucket>(m, "GradBucket")
      .def_readonly("axes", &rewrite::GradBucket::axes)
      .def_property_readonly("dtype", [](const rewrite::GradBucket& b) { return ir::dtype_name(b.dtype); })
      .def_readonly("parameters", &rewrite::GradBucket::parameters);
  py::class_<rewrite::LocalOutput>(m, "LocalOutput")
      .def_readonly("value", &rewrite::LocalOutput::value)
      .def_readonly("move", &rewrite::LocalOutput::move);
  py::class_<rewrite::BufferView>(m, "BufferView")
      .def_readonly("buffer", &rewrite::BufferView::buffer)
      .def_readonly("spec", &rewrite::BufferView::spec);
  py::class_<LocalProgram>(m, "LocalProgram",
                           "What one stage runs on each of its devices (csrc/rewrite/local_program.h).")
      .def_static("parse", [](const std::string& text) { return unwrap(rewrite::parse_local_program(text)); })
      .def_readonly("stage", &LocalProgram::stage)
      .def_readonly("mesh_shape", &LocalProgram::mesh_shape)
      .def_readonly("received", &LocalProgram::received)
      .def_readonly("placeholders", &LocalProgram::placeholders)
      .def_readonly("nodes", &LocalProgram::nodes)
      .def_readonly("sends", &LocalProgram::sends)
      .def_readonly("graph_outputs", &LocalProgram::graph_outputs)
      .def_readonly("graph_output_indices", &LocalProgram::graph_output_indices)
      .def_readonly("buckets", &LocalProgram::buckets)
      .def_readonly("buffer_views", &LocalProgram::buffer_views)
      .def("to_string", &LocalProgram::to_string)
      .def("__str__", &LocalProgram::to_string)
      .def("__eq__", [](const LocalProgram& a, const LocalProgram& b) { return a == b; });

  m.def("build_local_program", [](const ir::Graph& graph, const std::string& plan_json, int64_t stage) {
    plan::Plan plan = unwrap(plan::Plan::parse(plan_json));
    return unwrap(rewrite::build_local_program(graph, plan, stage));
  }, py::arg("graph"), py::arg("plan_json"), py::arg("stage") = 0,
     "The local program of one stage of a plan (csrc/rewrite/build_local_program.h).");
}

}  // namespace

void bind_local_program(py::module_& m) {
  bind_spec(m);
  bind_program(m);
}

}  // namespace alpa::python
