// This file implements LocalProgram: what one pipeline stage runs on each of
// its devices, decided in C++ from the graph and the stage's plan, so that
// the Python emitter only translates it into FX, node for node:
//
//   before (global, plan on (1, 2))       LocalProgram of the stage
//   %h = linear(%x, %w1, %b1)             node linear: plain
//                                           in %x RR, grad all_reduce(0)
//                                           in %w1 S0R, in %b1 S0
//   %y = linear(%h, %w2, %b2)             node linear_1: partial_sum over (0),
//                                           bias after the sum
//
// Every resharding step on an edge is the list sharding::plan_reshard
// returns for the two specs, the same call the cost graph prices, so what
// the planner costed and what the program executes cannot drift apart.
// Per-rank values (which piece a device holds) follow from the specs and
// the device's mesh coordinate; the program itself is the same on every
// device of the stage.
//
// The text form (to_string) reads back with parse_local_program; the
// golden tests in tests/cpp/rewrite/ spell it out. The mesh is the plan's
// logical mesh: a (1, n) request is planned as (n, 1), axis 0.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "ir/graph.h"
#include "ir/tensor_meta.h"
#include "sharding/resharding.h"
#include "sharding/sharding_spec.h"

namespace alpa::rewrite {

/// A value of the whole graph: output `index` of node `node` ("%h", "%ln#1").
struct ValueName {
  std::string node;
  int64_t index = 0;
  std::string to_string() const;
  friend bool operator==(const ValueName& a, const ValueName& b) {
    return a.node == b.node && a.index == b.index;
  }
};

/// A value laid out on the stage's mesh: its global meta, spec, local shape.
struct LocalValue {
  ValueName value;
  ir::TensorMeta meta;  ///< global shape and dtype
  sharding::ShardingSpec spec;
  ir::Shape local_shape;
  friend bool operator==(const LocalValue& a, const LocalValue& b) {
    return a.value == b.value && a.meta == b.meta && a.spec == b.spec &&
           a.local_shape == b.local_shape;
  }
};

/// A placeholder the stage reads: parameter, buffer, user input or constant.
struct LocalPlaceholder {
  ir::NodeKind kind = ir::NodeKind::kInput;
  std::string target;  ///< FQN or user input name
  LocalValue value;
  friend bool operator==(const LocalPlaceholder& a, const LocalPlaceholder& b) {
    return a.kind == b.kind && a.target == b.target && a.value == b.value;
  }
};

/// A value moved from one layout to another by the planner's steps.
struct Move {
  sharding::ShardingSpec from, to;
  std::vector<sharding::ReshardStep> steps;  ///< empty when from == to
  friend bool operator==(const Move& a, const Move& b);
};

/// One tensor input of a node as the local program reads it.
struct LocalInput {
  ValueName value;
  Move move;
  /// A replicated buffer read in pieces: views of the local buffer, so that
  /// in-place updates reach it (re-gathered after the step, see
  /// LocalProgram::buffer_views), instead of sliced copies.
  bool buffer_view = false;
  /// Mesh axes the input's gradient is all-reduced over (partial gradients,
  /// Megatron's f), right where the op reads it. Empty: none here.
  sharding::MeshAxes grad_reduce;
  /// A parameter gradient all-reduced in a bucket (LocalProgram::buckets).
  bool bucketed = false;
  friend bool operator==(const LocalInput& a, const LocalInput& b) {
    return a.value == b.value && a.move == b.move && a.buffer_view == b.buffer_view &&
           a.grad_reduce == b.grad_reduce && a.bucketed == b.bucketed;
  }
};

/// How a node runs locally beyond "the same op on local shards".
enum class LocalOpKind {
  kPlain,             ///< the op on local shards
  kPartialSum,        ///< the op, then its outputs all-reduced over `reduce_axes`
  kRowSplitEmbedding, ///< a lookup in this device's rows, then all-reduced
  kSyncedBatchNorm,   ///< statistics all-reduced over `reduce_axes`
  kExperts,           ///< a mixture-of-experts layer (alpa_torch/expert_ops.py)
  kExpertRows,        ///< a grouped matmul over this device's experts' rows
  kWholeThenSlice,    ///< computed whole on every device, then its piece taken
};
const char* local_op_kind_name(LocalOpKind kind);
core::StatusOr<LocalOpKind> parse_local_op_kind(std::string_view name);

/// An integer-list argument rewritten to local sizes (view's size, split's
/// split_sizes, ...).
struct LocalArg {
  std::string name;
  std::vector<int64_t> value;
  friend bool operator==(const LocalArg& a, const LocalArg& b) {
    return a.name == b.name && a.value == b.value;
  }
};

struct LocalNode {
  std::string name;
  std::string op;  ///< the graph's op ("aten.linear.default")
  LocalOpKind kind = LocalOpKind::kPlain;
  std::vector<LocalInput> inputs;  ///< in the node's tensor-argument order
  std::vector<LocalValue> outputs;
  std::vector<LocalArg> args;
  /// kPartialSum, kRowSplitEmbedding, kSyncedBatchNorm, kExperts: the axes
  /// of the all-reduce (for kExperts: experts split on axes the tokens are
  /// not, leaving partial sums).
  sharding::MeshAxes reduce_axes;
  /// kPartialSum: the op run before the reduction when it differs (addmm's
  /// sum runs as mm, its `self` added after); "" = `op`.
  std::string local_op;
  /// kPartialSum: the argument added after the reduction ("bias", "self");
  /// "" = none. `addend_broadcast`: reshaped to [1, -1, 1, ...] first
  /// (a convolution's bias).
  std::string addend;
  bool addend_broadcast = false;
  /// kPartialSum of a mean: the local means are summed, so divided by this.
  int64_t mean_divisor = 1;
  /// kRowSplitEmbedding: rows of the table each piece holds.
  int64_t rows_per_piece = 0;
  /// kSyncedBatchNorm: elements per channel over the whole batch.
  int64_t statistics_count = 0;
  /// kExperts: mesh axes over which tokens are exchanged by all-to-all.
  sharding::MeshAxes exchange_axes;
  friend bool operator==(const LocalNode& a, const LocalNode& b);
};

/// Parameter gradients all-reduced together, as DDP's buckets.
struct GradBucket {
  sharding::MeshAxes axes;
  ir::DType dtype = ir::DType::kFloat32;
  std::vector<std::string> parameters;  ///< node names, first use first
  friend bool operator==(const GradBucket& a, const GradBucket& b) {
    return a.axes == b.axes && a.dtype == b.dtype && a.parameters == b.parameters;
  }
};

/// A value the stage hands on: to the next stage (`move` to the layout the
/// plan sends it in, StagePlan::outputs; the runtime's cross-mesh
/// resharding turns that into the receiver's layout) or as a graph output
/// (`move` empty).
struct LocalOutput {
  LocalValue value;  ///< as the stage holds it
  Move move;
  friend bool operator==(const LocalOutput& a, const LocalOutput& b) {
    return a.value == b.value && a.move == b.move;
  }
};

/// A replicated buffer read in pieces (LocalInput::buffer_view).
struct BufferView {
  std::string buffer;  ///< node name
  sharding::ShardingSpec spec;
  friend bool operator==(const BufferView& a, const BufferView& b) {
    return a.buffer == b.buffer && a.spec == b.spec;
  }
};

struct LocalProgram {
  int64_t stage = 0;
  std::array<int64_t, 2> mesh_shape{1, 1};
  /// Values received from the previous stage, in the order they arrive.
  std::vector<LocalValue> received;
  std::vector<LocalPlaceholder> placeholders;
  std::vector<LocalNode> nodes;  ///< in graph order
  /// Values sent to the next stage, in the plan's order (StagePlan::outputs).
  std::vector<LocalOutput> sends;
  /// Graph outputs this stage produces (StagePlan::graph_outputs; every
  /// output for a single-stage plan), with their positions in the graph's
  /// output list.
  std::vector<LocalOutput> graph_outputs;
  std::vector<int64_t> graph_output_indices;
  std::vector<GradBucket> buckets;
  std::vector<BufferView> buffer_views;

  std::string to_string() const;
  friend bool operator==(const LocalProgram& a, const LocalProgram& b);
};

/// Parses LocalProgram::to_string(); errors name the line.
core::StatusOr<LocalProgram> parse_local_program(std::string_view text);

}  // namespace alpa::rewrite
