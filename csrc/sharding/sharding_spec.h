// This file implements ShardingSpec: how a tensor is laid out on a 2-D
// device mesh. One token per tensor dim — `R` (replicated) or `S` followed
// by the mesh axes the dim is split over (`S0`, `S1`, `S01`) — then an
// optional partial-sum suffix (`P0`, `P1`, `P01`). A [out, in] Linear weight
// split by output rows on axis 0 is `S0R`.
//
// A split dim may be block-interleaved: `S0x3` views the dim as [3, n/3]
// and splits the inner part, so each device holds a slice of every block —
// the layout that keeps a fused projection's split into q, k, v local
// (Megatron stores its fused QKV weight this way).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "ir/tensor_meta.h"
#include "mesh/device_mesh.h"

namespace alpa::sharding {

using MeshAxes = std::vector<int>;  // ordered, e.g. {0, 1} for S01

struct ShardingSpec {
  std::vector<MeshAxes> dims;  ///< per tensor dim: mesh axes it is split over
  MeshAxes partial;            ///< mesh axes over which values are partial sums
  std::vector<int64_t> blocks; ///< per dim block factor (empty = all 1)

  static ShardingSpec replicated(int64_t rank) {
    return ShardingSpec{std::vector<MeshAxes>(static_cast<size_t>(rank)), {}, {}};
  }
  int64_t rank() const { return static_cast<int64_t>(dims.size()); }
  bool is_replicated() const;
  /// Block factor of dim `d` (1 unless block-interleaved).
  int64_t block(int64_t d) const {
    return static_cast<size_t>(d) < blocks.size() ? blocks[static_cast<size_t>(d)] : 1;
  }
  void set_block(int64_t d, int64_t factor);
  /// Number of pieces dim `d` is cut into on `mesh`.
  int64_t shards(int64_t d, const mesh::DeviceMesh& mesh) const;
  /// Number of distinct shards of the whole tensor (product over dims).
  int64_t total_shards(const mesh::DeviceMesh& mesh) const;
  /// The mesh axis `a` splits some dim of this spec.
  bool uses_axis(int a) const;
  /// Dim split over axis `a`, or -1.
  int64_t dim_of_axis(int a) const;
  /// Shape of one device's piece; error when a dim does not divide.
  core::StatusOr<ir::Shape> local_shape(const ir::Shape& global,
                                        const mesh::DeviceMesh& mesh) const;
  /// OK when rank matches, axes are 0/1 and used once, and dims divide.
  core::Status check(const ir::Shape& global, const mesh::DeviceMesh& mesh) const;

  /// Which piece of each dim the device at `coord` holds on a logical mesh
  /// of `mesh_shape`: (index, count, block factor) per dim; a dim split over
  /// several axes is cut in mixed radix, the first axis outermost.
  struct DimPiece {
    int64_t index = 0, count = 1, block = 1;
  };
  std::vector<DimPiece> pieces(const std::array<int64_t, 2>& mesh_shape,
                               const std::array<int64_t, 2>& coord) const;

  std::string to_string() const;
  /// Parses "S0R", "RS01", "S0RP1", "R" ...; a scalar is "" (or "-").
  static core::StatusOr<ShardingSpec> parse(std::string_view text);

  friend bool operator==(const ShardingSpec& a, const ShardingSpec& b) {
    return a.dims == b.dims && a.partial == b.partial && a.normalized_blocks() == b.normalized_blocks();
  }
  friend bool operator!=(const ShardingSpec& a, const ShardingSpec& b) { return !(a == b); }
  /// blocks with trailing 1s dropped (for comparisons).
  std::vector<int64_t> normalized_blocks() const;
  friend bool operator<(const ShardingSpec& a, const ShardingSpec& b) {
    return a.to_string() < b.to_string();
  }
};

/// Every valid non-partial spec of a tensor of `shape` on `mesh` (each mesh
/// axis of size > 1 either unused or splitting one dim), replicated first,
/// in a deterministic order.
/// `block_hints`: (dim size, block factor) pairs; a split dim of that size
/// is also offered block-interleaved.
using BlockHints = std::vector<std::pair<int64_t, int64_t>>;
std::vector<ShardingSpec> enumerate_specs(const ir::Shape& shape,
                                          const mesh::DeviceMesh& mesh,
                                          const BlockHints& block_hints = {});

}  // namespace alpa::sharding
