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

const char* collective_role_name(CollectiveRole role) {
  switch (role) {
    case CollectiveRole::kReshard: return "reshard";
    case CollectiveRole::kPartialOutput: return "partial_output";
    case CollectiveRole::kInputGrad: return "input_grad";
    case CollectiveRole::kParameterGrad: return "parameter_grad";
    case CollectiveRole::kSyncedStatistics: return "synced_statistics";
    case CollectiveRole::kSyncedStatisticGrads: return "synced_statistic_grads";
    case CollectiveRole::kTokenDispatch: return "token_dispatch";
    case CollectiveRole::kTokenCombine: return "token_combine";
  }
  return "?";
}

core::StatusOr<CollectiveRole> parse_collective_role(const std::string& name) {
  for (CollectiveRole r : {CollectiveRole::kReshard, CollectiveRole::kPartialOutput,
                           CollectiveRole::kInputGrad, CollectiveRole::kParameterGrad,
                           CollectiveRole::kSyncedStatistics, CollectiveRole::kSyncedStatisticGrads,
                           CollectiveRole::kTokenDispatch, CollectiveRole::kTokenCombine}) {
    if (name == collective_role_name(r)) return r;
  }
  return core::parse_error(fmt::format(
      "unknown collective role '{}'; roles: reshard, partial_output, input_grad, parameter_grad, "
      "synced_statistics, synced_statistic_grads, token_dispatch, token_combine", name));
}

const char* phase_name(Phase phase) {
  return phase == Phase::kForward ? "forward" : "backward";
}

}  // namespace alpa::sharding
