// This file implements cross-mesh resharding plans (Alpa §6, "cross-mesh
// resharding"): a tensor laid out as `src_spec` on one device mesh must
// arrive laid out as `dst_spec` on another mesh (of any size, sharing
// devices or not). The plan lists point-to-point transfers so that every
// receiver gets exactly the slices its shard needs, once each.
//
//   src S0R on (2,1) {0,1}        dst RS0 on (2,1) {2,3}
//   ┌─────────┐ dev 0             ┌────┬────┐
//   ├─────────┤ dev 1     ──▶     │dev2│dev3│
//   └─────────┘                   └────┴────┘
//   4 transfers: each dst device receives one quarter from each src device.
//
// Execution contract (what the runtime does with a plan, on device `me`,
// holding `src_shard` when it is in the source mesh and `dst_shard`, of the
// destination local shape, when it is in the destination mesh):
//   for t in plan.transfers, in order:
//     src == dst == me:  dst_shard[t.dst_local] = src_shard[t.src_local]
//     src == me:         isend(src_shard[t.src_local].contiguous(), t.dst)
//     dst == me:         irecv(buf of box shape, t.src); later
//                        dst_shard[t.dst_local] = buf
// where x[box] is x.narrow(d, r.begin, r.size()) for each dim d. Every
// local box is one narrow per dim. Transfers are sorted by (dst, src, box),
// so between any two devices the sender and the receiver list their
// messages in the same order: posting them in list order matches them
// FIFO per pair (NCCL) and the transfer index can serve as a tag (Gloo).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "ir/tensor_meta.h"
#include "mesh/cluster.h"
#include "mesh/device_mesh.h"
#include "sharding/sharding_spec.h"

namespace alpa::plan {

/// Half-open element range [begin, end) along one tensor dim.
struct Range {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
  friend bool operator==(const Range& a, const Range& b) {
    return a.begin == b.begin && a.end == b.end;
  }
  friend bool operator!=(const Range& a, const Range& b) { return !(a == b); }
  friend bool operator<(const Range& a, const Range& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  }
};

/// One range per tensor dim (empty for a scalar).
using Box = std::vector<Range>;

/// Number of elements in `box` (1 for a scalar's empty box).
int64_t box_numel(const Box& box);
/// "[0:4, 0:8]"; a scalar's box is "[]".
std::string box_to_string(const Box& box);
/// Reads box_to_string's form back.
core::StatusOr<Box> parse_box(std::string_view text);

/// One point-to-point message (or a local copy when src == dst).
struct Transfer {
  int64_t src_device = 0;  ///< global device id of the sender
  int64_t dst_device = 0;  ///< global device id of the receiver
  Box box;                 ///< the elements, in global tensor coordinates
  Box src_local;           ///< the same elements in the sender's local shard
  Box dst_local;           ///< the same elements in the receiver's local shard
  int64_t bytes = 0;       ///< box_numel(box) × itemsize

  bool is_local_copy() const { return src_device == dst_device; }
  /// "dev 0 -> dev 2: [0:2, 0:2] 16 B; local [0:2, 0:2] -> [0:2, 0:2]".
  std::string to_string() const;
  friend bool operator==(const Transfer& a, const Transfer& b) {
    return a.src_device == b.src_device && a.dst_device == b.dst_device && a.box == b.box &&
           a.src_local == b.src_local && a.dst_local == b.dst_local && a.bytes == b.bytes;
  }
};

/// Bytes carried from one device to another over the whole plan.
struct LinkBytes {
  int64_t src_device = 0;
  int64_t dst_device = 0;
  int64_t bytes = 0;  ///< total over the link's transfers
  friend bool operator==(const LinkBytes& a, const LinkBytes& b) {
    return a.src_device == b.src_device && a.dst_device == b.dst_device && a.bytes == b.bytes;
  }
};

/// What one device does, as indices into CrossMeshPlan::transfers (each in
/// transfer order).
struct DeviceSchedule {
  std::vector<int64_t> sends;         ///< src == device != dst
  std::vector<int64_t> receives;      ///< dst == device != src
  std::vector<int64_t> local_copies;  ///< src == dst == device
};

struct CrossMeshPlan {
  ir::Shape shape;       ///< global tensor shape
  int64_t itemsize = 0;  ///< bytes per element
  std::vector<Transfer> transfers;  ///< sorted by (dst, src, box)

  /// Bytes moved between distinct devices (local copies excluded).
  int64_t network_bytes() const;
  /// Per (src, dst) pair with src != dst, sorted by (src, dst).
  std::vector<LinkBytes> link_bytes() const;
  DeviceSchedule schedule_of(int64_t device) const;

  /// A header "cross-mesh plan for [4,4] x 4 B: 4 transfers" then one
  /// Transfer::to_string() line per transfer.
  std::string to_string() const;
  static core::StatusOr<CrossMeshPlan> parse(std::string_view text);
  friend bool operator==(const CrossMeshPlan& a, const CrossMeshPlan& b) {
    return a.shape == b.shape && a.itemsize == b.itemsize && a.transfers == b.transfers;
  }
};

/// Plans moving a tensor of global `shape` (elements of `itemsize` bytes)
/// from `src_spec` on `src_mesh` to `dst_spec` on `dst_mesh`. Device ids of
/// both meshes are global ids of one cluster (src_mesh.cluster()).
///
/// Each destination device receives every element of its shard exactly
/// once. An element held by several source devices (replicated) is sent by
/// the destination device itself when it holds it (a local copy), else by
/// the holder whose estimated send queue (α-β seconds on the cluster's
/// links, see cross_mesh_seconds) would finish first, ties to the lowest
/// device id: replicas share the load and same-host senders are preferred.
/// Errors: a partial-sum source or destination (the sender must reduce
/// first), rank mismatch, dims the meshes do not divide, itemsize < 1.
core::StatusOr<CrossMeshPlan> plan_cross_mesh(const ir::Shape& shape, int64_t itemsize,
                                              const mesh::DeviceMesh& src_mesh,
                                              const sharding::ShardingSpec& src_spec,
                                              const mesh::DeviceMesh& dst_mesh,
                                              const sharding::ShardingSpec& dst_spec);

/// Estimated wall time of `plan`, seconds. Model: a transfer of B bytes
/// costs α + β·B on the cluster's intra-host link when both devices are on
/// one host (Cluster::host_of), else on its inter-host link; local copies
/// are free. A device sends its messages one after another and receives
/// its messages one after another; distinct devices work in parallel. The
/// estimate is the busiest device's send or receive time:
///   max over devices v of max(Σ_{t: src=v} cost(t), Σ_{t: dst=v} cost(t)).
double cross_mesh_seconds(const CrossMeshPlan& plan, const mesh::Cluster& cluster);

}  // namespace alpa::plan
