// This file implements the semantic checks of a loaded Plan: what the JSON
// structure alone cannot promise. Plan::from_json runs validate_plan on
// every plan it reads, so whatever loads — in Python (Plan.from_json,
// Plan.load, `alpa-torch explain|draw`), in the C++ API (Plan::parse) or in
// the pipeline executor — is consistent with its cluster and in itself:
//
//   cluster   1 <= hosts <= kMaxHosts, 1 <= devices/host <= kMaxDevicesPerHost,
//             devices <= kMaxDevices; FLOP/s, memory, bandwidth finite > 0;
//             link α/β finite >= 0 (what Cluster::validate and the planner
//             accept)
//   plan      >= 1 stage; 1 <= microbatches <= kMaxMicroBatches; schedule
//             gpipe|1f1b; cost mode seconds|alpa; memory budget >= 0 or +inf
//   stages    index = position; layers contiguous from 0 to num_layers − 1;
//             logical mesh axes >= 1 multiplying to the stage's device count;
//             sub-mesh inside the cluster, its hosts × devices = that count,
//             and the device ids on exactly those hosts (single-host slices
//             on one host, multi-host sub-meshes on whole hosts); device ids
//             in range and distinct, within and across stages
//   specs     mesh axes 0 or 1, each used once; partial sums only on node
//             values, never on parameters, inputs or stage boundary values;
//             rank and divisibility checked against every recorded shape
//   refs      node names distinct; collectives name a node of their stage
//             and one of its inputs (or -1); axes 0/1; bytes finite >= 0;
//             a stage's received values are what the stage before it sends
//             (same producer, index and shape); graph output indices
//             distinct and, taken together, 0..K−1
//   numbers   predicted times and memory finite and >= 0
//
// Every error is InvalidArgument and reads
//   "invalid plan: <field path>: <value> <what is allowed>; <the fix>".
// validate_plan_for_graph adds the checks against the graph the plan was
// made for (fingerprint, parameter FQNs, input names, node names, shapes).
#pragma once

#include <cstdint>

#include "core/status.h"
#include "ir/graph.h"
#include "plan/plan.h"

namespace alpa::plan {

/// Upper bounds of a loaded plan. They keep everything sized by the plan
/// (schedules, pictures, per-device tables) bounded whatever the file says.
inline constexpr int64_t kMaxHosts = int64_t{1} << 16;
inline constexpr int64_t kMaxDevicesPerHost = int64_t{1} << 12;
inline constexpr int64_t kMaxDevices = int64_t{1} << 20;
inline constexpr int64_t kMaxMicroBatches = int64_t{1} << 20;
/// Elements of one tensor recorded in a plan (a stage boundary value).
inline constexpr int64_t kMaxTensorElements = int64_t{1} << 48;

/// OK when `plan` is consistent with its cluster and in itself (see the
/// file comment); else InvalidArgument naming the first bad field.
core::Status validate_plan(const Plan& plan);

/// validate_plan, then against `graph`, the whole graph the plan was made
/// for: the fingerprint matches; every parameter FQN and input name of a
/// stage is a parameter / input of the graph; every node a stage records is
/// a node of the graph (or one of the stage's received values) with as
/// many input and output specs as the node has values, each of its rank
/// and dividing its shape on the stage's mesh.
core::Status validate_plan_for_graph(const Plan& plan, const ir::Graph& graph);

}  // namespace alpa::plan
