// This file implements the sub-meshes a pipeline stage may run on (Alpa §5.2):
// their enumeration for a cluster, the logical mesh shapes worth trying on
// each, and the placement of a chosen sequence of sub-meshes onto the
// cluster's device ids.
//
// Alpa restricts a stage's physical sub-mesh to one of two kinds, so that any
// choice of sub-meshes whose device counts add up to the cluster's can tile it:
//   (1, 2^k)  a power-of-two slice of one host (2^k ≤ devices per host), and
//   (h, M)    h whole hosts of M devices each.
// Device ids are host-major: device d sits on host d / M.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "mesh/cluster.h"

namespace alpa::mesh {

/// A physical sub-mesh: `num_hosts` hosts × `devices_per_host` devices each.
struct SubmeshShape {
  int64_t num_hosts = 1;
  int64_t devices_per_host = 1;

  int64_t num_devices() const { return num_hosts * devices_per_host; }
  /// "(1, 4)": hosts, devices per host.
  std::string to_string() const;
  /// Reads to_string()'s form back ("(1, 4)" or "(1,4)").
  static core::StatusOr<SubmeshShape> parse(const std::string& text);

  bool operator==(const SubmeshShape& other) const {
    return num_hosts == other.num_hosts && devices_per_host == other.devices_per_host;
  }
  bool operator!=(const SubmeshShape& other) const { return !(*this == other); }
};

/// The sub-meshes Alpa's stage DP chooses from, smallest first:
/// (1, 1), (1, 2), (1, 4), ... for powers of two ≤ M (and (1, M) itself when M
/// is not a power of two), then (2, M), ..., (H, M) for a cluster of H hosts
/// of M devices.
std::vector<SubmeshShape> enumerate_submeshes(const Cluster& cluster);

/// The logical mesh shapes (n0, n1) worth trying on `submesh` of n devices,
/// in this order, without duplicates:
///   (n, 1)        one-dimensional (DeviceMesh writes (1, n) as (n, 1));
///   (n / k, k)    for each power of two k with 1 < k < n that divides n,
///                 smallest k first (axis 1 = k devices that are adjacent in
///                 device-id order, so within a host when k divides M);
///   (h, M)        the physical shape, when h > 1 and M > 1 and not yet listed.
/// (8,1): (8,1),(4,2),(2,4); (2,8) with 16 devices: (16,1),(8,2),(4,4),(2,8).
std::vector<std::array<int64_t, 2>> logical_mesh_shapes(const SubmeshShape& submesh);

/// Concrete device ids for each stage's sub-mesh, `stages` in pipeline order;
/// the result lists each stage's ids ascending (host-major, so a (h, M)
/// sub-mesh's ids read row by row as a (h, M) mesh).
///
/// Every device of `cluster` is used exactly once: the sub-meshes' device
/// counts must add up to the cluster's. Multi-host sub-meshes (h ≥ 2) take
/// whole hosts, first in pipeline order from host 0; single-host sub-meshes
/// (1, k) are packed into the remaining hosts largest first (first-fit
/// decreasing; ties in pipeline order) and never straddle a host. For
/// power-of-two slice sizes first-fit decreasing packs whenever any packing
/// exists (sizes that divide each other), so a (1, k) slice starts at an
/// offset that is a multiple of k when M is a power of two.
///
/// Errors (InvalidArgument): a shape that is not a slice of one host nor whole
/// hosts of this cluster, device counts that do not add up to the cluster's,
/// or slices that cannot be packed into the hosts left over.
core::StatusOr<std::vector<std::vector<int64_t>>> place_submeshes(
    const Cluster& cluster, const std::vector<SubmeshShape>& stages);

}  // namespace alpa::mesh
