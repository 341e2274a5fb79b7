// This file implements resharding: the steps that turn a tensor laid out as
// spec A into spec B on a mesh, each a local slice or a collective over ONE
// mesh axis, in the order the runtime executes them:
//   partial on a, B not            all-reduce        (backward: nothing)
//   partial on a, B splits by a    reduce-scatter    (backward: all-gather)
//   a free, B splits dim d by a    local slice       (backward: all-gather)
//   a leaves dim f for dim t       all-to-all        (backward: all-to-all)
//   a leaves dim f                 all-gather        (backward: local slice)
//
// A dim split over several axes is cut in mixed radix, the first axis
// outermost (S01 on (2, 2): device (i, j) holds piece 2i + j). Only the
// innermost axis of a dim can be gathered (its pieces are contiguous) and a
// slice only cuts a dim further inside (S0 -> S01 is local, S1 -> S01 is
// not). So the plan walks from A to B: each dim keeps the prefix of its
// axes that B shares (with B's block layout) and drops the rest innermost
// first (an all-to-all when the dropped axis is the one a dim of B takes
// next, else an all-gather); slices come as soon as their axis is free,
// so buffers stay small. S01 -> S1 is gather(1), gather(0), slice(1):
// gathering axis 0 alone would give device (0, 1) pieces 1 and 3.
//
// Gradient convention: a value's gradient is held *complete* in the value's
// own layout (ops all-reduce the partial gradients they produce, see
// strategy.h). So the gradient of a gathered (replicated) value is the same
// on every device and the gather's dual is a local slice — Megatron's
// gather/split pair — not the reduce-scatter that partial gradients would
// need; a partial-sum value's reduce-scatter has the all-gather as its dual.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "ir/tensor_meta.h"
#include "mesh/device_mesh.h"
#include "sharding/collective.h"
#include "sharding/sharding_spec.h"

namespace alpa::sharding {

enum class ReshardOp { kAllReduce, kReduceScatter, kSlice, kAllToAll, kAllGather };
const char* reshard_op_name(ReshardOp op);

struct ReshardStep {
  ReshardOp op = ReshardOp::kSlice;
  int axis = 0;
  int64_t from_dim = -1;  ///< dim split on `axis` before (-1: none/partial)
  int64_t to_dim = -1;    ///< dim split on `axis` after (-1: none)
};

struct ReshardPlan {
  std::vector<ReshardStep> steps;
  std::vector<Collective> forward;   ///< collectives of the steps (slices are free)
  std::vector<Collective> backward;  ///< gradient duals (empty without grad)
  bool empty() const { return steps.empty(); }
  std::string to_string() const;
};

/// Plans `from` -> `to` for a tensor `meta` on `mesh`. Both specs must be
/// valid for the tensor (ShardingSpec::check) and reshard_supported();
/// throws std::invalid_argument otherwise. Mesh axes of size 1 are ignored.
/// OK unless `to` holds partial sums on an axis where `from` does not
/// (not_implemented: no strategy reads partial inputs, and turning a whole
/// value into addends has no step).
core::Status reshard_supported(const ShardingSpec& from, const ShardingSpec& to);

ReshardPlan plan_reshard(const ShardingSpec& from, const ShardingSpec& to,
                         const ir::TensorMeta& meta, const mesh::DeviceMesh& mesh,
                         bool needs_grad);

}  // namespace alpa::sharding
