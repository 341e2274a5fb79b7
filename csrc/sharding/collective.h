// This file implements the description of one collective: its kind, the
// mesh axes it runs over, its size in bytes and the phase (forward or
// backward) — what a resharding or a sharding strategy asks the runtime to
// do. Its cost lives in cost/communication.h.
#pragma once

#include <string>

#include "core/status.h"
#include "sharding/sharding_spec.h"

namespace alpa::sharding {

enum class CollectiveKind { kAllReduce, kAllGather, kReduceScatter, kAllToAll, kSendRecv };
enum class Phase { kForward, kBackward };

/// Why a collective runs: what the local program does with it. The
/// runtime and the rewrite read this, never the `what` text (for people).
enum class CollectiveRole {
  kReshard,             ///< a step turning an input's layout into the one its reader needs
  kPartialOutput,       ///< all-reduce of an op's partial-sum outputs (Megatron's g)
  kInputGrad,           ///< backward all-reduce of an input's partial gradient (Megatron's f)
  kParameterGrad,       ///< the same for a parameter read directly: bucketed, as DDP does
  kSyncedStatistics,    ///< BatchNorm statistics summed over the batch-splitting axes
  kSyncedStatisticGrads,
  kTokenDispatch,       ///< tokens sent to the devices holding their experts
  kTokenCombine,        ///< expert outputs sent back to their tokens
};

const char* collective_role_name(CollectiveRole role);
core::StatusOr<CollectiveRole> parse_collective_role(const std::string& name);

const char* collective_kind_name(CollectiveKind kind);
core::StatusOr<CollectiveKind> parse_collective_kind(const std::string& name);
const char* phase_name(Phase phase);

/// Bytes: the gathered result for all-gather, the full input for
/// reduce-scatter, the buffer for all-reduce and all-to-all (per device).
struct Collective {
  CollectiveKind kind = CollectiveKind::kAllReduce;
  MeshAxes axes;
  double bytes = 0;
  Phase phase = Phase::kForward;
  std::string what;  ///< e.g. "output", "grad of input 1", "reshard %x"
  /// Node input the collective concerns (-1: an output or statistics).
  int64_t input = -1;
  /// Fused into buckets with other collectives of its kind (parameter
  /// gradients, as DDP does): its latency α is amortized, not paid alone.
  bool fused = false;
  CollectiveRole role = CollectiveRole::kReshard;
};

}  // namespace alpa::sharding
