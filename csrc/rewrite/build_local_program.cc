// This file implements build_local_program().
#include "rewrite/build_local_program.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>
#include <utility>

#include "ir/op_name.h"
#include "mesh/cluster.h"
#include "mesh/device_mesh.h"

namespace alpa::rewrite {

namespace {

using sharding::MeshAxes;
using sharding::ShardingSpec;

// Ops whose integer-list argument is a shape: it becomes the local shape
// of output 0.
const std::map<std::string_view, std::string_view> kSizeArgs = {
    {"view", "size"},      {"reshape", "shape"},   {"_unsafe_view", "size"}, {"expand", "size"},
    {"new_ones", "size"},  {"new_zeros", "size"},  {"new_empty", "size"},    {"new_full", "size"},
    {"zeros", "size"},     {"ones", "size"},       {"empty", "size"},        {"full", "size"}};
// Factories whose values depend on the position (arange) or on the random
// stream (rand): computed whole, so each piece equals one process's.
const std::set<std::string_view> kWholeFactories = {"arange", "rand", "randn", "scalar_tensor"};
const std::set<std::string_view> kGroupedMatmuls = {"grouped_mm_fallback", "_grouped_mm"};
const std::set<std::string_view> kConvolutions = {"convolution", "conv1d", "conv2d", "conv3d"};
const std::set<std::string_view> kLosses = {"cross_entropy_loss", "nll_loss", "nll_loss_forward",
                                            "mse_loss", "cross_entropy"};
constexpr int64_t kMeanReduction = 1;  // ATen's Reduction::Mean

using Key = std::pair<std::string, int64_t>;

struct Builder {
  Builder(const ir::Graph& g, const plan::StagePlan& s, mesh::DeviceMesh m)
      : graph(g), stage(s), mesh(std::move(m)) {}

  const ir::Graph& graph;
  const plan::StagePlan& stage;
  mesh::DeviceMesh mesh;
  LocalProgram program;
  std::map<std::string, const plan::NodeSharding*> members;
  std::map<Key, ShardingSpec> held;
  std::set<std::string> received_names;  // stage-graph names of boundary inputs

  core::StatusOr<ir::Shape> local_shape(const ir::TensorMeta& meta, const ShardingSpec& spec,
                                        const std::string& what) const {
    auto shape = spec.local_shape(meta.shape, mesh);
    if (!shape.ok()) {
      return core::invalid_argument(fmt::format("stage {}: {} laid out as {}: {}", stage.index, what,
                                                spec.to_string(), shape.status().message()));
    }
    return *shape;
  }

  core::StatusOr<LocalValue> local_value(ValueName name, const ir::TensorMeta& meta,
                                         const ShardingSpec& spec) const {
    LocalValue v{std::move(name), meta, spec, {}};
    ALPA_ASSIGN_OR_RETURN(v.local_shape, local_shape(meta, spec, v.value.to_string()));
    return v;
  }

  core::StatusOr<Move> move(const ShardingSpec& from, const ShardingSpec& to,
                            const ir::TensorMeta& meta, const std::string& what) const {
    Move m{from, to, {}};
    if (from == to) return m;
    if (core::Status st = sharding::reshard_supported(from, to); !st.ok()) {
      return core::not_implemented(fmt::format("stage {}: {}: {}", stage.index, what, st.message()));
    }
    try {
      // The same call the cost graph prices (intra_op::CostGraph::edge_plan).
      m.steps = sharding::plan_reshard(from, to, meta, mesh, false).steps;
    } catch (const std::invalid_argument& e) {
      return core::invalid_argument(fmt::format("stage {}: {}: {}", stage.index, what, e.what()));
    }
    return m;
  }

  const ShardingSpec* spec_of(const ir::ValueRef& v) const {
    auto it = held.find({graph.node(v.node).name, v.index});
    return it == held.end() ? nullptr : &it->second;
  }

  int64_t axes_size(const MeshAxes& axes) const {
    int64_t n = 1;
    for (int a : axes) n *= mesh.axis_size(a);
    return n;
  }

  core::Status add_placeholder(const ir::Node& n, const plan::NodeSharding& ns) {
    if (ns.outputs.size() != 1) {
      return core::invalid_argument(fmt::format(
          "stage {}: placeholder '{}' has {} output specs in the plan; it has one value", stage.index,
          n.name, ns.outputs.size()));
    }
    LocalPlaceholder p;
    p.kind = n.kind;
    p.target = n.target;
    ALPA_ASSIGN_OR_RETURN(p.value, local_value(ValueName{n.name, 0}, n.outputs.at(0), ns.outputs[0]));
    held[{n.name, 0}] = ns.outputs[0];
    program.placeholders.push_back(std::move(p));
    return core::ok_status();
  }

  core::Status add_op(const ir::Node& n, const plan::NodeSharding& ns) {
    if (ns.inputs.size() != n.inputs.size() || ns.outputs.size() != n.outputs.size()) {
      return core::invalid_argument(fmt::format(
          "stage {}: node '{}' has {} inputs and {} outputs, its plan {} and {}; plan the graph again",
          stage.index, n.name, n.inputs.size(), n.outputs.size(), ns.inputs.size(), ns.outputs.size()));
    }
    LocalNode out;
    out.name = n.name;
    out.op = n.op;
    std::map<int64_t, MeshAxes> grad_reduce;
    const MeshAxes* partial = nullptr;
    const MeshAxes* synced = nullptr;
    for (const plan::CollectiveRecord& c : stage.collectives) {
      if (c.node != n.name) continue;
      switch (c.role) {
        case sharding::CollectiveRole::kInputGrad:
        case sharding::CollectiveRole::kParameterGrad:
          if (c.input >= 0) grad_reduce[c.input] = c.axes;
          break;
        case sharding::CollectiveRole::kPartialOutput:
          if (partial == nullptr) partial = &c.axes;
          break;
        case sharding::CollectiveRole::kSyncedStatistics:
          if (synced == nullptr) synced = &c.axes;
          break;
        default:
          break;
      }
    }
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      const ir::ValueRef& v = n.inputs[i];
      const ir::Node& producer = graph.node(v.node);
      const ShardingSpec* from = spec_of(v);
      if (from == nullptr) {
        return core::invalid_argument(fmt::format(
            "stage {}: node '{}' reads %{}#{}, which the stage neither computes nor receives",
            stage.index, n.name, producer.name, v.index));
      }
      LocalInput in;
      in.value = ValueName{producer.name, v.index};
      const ShardingSpec& to = ns.inputs[i];
      const bool blocked = std::any_of(to.blocks.begin(), to.blocks.end(), [](int64_t b) { return b > 1; });
      if (producer.kind == ir::NodeKind::kBuffer && *from != to && from->is_replicated() && !blocked) {
        in.move = Move{*from, to, {}};
        in.buffer_view = true;
        program.buffer_views.push_back(BufferView{producer.name, to});
      } else {
        ALPA_ASSIGN_OR_RETURN(in.move, move(*from, to, graph.meta(v),
                                            fmt::format("input {} of node '{}'", i, n.name)));
      }
      auto g = grad_reduce.find(static_cast<int64_t>(i));
      if (g != grad_reduce.end()) {
        if (producer.kind == ir::NodeKind::kParameter && in.move.steps.empty() && !in.buffer_view) {
          in.bucketed = true;
          add_to_bucket(producer, g->second);
        } else {
          in.grad_reduce = g->second;
        }
      }
      out.inputs.push_back(std::move(in));
    }
    for (size_t j = 0; j < n.outputs.size(); ++j) {
      ALPA_ASSIGN_OR_RETURN(LocalValue o, local_value(ValueName{n.name, static_cast<int64_t>(j)},
                                                      n.outputs[j], ns.outputs[j]));
      held[{n.name, static_cast<int64_t>(j)}] = ns.outputs[j];
      out.outputs.push_back(std::move(o));
    }
    ALPA_RETURN_IF_ERROR(set_kind(n, ns, partial, synced, out));
    ALPA_RETURN_IF_ERROR(set_local_args(n, out));
    program.nodes.push_back(std::move(out));
    return core::ok_status();
  }

  std::map<std::pair<MeshAxes, ir::DType>, size_t> open_bucket;  // key -> index in buckets
  std::map<size_t, int64_t> bucket_bytes;
  std::set<std::pair<std::string, std::pair<MeshAxes, ir::DType>>> bucketed;

  void add_to_bucket(const ir::Node& param, const MeshAxes& axes) {
    const ir::TensorMeta& meta = param.outputs.at(0);
    auto key = std::make_pair(axes, meta.dtype);
    if (!bucketed.insert({param.name, key}).second) return;  // a second use: same bucket
    auto it = open_bucket.find(key);
    if (it == open_bucket.end() ||
        (bucket_bytes[it->second] > 0 && bucket_bytes[it->second] + meta.bytes() > kGradBucketBytes)) {
      program.buckets.push_back(GradBucket{axes, meta.dtype, {}});
      it = open_bucket.insert_or_assign(key, program.buckets.size() - 1).first;
    }
    program.buckets[it->second].parameters.push_back(param.name);
    bucket_bytes[it->second] += meta.bytes();
  }

  core::Status set_kind(const ir::Node& n, const plan::NodeSharding& ns, const MeshAxes* partial,
                        const MeshAxes* synced, LocalNode& out) {
    const std::string_view base = ir::op_base_name(n.op);
    if (base == "moe_experts") {
      out.kind = LocalOpKind::kExperts;
      const MeshAxes& tokens = ns.inputs.at(0).dims.at(0);
      const MeshAxes& experts = ns.inputs.at(3).dims.at(0);
      const bool inside = std::all_of(experts.begin(), experts.end(), [&](int a) {
        return std::find(tokens.begin(), tokens.end(), a) != tokens.end();
      });
      const bool overlap = std::any_of(experts.begin(), experts.end(), [&](int a) {
        return std::find(tokens.begin(), tokens.end(), a) != tokens.end();
      });
      if ((!experts.empty() && !inside && overlap) ||
          (inside && !std::is_sorted(experts.begin(), experts.end()))) {
        return core::not_implemented(fmt::format(
            "node '{}': experts split over mesh axes ({}) with tokens over ({}); alpa_torch exchanges "
            "tokens over whole expert axes only; pin the experts' parameters to a layout whose expert "
            "axes the tokens also split", n.name, fmt::join(experts, ","), fmt::join(tokens, ",")));
      }
      if (inside) out.exchange_axes = experts;
      if (partial != nullptr) out.reduce_axes = *partial;
      return core::ok_status();
    }
    if (partial != nullptr && base == "embedding") {
      out.kind = LocalOpKind::kRowSplitEmbedding;
      out.reduce_axes = *partial;
      if (const ir::Attr* s = n.attr("scale_grad_by_freq"); s && std::holds_alternative<bool>(*s) &&
                                                           std::get<bool>(*s)) {
        return core::not_implemented(fmt::format(
            "embedding node '{}' has scale_grad_by_freq=True and the plan splits its table by rows, "
            "so no rank sees every index's count; build the nn.Embedding with scale_grad_by_freq=False, "
            "or pin its weight to a layout that keeps rows whole (plan_overrides={{'<weight fqn>': 'RS0'}} "
            "or 'RR')", n.name));
      }
      const int64_t pieces = ns.inputs.at(0).shards(0, mesh);
      out.rows_per_piece = graph.meta(n.inputs.at(0)).shape.at(0) / pieces;
      return core::ok_status();
    }
    if (synced != nullptr && base.find("batch_norm") != std::string_view::npos) {
      out.kind = LocalOpKind::kSyncedBatchNorm;
      out.reduce_axes = *synced;
      const ir::Shape& x = graph.meta(n.inputs.at(0)).shape;
      int64_t total = 1;
      for (int64_t d : x) total *= d;
      out.statistics_count = x.size() > 1 && x[1] != 0 ? total / x[1] : total;
      return core::ok_status();
    }
    if (partial != nullptr) {
      out.reduce_axes = *partial;
      out.kind = kGroupedMatmuls.count(base) && !ns.inputs.at(1).dims.at(0).empty()
                     ? LocalOpKind::kExpertRows
                     : LocalOpKind::kPartialSum;
      ALPA_RETURN_IF_ERROR(set_addend(n, base, out));
      if (is_mean(n, base)) out.mean_divisor = axes_size(*partial);
      return core::ok_status();
    }
    if (n.inputs.empty() && kWholeFactories.count(base)) {
      const ShardingSpec& spec = ns.outputs.at(0);
      if (spec.total_shards(mesh) > 1) out.kind = LocalOpKind::kWholeThenSlice;
    }
    return core::ok_status();
  }

  static bool bound(const ir::Node& n, std::string_view arg) {
    const ir::Attr* a = n.attr(arg);
    return a != nullptr && std::holds_alternative<ir::InputRef>(*a);
  }

  static bool is_one(const ir::Attr* a) {
    if (a == nullptr || std::holds_alternative<std::monostate>(*a)) return true;
    if (std::holds_alternative<int64_t>(*a)) return std::get<int64_t>(*a) == 1;
    if (std::holds_alternative<double>(*a)) return std::get<double>(*a) == 1.0;
    return false;
  }

  core::Status set_addend(const ir::Node& n, std::string_view base, LocalNode& out) const {
    if (base == "addmm" || base == "baddbmm") {
      if (!is_one(n.attr("beta")) || !is_one(n.attr("alpha"))) {
        return core::not_implemented(fmt::format(
            "node '{}' ({}) scales its terms (beta or alpha is not 1) and the plan splits its "
            "contracted dim; write the matmul and the addition as separate ops", n.name, n.op));
      }
      out.addend = "self";
      out.local_op = base == "addmm" ? "aten.mm.default" : "aten.bmm.default";
    } else if (base == "linear" && bound(n, "bias")) {
      out.addend = "bias";
    } else if (kConvolutions.count(base) && bound(n, "bias")) {
      out.addend = "bias";
      out.addend_broadcast = true;
    }
    return core::ok_status();
  }

  static bool is_mean(const ir::Node& n, std::string_view base) {
    if (base == "mean") return true;
    return kLosses.count(base) && n.attr_int("reduction", kMeanReduction) == kMeanReduction;
  }

  core::Status set_local_args(const ir::Node& n, LocalNode& out) const {
    const std::string_view base = ir::op_base_name(n.op);
    if (out.kind == LocalOpKind::kWholeThenSlice || out.outputs.empty()) return core::ok_status();
    const ir::Shape& local0 = out.outputs[0].local_shape;
    if (auto it = kSizeArgs.find(base); it != kSizeArgs.end() && n.attr(it->second) != nullptr) {
      out.args.push_back(LocalArg{std::string(it->second), local0});
    } else if ((base == "split" || base == "split_with_sizes") && n.attr("dim") != nullptr) {
      // every piece has the input's rank, so the output rank normalises `dim`
      const int64_t rank = static_cast<int64_t>(out.outputs[0].meta.shape.size());
      const int64_t dim = ((n.attr_int("dim", 0) % rank) + rank) % rank;
      std::vector<int64_t> sizes;
      for (const LocalValue& o : out.outputs) sizes.push_back(o.local_shape.at(static_cast<size_t>(dim)));
      if (base == "split") {
        out.args.push_back(LocalArg{"split_size", {sizes.at(0)}});
      } else {
        out.args.push_back(LocalArg{"split_sizes", sizes});
      }
    } else if (base == "unflatten" && n.attr("sizes") != nullptr) {
      // `dim` counts in the INPUT's rank: the output has count - 1 more dims
      const auto sizes = n.attr_ints("sizes");
      const int64_t count = sizes ? static_cast<int64_t>(sizes->size()) : 0;
      const int64_t in_rank = static_cast<int64_t>(local0.size()) - count + 1;
      const int64_t dim = ((n.attr_int("dim", 0) % in_rank) + in_rank) % in_rank;
      out.args.push_back(LocalArg{"sizes", ir::Shape(local0.begin() + dim, local0.begin() + dim + count)});
    }
    return core::ok_status();
  }

  core::StatusOr<LocalOutput> output_of(const ir::ValueRef& v, const ShardingSpec* send_as) const {
    const ir::Node& producer = graph.node(v.node);
    const ShardingSpec* spec = spec_of(v);
    if (spec == nullptr) {
      return core::invalid_argument(fmt::format(
          "stage {}: output %{}#{} is neither computed nor received by the stage", stage.index,
          producer.name, v.index));
    }
    LocalOutput o;
    ALPA_ASSIGN_OR_RETURN(o.value, local_value(ValueName{producer.name, v.index}, graph.meta(v), *spec));
    if (send_as == nullptr) {
      o.move = Move{*spec, *spec, {}};
    } else {
      ALPA_ASSIGN_OR_RETURN(o.move, move(*spec, *send_as, graph.meta(v),
                                         "the value sent on %" + producer.name));
    }
    return o;
  }
};

core::StatusOr<mesh::DeviceMesh> logical_mesh(const std::array<int64_t, 2>& shape) {
  // Only the shape matters to layouts and steps; links do not.
  ALPA_ASSIGN_OR_RETURN(mesh::Cluster cluster, mesh::cluster_preset("cpu-gloo", 1, shape[0] * shape[1]));
  return mesh::DeviceMesh::create(cluster, shape);
}

}  // namespace

core::StatusOr<LocalProgram> build_local_program(const ir::Graph& graph, const plan::Plan& plan,
                                                 int64_t stage_index) {
  if (stage_index < 0 || stage_index >= static_cast<int64_t>(plan.stages.size())) {
    return core::invalid_argument(fmt::format("the plan has {} stage(s); there is no stage {}",
                                              plan.stages.size(), stage_index));
  }
  const plan::StagePlan& stage = plan.stages[static_cast<size_t>(stage_index)];
  ALPA_ASSIGN_OR_RETURN(mesh::DeviceMesh mesh, logical_mesh(stage.mesh_shape));
  Builder b(graph, stage, std::move(mesh));
  b.program.stage = stage.index;
  b.program.mesh_shape = stage.mesh_shape;
  for (const plan::NodeSharding& ns : stage.nodes) b.members[ns.node] = &ns;
  // The graph node producing a boundary value the stage receives or sends.
  auto producer_of = [&](const plan::StageValue& v, const char* verb) -> core::StatusOr<ir::NodeId> {
    auto producer = graph.find(v.producer);
    if (!producer) {
      return core::invalid_argument(fmt::format(
          "stage {} {} %{}, which the graph does not have; plan the graph again", stage.index, verb,
          v.producer));
    }
    return *producer;
  };
  for (const plan::StageValue& v : stage.inputs) {
    ALPA_RETURN_IF_ERROR(producer_of(v, "receives").status());
    b.received_names.insert(v.name);
    ALPA_ASSIGN_OR_RETURN(LocalValue lv, b.local_value(ValueName{v.producer, v.index}, v.meta, v.spec));
    b.held[{v.producer, v.index}] = v.spec;
    b.program.received.push_back(std::move(lv));
  }
  for (const ir::Node& n : graph.nodes()) {
    auto it = b.members.find(n.name);
    if (it == b.members.end() || b.received_names.count(n.name)) continue;
    if (n.is_placeholder()) {
      ALPA_RETURN_IF_ERROR(b.add_placeholder(n, *it->second));
    } else {
      ALPA_RETURN_IF_ERROR(b.add_op(n, *it->second));
    }
  }
  for (const plan::StageValue& v : stage.outputs) {
    ALPA_ASSIGN_OR_RETURN(ir::NodeId producer, producer_of(v, "sends"));
    ALPA_ASSIGN_OR_RETURN(LocalOutput o, b.output_of(ir::ValueRef{producer, v.index}, &v.spec));
    b.program.sends.push_back(std::move(o));
  }
  std::vector<int64_t> outputs = stage.graph_outputs;
  if (plan.stages.size() == 1 && outputs.empty()) {
    for (size_t i = 0; i < graph.outputs().size(); ++i) outputs.push_back(static_cast<int64_t>(i));
  }
  for (int64_t i : outputs) {
    if (i < 0 || i >= static_cast<int64_t>(graph.outputs().size())) {
      return core::invalid_argument(fmt::format("stage {} produces graph output {}; the graph has {}",
                                                stage.index, i, graph.outputs().size()));
    }
    ALPA_ASSIGN_OR_RETURN(LocalOutput o, b.output_of(graph.outputs()[static_cast<size_t>(i)].value, nullptr));
    b.program.graph_outputs.push_back(std::move(o));
    b.program.graph_output_indices.push_back(i);
  }
  return std::move(b.program);
}

}  // namespace alpa::rewrite
