// This file implements collective names and duals.
#include "sharding/collective.h"

#include <fmt/format.h>

namespace alpa::sharding {
const char* collective_kind_name(CollectiveKind kind) {
  switch (kind) {
    case CollectiveKind::kAllReduce: return "all_reduce";
    case CollectiveKind::kAllGather: return "all_gather";
    case CollectiveKind::kReduceScatter: return "reduce_scatter";
    case CollectiveKind::kAllToAll: return "all_to_all";
    case CollectiveKind::kSendRecv: return "send_recv";
  }
  return "?";
}

core::StatusOr<CollectiveKind> parse_collective_kind(const std::string& name) {
  for (CollectiveKind k : {CollectiveKind::kAllReduce, CollectiveKind::kAllGather,
                           CollectiveKind::kReduceScatter, CollectiveKind::kAllToAll,
                           CollectiveKind::kSendRecv}) {
    if (name == collective_kind_name(k)) return k;
  }
  return core::parse_error(fmt::format("unknown collective '{}'", name));
}

const char* phase_name(Phase phase) {
  return phase == Phase::kForward ? "forward" : "backward";
}

}  // namespace alpa::sharding
