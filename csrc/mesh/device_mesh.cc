// This file implements DeviceMesh creation and per-axis link costs.
#include "mesh/device_mesh.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace alpa::mesh {

core::StatusOr<DeviceMesh> DeviceMesh::create(const Cluster& cluster,
                                              std::array<int64_t, 2> shape,
                                              std::vector<int64_t> device_ids) {
  ALPA_RETURN_IF_ERROR(cluster.validate());
  if (shape[0] < 1 || shape[1] < 1) {
    return core::invalid_argument(fmt::format(
        "mesh shape ({}, {}) must have positive axes", shape[0], shape[1]));
  }
  // A mesh with one axis of size 1 is one-dimensional: its axis is axis 0,
  // so (1, n) and (n, 1) are the same mesh and specs read S0R on both.
  if (shape[0] == 1) std::swap(shape[0], shape[1]);
  int64_t n = shape[0] * shape[1];
  if (device_ids.empty()) {
    if (n > cluster.num_devices()) {
      return core::invalid_argument(fmt::format(
          "mesh shape ({}, {}) needs {} devices but the cluster has {} ({} hosts × "
          "{}); choose a mesh whose axes multiply to at most {}",
          shape[0], shape[1], n, cluster.num_devices(), cluster.num_hosts,
          cluster.devices_per_host, cluster.num_devices()));
    }
    for (int64_t i = 0; i < n; ++i) device_ids.push_back(i);
  }
  if (static_cast<int64_t>(device_ids.size()) != n) {
    return core::invalid_argument(fmt::format(
        "mesh shape ({}, {}) needs {} device ids, got {}", shape[0], shape[1], n,
        device_ids.size()));
  }
  std::set<int64_t> seen;
  for (int64_t d : device_ids) {
    if (d < 0 || d >= cluster.num_devices() || !seen.insert(d).second) {
      return core::invalid_argument(fmt::format(
          "device ids {} must be distinct and in [0, {})", device_ids,
          cluster.num_devices()));
    }
  }
  DeviceMesh mesh;
  mesh.cluster_ = cluster;
  mesh.shape_ = shape;
  mesh.device_ids_ = std::move(device_ids);
  for (int axis = 0; axis < 2; ++axis) {
    mesh.links_[static_cast<size_t>(axis)] =
        mesh.axis_crosses_hosts(axis) ? cluster.inter_host : cluster.intra_host;
  }
  return mesh;
}

bool DeviceMesh::axis_crosses_hosts(int axis) const {
  for (int64_t i = 0; i < shape_[0]; ++i) {
    for (int64_t j = 0; j < shape_[1]; ++j) {
      int64_t i2 = axis == 0 ? 0 : i;
      int64_t j2 = axis == 1 ? 0 : j;
      if (cluster_.host_of(device_at(i, j)) != cluster_.host_of(device_at(i2, j2))) {
        return true;
      }
    }
  }
  return false;
}

std::string DeviceMesh::to_string() const {
  return fmt::format("mesh ({}, {}) over devices {}", shape_[0], shape_[1], device_ids_);
}

}  // namespace alpa::mesh
