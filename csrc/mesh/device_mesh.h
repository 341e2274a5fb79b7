// This file implements DeviceMesh: a logical 2-D arrangement (n0, n1) of
// device ids, with the α-β link cost of each mesh axis. Axis 0 spans hosts
// when it can (device ids are host-major), so the slow links carry the
// traffic of axis 0. A 1-D mesh is (n, 1); (1, n) is read as (n, 1), so a
// one-dimensional mesh always splits over axis 0 (`S0R`).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "mesh/cluster.h"

namespace alpa::mesh {

class DeviceMesh {
 public:
  DeviceMesh() = default;

  /// Logical mesh of shape (n0, n1) over `device_ids` (row-major), or over
  /// devices 0..n0·n1-1 of `cluster` when `device_ids` is empty.
  static core::StatusOr<DeviceMesh> create(const Cluster& cluster,
                                           std::array<int64_t, 2> shape,
                                           std::vector<int64_t> device_ids = {});

  const std::array<int64_t, 2>& shape() const { return shape_; }
  int64_t axis_size(int axis) const { return shape_[static_cast<size_t>(axis)]; }
  int64_t num_devices() const { return shape_[0] * shape_[1]; }
  const std::vector<int64_t>& device_ids() const { return device_ids_; }
  const Cluster& cluster() const { return cluster_; }

  /// Link model of collectives along `axis` (0 or 1).
  const LinkSpec& axis_link(int axis) const { return links_[static_cast<size_t>(axis)]; }
  /// Overrides the per-axis α/β (Alpa's mesh_alpha / mesh_beta).
  void set_axis_link(int axis, LinkSpec link) { links_[static_cast<size_t>(axis)] = link; }
  /// Whether the devices along `axis` sit on more than one host.
  bool axis_crosses_hosts(int axis) const;

  /// Device id at mesh coordinate (i, j).
  int64_t device_at(int64_t i, int64_t j) const { return device_ids_[static_cast<size_t>(i * shape_[1] + j)]; }
  /// Mesh coordinate of the k-th device in device_ids().
  std::array<int64_t, 2> coordinate(int64_t k) const { return {k / shape_[1], k % shape_[1]}; }

  std::string to_string() const;

 private:
  Cluster cluster_;
  std::array<int64_t, 2> shape_{1, 1};
  std::vector<int64_t> device_ids_;
  std::array<LinkSpec, 2> links_;
};

}  // namespace alpa::mesh
