// This file implements the Python bindings of cross-mesh resharding plans
// (plan/cross_mesh.h): the transfers as dicts, the plan's text form, and
// its α-β time estimate. Meshes are given as (shape, global device ids);
// without a cluster description they are placed on a one-host "cpu-gloo"
// cluster just large enough for the ids (hosts only steer which replica
// sends, see plan_cross_mesh).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <optional>

#include "core/json.h"
#include "plan/cross_mesh.h"
#include "python/status_exceptions.h"

namespace py = pybind11;

namespace alpa::python {
namespace {

mesh::Cluster cluster_for(const std::optional<std::string>& cluster_json,
                          const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  if (cluster_json) {
    auto j = core::parse_json(*cluster_json);
    throw_if_error(j.status());
    return unwrap(mesh::Cluster::from_json(*j));
  }
  int64_t top = 0;
  for (int64_t d : a) top = std::max(top, d);
  for (int64_t d : b) top = std::max(top, d);
  return unwrap(mesh::cluster_preset("cpu-gloo", 1, top + 1));
}

// ShardingSpec::parse sizes `blocks` when it meets the first `x`, so a
// block factor on an early dim ("S0x3S1") leaves later dims without an
// entry; they mean factor 1.
sharding::ShardingSpec parse_spec(const std::string& text, const char* what) {
  auto spec = sharding::ShardingSpec::parse(text);
  throw_if_error(spec.status().with_context(what));
  if (!spec->blocks.empty()) spec->blocks.resize(spec->dims.size(), 1);
  return *spec;
}

plan::CrossMeshPlan make_plan(const std::vector<int64_t>& shape, int64_t itemsize,
                              std::array<int64_t, 2> src_mesh_shape,
                              const std::vector<int64_t>& src_device_ids,
                              const std::string& src_spec, std::array<int64_t, 2> dst_mesh_shape,
                              const std::vector<int64_t>& dst_device_ids,
                              const std::string& dst_spec,
                              const std::optional<std::string>& cluster_json) {
  mesh::Cluster cluster = cluster_for(cluster_json, src_device_ids, dst_device_ids);
  auto src_mesh = mesh::DeviceMesh::create(cluster, src_mesh_shape, src_device_ids);
  throw_if_error(src_mesh.status().with_context("source mesh"));
  auto dst_mesh = mesh::DeviceMesh::create(cluster, dst_mesh_shape, dst_device_ids);
  throw_if_error(dst_mesh.status().with_context("destination mesh"));
  sharding::ShardingSpec a = parse_spec(src_spec, "source spec");
  sharding::ShardingSpec b = parse_spec(dst_spec, "destination spec");
  return unwrap(plan::plan_cross_mesh(shape, itemsize, *src_mesh, a, *dst_mesh, b));
}

py::list box_list(const plan::Box& box) {
  py::list out;
  for (const plan::Range& r : box) out.append(py::make_tuple(r.begin, r.end));
  return out;
}

py::list transfer_dicts(const plan::CrossMeshPlan& p) {
  py::list out;
  for (const plan::Transfer& t : p.transfers) {
    py::dict d;
    d["src"] = t.src_device;
    d["dst"] = t.dst_device;
    d["box"] = box_list(t.box);
    d["src_local_box"] = box_list(t.src_local);
    d["dst_local_box"] = box_list(t.dst_local);
    d["bytes"] = t.bytes;
    out.append(d);
  }
  return out;
}

}  // namespace

void bind_cross_mesh(py::module_& m) {
  m.def("cross_mesh_plan",
        [](const std::vector<int64_t>& shape, int64_t itemsize, std::array<int64_t, 2> src_shape,
           const std::vector<int64_t>& src_ids, const std::string& src_spec,
           std::array<int64_t, 2> dst_shape, const std::vector<int64_t>& dst_ids,
           const std::string& dst_spec, const std::optional<std::string>& cluster_json) {
          return transfer_dicts(make_plan(shape, itemsize, src_shape, src_ids, src_spec,
                                          dst_shape, dst_ids, dst_spec, cluster_json));
        },
        py::arg("shape"), py::arg("itemsize"), py::arg("src_mesh_shape"),
        py::arg("src_device_ids"), py::arg("src_spec"), py::arg("dst_mesh_shape"),
        py::arg("dst_device_ids"), py::arg("dst_spec"), py::arg("cluster_json") = py::none(),
        "Transfers moving a tensor between meshes: list of dicts {src, dst, box, "
        "src_local_box, dst_local_box, bytes}; boxes are [(begin, end)] per dim (global, "
        "then in the sender's and the receiver's local shard), sorted by (dst, src, box).");
  m.def("cross_mesh_plan_text",
        [](const std::vector<int64_t>& shape, int64_t itemsize, std::array<int64_t, 2> src_shape,
           const std::vector<int64_t>& src_ids, const std::string& src_spec,
           std::array<int64_t, 2> dst_shape, const std::vector<int64_t>& dst_ids,
           const std::string& dst_spec, const std::optional<std::string>& cluster_json) {
          return make_plan(shape, itemsize, src_shape, src_ids, src_spec, dst_shape, dst_ids,
                           dst_spec, cluster_json).to_string();
        },
        py::arg("shape"), py::arg("itemsize"), py::arg("src_mesh_shape"),
        py::arg("src_device_ids"), py::arg("src_spec"), py::arg("dst_mesh_shape"),
        py::arg("dst_device_ids"), py::arg("dst_spec"), py::arg("cluster_json") = py::none(),
        "The same plan as text, one line per transfer.");
  m.def("cross_mesh_seconds",
        [](const std::vector<int64_t>& shape, int64_t itemsize, std::array<int64_t, 2> src_shape,
           const std::vector<int64_t>& src_ids, const std::string& src_spec,
           std::array<int64_t, 2> dst_shape, const std::vector<int64_t>& dst_ids,
           const std::string& dst_spec, const std::optional<std::string>& cluster_json) {
          mesh::Cluster cluster = cluster_for(cluster_json, src_ids, dst_ids);
          return plan::cross_mesh_seconds(make_plan(shape, itemsize, src_shape, src_ids, src_spec,
                                                    dst_shape, dst_ids, dst_spec, cluster_json),
                                          cluster);
        },
        py::arg("shape"), py::arg("itemsize"), py::arg("src_mesh_shape"),
        py::arg("src_device_ids"), py::arg("src_spec"), py::arg("dst_mesh_shape"),
        py::arg("dst_device_ids"), py::arg("dst_spec"), py::arg("cluster_json") = py::none(),
        "Estimated seconds of the plan (α-β links; a device's sends, and its receives, "
        "serialized; devices in parallel).");
}

}  // namespace alpa::python
