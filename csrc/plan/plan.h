// This file implements Plan: what the planner decided, as plain data with a
// versioned JSON form and an explain() text. A plan has stages; each stage
// runs a slice of the graph on a sub-mesh with a logical mesh shape and
// records every node's strategy, every parameter's spec, the collectives
// the runtime will issue, and the predicted time and memory. Wall-clock
// solver timings are kept out of the JSON so that the same inputs give the
// same JSON on every rank and in every process.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/json.h"
#include "core/status.h"
#include "ir/tensor_meta.h"
#include "mesh/cluster.h"
#include "sharding/collective.h"
#include "sharding/sharding_spec.h"

namespace alpa::plan {

struct CollectiveRecord {
  int64_t stage = 0;
  std::string node;  ///< the node that issues it
  sharding::CollectiveKind kind = sharding::CollectiveKind::kAllReduce;
  sharding::MeshAxes axes;
  double bytes = 0;  ///< per device
  sharding::Phase phase = sharding::Phase::kForward;
  std::string what;
  int64_t input = -1;  ///< the node input it concerns (-1: outputs/statistics)
  sharding::CollectiveRole role = sharding::CollectiveRole::kReshard;
  friend bool operator==(const CollectiveRecord& a, const CollectiveRecord& b);
};

struct NodeSharding {
  std::string node;
  std::string strategy;
  std::vector<sharding::ShardingSpec> inputs;
  std::vector<sharding::ShardingSpec> outputs;
  friend bool operator==(const NodeSharding& a, const NodeSharding& b) {
    return a.node == b.node && a.strategy == b.strategy && a.inputs == b.inputs &&
           a.outputs == b.outputs;
  }
};

using NamedSpecs = std::vector<std::pair<std::string, sharding::ShardingSpec>>;

/// A value crossing a pipeline stage boundary, with its layout on the stage.
struct StageValue {
  std::string name;      ///< input/output node name in the stage graph
  std::string producer;  ///< producing node of the whole graph
  int64_t index = 0;     ///< output index of `producer`
  ir::TensorMeta meta;   ///< global shape and dtype
  sharding::ShardingSpec spec;
  bool requires_grad = false;
  friend bool operator==(const StageValue& a, const StageValue& b) {
    return a.name == b.name && a.producer == b.producer && a.index == b.index &&
           a.meta == b.meta && a.spec == b.spec && a.requires_grad == b.requires_grad;
  }
};

struct StagePlan {
  int64_t index = 0;
  std::array<int64_t, 2> mesh_shape{1, 1};
  std::vector<int64_t> device_ids;
  NamedSpecs param_specs;  ///< FQN -> spec, in graph order
  NamedSpecs input_specs;  ///< user input name -> spec
  std::vector<NodeSharding> nodes;
  std::vector<CollectiveRecord> collectives;
  double predicted_time = 0;      ///< seconds per step
  double compute_time = 0;        ///< seconds
  double communication_time = 0;  ///< seconds
  double memory_bytes = 0;        ///< per device
  // Pipeline stages (a single-stage plan: layers {0, 0}, no boundary values).
  std::array<int64_t, 2> layers{0, 0};   ///< first and last layer (inclusive)
  std::array<int64_t, 2> submesh{1, 1};  ///< hosts × devices per host
  std::vector<StageValue> inputs;        ///< received from the previous stage
  std::vector<StageValue> outputs;       ///< sent to the next stage
  /// Indices of the whole graph's outputs this stage produces.
  std::vector<int64_t> graph_outputs;
  double parameter_memory_bytes = 0;  ///< parameters, grads, optimizer state
  /// Rematerialization: the stage runs its forward again in backward, one
  /// microbatch at a time, and keeps only its inputs per microbatch in
  /// flight. `recompute_time` (seconds, in predicted_time) prices it.
  bool remat = false;
  double recompute_time = 0;
  /// Bytes per device at the stage's busiest point of a pipelined step:
  /// parameter_memory_bytes plus the activations of the microbatches it
  /// holds in flight (f = all B under GPipe, min(S − s, B) under 1F1B for
  /// stage s of S), or with remat one microbatch's activations and f − 1
  /// microbatches' inputs (`input_memory_bytes` each). 0 in plans written
  /// before issue 14: then memory_bytes.
  double peak_memory_bytes = 0;
  double input_memory_bytes = 0;
  /// peak_memory_bytes, or memory_bytes when the plan predates it.
  double peak_bytes() const { return peak_memory_bytes > 0 ? peak_memory_bytes : memory_bytes; }
  friend bool operator==(const StagePlan& a, const StagePlan& b);
};

struct Plan {
  static constexpr int64_t kFormatVersion = 2;

  std::string graph_name;
  std::string graph_fingerprint;  ///< hex of ir::Graph::fingerprint()
  mesh::Cluster cluster;
  std::string cost_mode = "seconds";
  /// "fp32", or "bf16"/"fp16": the step runs under torch.autocast to that
  /// dtype (fp32 master weights) and the costs were priced so.
  std::string precision = "fp32";
  double memory_budget = 0;       ///< bytes; +inf = none
  std::vector<StagePlan> stages;
  std::vector<std::string> warnings;
  int64_t num_micro_batches = 1;
  std::string schedule = "1f1b";  ///< pipeline schedule (see plan/schedule.h)
  int64_t num_layers = 1;         ///< layers of the clustering (Alpa §5.1)
  /// Why the planner chose this plan: the candidates it compared.
  std::vector<std::string> notes;

  /// Seconds per step: Σ stage times + (B − 1)·max stage time (Alpa §5.2,
  /// B = num_micro_batches); the stage time for a single-stage plan.
  double predicted_step_time() const;
  double peak_memory_bytes() const;

  core::Json to_json() const;
  static core::StatusOr<Plan> from_json(const core::Json& json);
  static core::StatusOr<Plan> parse(std::string_view text);
  /// Human-readable report: per stage the mesh, parameter specs,
  /// collectives with bytes, predicted time and memory.
  std::string explain() const;
};

}  // namespace alpa::plan
