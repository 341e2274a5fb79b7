// This file implements build_local_program(): the local program of one
// stage of a plan (see local_program.h), every decision the rewrite makes
// taken here, in the torch-free planner:
// - each edge's resharding steps (sharding::plan_reshard, the function the
//   cost graph prices), or slice views where a replicated buffer is read in
//   pieces (in-place updates must reach it);
// - where an op's outputs are partial sums, which addend (bias, addmm's
//   self) goes after the all-reduce and which op runs before it, and the
//   division of summed means;
// - row-split embeddings, synced BatchNorm statistics, expert layers;
// - integer-list arguments (view sizes, split sizes) made local; factories
//   with a size built locally, random and position-valued ones (rand,
//   arange) computed whole and sliced so that values equal one process's;
// - gradient all-reduces of inputs, and of parameters in DDP-style buckets.
#pragma once

#include <cstdint>

#include "core/status.h"
#include "ir/graph.h"
#include "plan/plan.h"
#include "rewrite/local_program.h"

namespace alpa::rewrite {

/// Bytes of parameter gradients one bucket holds at most (DDP's default).
inline constexpr int64_t kGradBucketBytes = 25 << 20;

/// The local program of stage `stage` of `plan`, made for `graph` (the
/// whole graph: a pipeline stage's plan names its nodes). Errors:
/// invalid_argument when the plan does not fit the graph,
/// not_implemented for a layout the runtime cannot run (the message names
/// the node and the fix).
core::StatusOr<LocalProgram> build_local_program(const ir::Graph& graph, const plan::Plan& plan,
                                                 int64_t stage);

}  // namespace alpa::rewrite
