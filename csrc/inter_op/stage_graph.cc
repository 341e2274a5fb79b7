// This file implements stage-graph extraction and the structural hash.
#include "inter_op/stage_graph.h"

#include <fmt/format.h>

#include <map>

#include "core/check.h"
#include "core/hash.h"
#include "ir/dtype.h"

namespace alpa::inter_op {
namespace {

std::string boundary_name(const ir::Node& producer, int64_t index) {
  return index == 0 ? producer.name : fmt::format("{}.{}", producer.name, index);
}

struct ValueKey {
  size_t node;
  int64_t index;
  friend bool operator<(ValueKey a, ValueKey b) {
    return a.node != b.node ? a.node < b.node : a.index < b.index;
  }
};

/// Layer a value is produced in: user inputs count as layer -1, op outputs
/// as their node's layer; other placeholders have no layer (-2).
int64_t producer_layer(const ir::Node& n, const std::vector<int64_t>& layer_of_node) {
  if (n.kind == ir::NodeKind::kInput) return -1;
  if (n.kind == ir::NodeKind::kOp) return layer_of_node[static_cast<size_t>(n.id.index())];
  return -2;
}

class Extractor {
 public:
  Extractor(const ir::Graph& g, const std::vector<int64_t>& layer_of_node, int64_t first,
            int64_t last, int64_t num_layers)
      : g_(g), layer_(layer_of_node), first_(first), last_(last), num_layers_(num_layers),
        grad_(values_requiring_grad(g)) {
    out_.graph.set_name(fmt::format("{}.layers{}_{}", g.name(), first, last));
  }

  core::StatusOr<StageGraph> run() {
    last_reader_ = last_reading_layer();
    // Values produced before the stage that it or later stages need.
    for (const ir::Node& n : g_.nodes()) {
      int64_t pl = producer_layer(n, layer_);
      if (pl == -2 || pl >= first_) continue;
      for (int64_t k = 0; k < static_cast<int64_t>(n.outputs.size()); ++k) {
        if (last_reader_.count({n.id.index(), k}) && last_reader_[{n.id.index(), k}] >= first_) {
          add_input(n, k, /*boundary=*/first_ > 0);
        }
      }
    }
    // Parameters, buffers and constants the stage reads, in graph order.
    std::vector<bool> read(static_cast<size_t>(g_.num_nodes()), false);
    for (const ir::Node& n : g_.nodes()) {
      if (in_stage(n)) {
        for (ir::ValueRef v : n.inputs) read[v.node.index()] = true;
      }
    }
    for (const ir::Node& n : g_.nodes()) {
      if (read[n.id.index()] && producer_layer(n, layer_) == -2) placeholder(n);
    }
    for (const ir::Node& n : g_.nodes()) {
      if (in_stage(n)) add_op(n);
    }
    add_outputs();
    return std::move(out_);
  }

 private:
  /// For each value: the last layer that needs it (num_layers for graph
  /// user outputs, which the last stage emits).
  std::map<ValueKey, int64_t> last_reading_layer() const {
    std::map<ValueKey, int64_t> last;
    auto need = [&](ir::ValueRef v, int64_t layer) {
      auto& slot = last[{v.node.index(), v.index}];
      slot = std::max(slot, layer);
    };
    for (const ir::Node& n : g_.nodes()) {
      if (n.kind != ir::NodeKind::kOp) continue;
      for (ir::ValueRef v : n.inputs) need(v, layer_[static_cast<size_t>(n.id.index())]);
    }
    for (const ir::GraphOutput& o : g_.outputs()) {
      if (o.role == ir::OutputRole::kUserOutput) need(o.value, num_layers_);
    }
    return last;
  }

  void add_input(const ir::Node& n, int64_t k, bool boundary) {
    ir::Node in;
    in.kind = ir::NodeKind::kInput;
    in.name = boundary ? boundary_name(n, k) : n.name;
    in.target = boundary ? in.name : n.target;
    in.outputs = {n.outputs[static_cast<size_t>(k)]};
    in.requires_grad = grad_[static_cast<size_t>(n.id.index())][static_cast<size_t>(k)];
    in.module = n.module;
    ir::NodeId id = out_.graph.add_node(std::move(in));
    map_[{n.id.index(), k}] = ir::ValueRef{id, 0};
    if (boundary) {
      out_.inputs.push_back(boundary_value(n, k, out_.graph.node(id).name));
    }
  }

  BoundaryValue boundary_value(const ir::Node& n, int64_t k, const std::string& name) const {
    return BoundaryValue{name, n.name, k, n.outputs[static_cast<size_t>(k)],
                         grad_[static_cast<size_t>(n.id.index())][static_cast<size_t>(k)]};
  }

  ir::ValueRef placeholder(const ir::Node& p) {
    auto it = map_.find({p.id.index(), 0});
    if (it != map_.end()) return it->second;
    ir::Node copy = p;
    ir::NodeId id = out_.graph.add_node(std::move(copy));
    map_[{p.id.index(), 0}] = ir::ValueRef{id, 0};
    return map_[{p.id.index(), 0}];
  }

  void add_op(const ir::Node& n) {
    ir::Node copy = n;
    for (ir::ValueRef& v : copy.inputs) {
      auto it = map_.find({v.node.index(), v.index});
      if (it != map_.end()) {
        v = it->second;
        continue;
      }
      const ir::Node& producer = g_.node(v.node);
      ALPA_CHECK(producer.kind != ir::NodeKind::kOp && producer.kind != ir::NodeKind::kInput,
                 "stage graph: {} reads {} which is neither in the stage nor received",
                 n.name, producer.name);
      v = placeholder(producer);
    }
    ir::NodeId id = out_.graph.add_node(std::move(copy));
    for (int64_t k = 0; k < static_cast<int64_t>(n.outputs.size()); ++k) {
      map_[{n.id.index(), k}] = ir::ValueRef{id, k};
    }
  }

  void add_outputs() {
    const bool is_last = last_ + 1 == num_layers_;
    // Everything received or computed here that a later stage needs.
    for (const auto& [key, reader] : last_reader_) {
      if (reader <= last_ || is_last) continue;
      auto it = map_.find(key);
      if (it == map_.end()) continue;  // produced by a later stage
      const ir::Node& n = g_.node(ir::NodeId(key.node));
      if (producer_layer(n, layer_) == -2) continue;  // parameters stay per stage
      out_.graph.add_output(ir::GraphOutput{it->second, ir::OutputRole::kUserOutput, ""});
      std::string name = producer_layer(n, layer_) == -1 ? n.name : boundary_name(n, key.index);
      out_.outputs.push_back(boundary_value(n, key.index, name));
    }
    for (size_t i = 0; i < g_.outputs().size(); ++i) {
      const ir::GraphOutput& o = g_.outputs()[i];
      bool mine = o.role == ir::OutputRole::kUserOutput
                      ? is_last
                      : layer_of_value(o.value) >= first_ && layer_of_value(o.value) <= last_;
      if (!mine) continue;
      ir::GraphOutput copy = o;
      auto it = map_.find({o.value.node.index(), o.value.index});
      // A parameter returned as is, read by no op of this stage, is added here.
      copy.value = it != map_.end() ? it->second : placeholder(g_.node(o.value.node));
      out_.graph.add_output(copy);
      out_.graph_outputs.push_back(static_cast<int64_t>(i));
    }
  }

  bool in_stage(const ir::Node& n) const {
    if (n.kind != ir::NodeKind::kOp) return false;
    int64_t layer = layer_[n.id.index()];
    return layer >= first_ && layer <= last_;
  }

  int64_t layer_of_value(ir::ValueRef v) const {
    return producer_layer(g_.node(v.node), layer_);
  }

  const ir::Graph& g_;
  const std::vector<int64_t>& layer_;
  int64_t first_, last_, num_layers_;
  std::vector<std::vector<bool>> grad_;
  std::map<ValueKey, int64_t> last_reader_;
  std::map<ValueKey, ir::ValueRef> map_;
  StageGraph out_;
};

}  // namespace

core::StatusOr<StageGraph> extract_stage_graph(const ir::Graph& graph,
                                               const std::vector<int64_t>& layer_of_node,
                                               int64_t first_layer, int64_t last_layer,
                                               int64_t num_layers) {
  if (static_cast<int64_t>(layer_of_node.size()) != graph.num_nodes()) {
    return core::invalid_argument(fmt::format(
        "layer_of_node has {} entries, expected one per node ({})", layer_of_node.size(),
        graph.num_nodes()));
  }
  if (first_layer < 0 || last_layer < first_layer || last_layer >= num_layers) {
    return core::invalid_argument(fmt::format(
        "stage layers [{}, {}] are not a range within 0..{}", first_layer, last_layer,
        num_layers - 1));
  }
  return Extractor(graph, layer_of_node, first_layer, last_layer, num_layers).run();
}

std::vector<std::vector<bool>> values_requiring_grad(const ir::Graph& graph) {
  std::vector<std::vector<bool>> grad(static_cast<size_t>(graph.num_nodes()));
  for (const ir::Node& n : graph.nodes()) {
    bool any = n.requires_grad &&
               (n.kind == ir::NodeKind::kParameter || n.kind == ir::NodeKind::kInput);
    if (n.kind == ir::NodeKind::kOp) {
      for (ir::ValueRef v : n.inputs) {
        any = any || grad[static_cast<size_t>(v.node.index())][static_cast<size_t>(v.index)];
      }
    }
    auto& out = grad[static_cast<size_t>(n.id.index())];
    for (const ir::TensorMeta& m : n.outputs) out.push_back(any && ir::is_floating(m.dtype));
  }
  return grad;
}

uint64_t structural_hash(const ir::Graph& graph) {
  core::Hasher h;
  for (const ir::Node& n : graph.nodes()) {
    h.add(static_cast<int64_t>(n.kind)).add(n.op).add(static_cast<int64_t>(n.requires_grad));
    for (ir::ValueRef v : n.inputs) h.add(v.node.index()).add(v.index);
    for (const auto& [key, value] : n.attrs) h.add(key).add(ir::attr_to_string(value));
    for (const ir::TensorMeta& m : n.outputs) h.add(m.to_string());
  }
  for (const ir::GraphOutput& o : graph.outputs()) {
    h.add(o.value.node.index()).add(o.value.index).add(static_cast<int64_t>(o.role));
  }
  return h.digest();
}

}  // namespace alpa::inter_op
