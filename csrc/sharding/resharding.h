// This file implements resharding: the collectives that turn a tensor laid
// out as spec A into spec B on a mesh, axis by axis —
//   A partial on a, B not          all-reduce        (backward: nothing)
//   A partial on a, B splits on a  reduce-scatter    (backward: all-gather)
//   A unsplit on a, B splits       local slice       (backward: all-gather)
//   A splits dim d, B dim e ≠ d    all-to-all        (backward: all-to-all)
//   A splits on a, B not           all-gather        (backward: local slice)
// in that order (slices first keep buffers small) — and, when the value
// needs a gradient, the backward duals that move its gradient from B to A.
// The runtime executes exactly these steps.
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
/// valid for the tensor (ShardingSpec::check).
ReshardPlan plan_reshard(const ShardingSpec& from, const ShardingSpec& to,
                         const ir::TensorMeta& meta, const mesh::DeviceMesh& mesh,
                         bool needs_grad);

}  // namespace alpa::sharding
