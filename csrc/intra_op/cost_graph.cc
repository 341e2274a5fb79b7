// This file implements CostGraph construction and follow-merging.
#include "intra_op/cost_graph.h"

#include <algorithm>
#include <unordered_map>

#include <fmt/format.h>

#include "core/check.h"
#include "cost/compute.h"
#include "cost/memory.h"
#include "ir/autocast.h"
#include "ir/flops.h"

namespace alpa::intra_op {

using sharding::ShardingSpec;
using sharding::Strategy;

std::vector<bool> compute_needs_grad(const ir::Graph& g) {
  std::vector<bool> grad(static_cast<size_t>(g.num_nodes()), false);
  for (const ir::Node& n : g.nodes()) {
    bool floating = !n.outputs.empty() && ir::is_floating(n.outputs[0].dtype);
    if (n.is_placeholder()) {
      grad[n.id.index()] = n.requires_grad && floating;
      continue;
    }
    bool any = std::any_of(n.inputs.begin(), n.inputs.end(),
                           [&](const ir::ValueRef& v) { return grad[v.node.index()]; });
    grad[n.id.index()] = any && floating;
  }
  return grad;
}

namespace {

double local_bytes(const ir::TensorMeta& meta, const ShardingSpec& spec,
                   const mesh::DeviceMesh& mesh) {
  return static_cast<double>(meta.bytes()) / static_cast<double>(spec.total_shards(mesh));
}

// The value is a parameter, possibly through views/casts (w.t(), w.to()).
bool is_parameter_value(const ir::Graph& g, ir::ValueRef v) {
  for (int depth = 0; depth < 8; ++depth) {
    const ir::Node& n = g.node(v.node);
    if (n.kind == ir::NodeKind::kParameter) return true;
    if (n.kind != ir::NodeKind::kOp || n.inputs.size() != 1) return false;
    v = n.inputs[0];
  }
  return false;
}

// Elementwise, data-movement, normalization and softmax ops follow their
// largest operand (Alpa's follow rule); matmuls, convolutions, reductions and
// attention choose freely. Returns the followed input, or -1.
/// What the planner does for an op it must compute replicated: where it is
/// (module path, node) and that every input is gathered whole. The solver
/// adds what that costs in its plan.
std::string replicated_detail(const ir::Graph& g, const ir::Node& n) {
  std::string inputs;
  for (const ir::ValueRef& v : n.inputs) {
    inputs += fmt::format("{}{} {}", inputs.empty() ? "" : ", ", g.node(v.node).name,
                          g.meta(v).to_string());
  }
  std::string where = n.module.empty() ? "the model's own forward" : fmt::format("module '{}'", n.module);
  return fmt::format("in {} (node {}): the planner computes {} replicated, whole on every device{}",
                     where, n.name, n.op,
                     inputs.empty() ? "" : fmt::format(" (its inputs {} gathered whole)", inputs));
}

int64_t followed_input(const ir::Graph& g, const ir::Node& n) {
  if (n.kind != ir::NodeKind::kOp || n.inputs.empty()) return -1;
  ir::OpCategory c = ir::op_category(n.op);
  if (c != ir::OpCategory::kElementwise && c != ir::OpCategory::kData &&
      c != ir::OpCategory::kNorm && c != ir::OpCategory::kSoftmax) {
    return -1;
  }
  int64_t best = 0;
  for (size_t i = 1; i < n.inputs.size(); ++i) {
    if (g.meta(n.inputs[i]).numel() > g.meta(n.inputs[static_cast<size_t>(best)]).numel()) {
      best = static_cast<int64_t>(i);
    }
  }
  // Follow only a value at least as large as the output: a broadcast or
  // reduced operand says little about how the result should be laid out.
  if (g.meta(n.inputs[static_cast<size_t>(best)]).numel() < n.outputs[0].numel()) return -1;
  return best;
}

}  // namespace

core::Status CostGraph::add_node(const ir::Node& n, const IntraOpOptions& options) {
  const ir::Graph& g = *graph_;
  NodeCosts nc;
  bool alpa_mode = options.cost.mode == cost::CostOptions::Mode::kAlpa;
  if (n.is_placeholder()) {
    nc.strategies = sharding::placeholder_strategies(n, mesh_, block_hints_);
    auto pin = options.pinned.find(n.kind == ir::NodeKind::kParameter ? n.target : n.name);
    if (pin == options.pinned.end()) pin = options.pinned.find(n.name);
    if (pin == options.pinned.end() && n.kind == ir::NodeKind::kBuffer) {
      // Buffers are held whole. Their readers may update them in place
      // (BatchNorm's running statistics): a reader's layout is then a view
      // of the whole buffer, whose pieces the runtime gathers back
      // (LocalProgram::buffer_views), while a buffer held sharded would be
      // resliced into a copy and the update lost. Buffers are small
      // (statistics, masks, counters), so replicating them costs little.
      nc.strategies.erase(std::remove_if(nc.strategies.begin(), nc.strategies.end(),
                                         [](const Strategy& s) { return !s.outputs[0].is_replicated(); }),
                          nc.strategies.end());
    }
    if (pin != options.pinned.end()) {
      core::Status ok = pin->second.check(n.outputs[0].shape, mesh_);
      if (!ok.ok()) {
        return core::invalid_argument(fmt::format(
            "pinned spec '{}' for '{}' {} is not valid on {}: {}", pin->second.to_string(),
            n.target, n.outputs[0].to_string(), mesh_.to_string(), ok.message()));
      }
      nc.strategies.erase(std::remove_if(nc.strategies.begin(), nc.strategies.end(),
                                         [&](const Strategy& s) { return s.outputs[0] != pin->second; }),
                          nc.strategies.end());
      if (nc.strategies.empty()) {
        Strategy s;
        s.outputs = {pin->second};
        s.name = pin->second.to_string();
        nc.strategies.push_back(s);
      }
    }
  } else {
    std::string why;
    auto sig = sharding::op_signature(g, n, &why);
    std::vector<bool> input_grad;
    for (const ir::ValueRef& v : n.inputs) input_grad.push_back(needs_grad_[v.node.index()]);
    if (sig) {
      nc.strategies = sharding::op_strategies(g, n, *sig, mesh_, input_grad, block_hints_);
      auto pin = options.pinned_strategies.find(n.name);
      if (pin != options.pinned_strategies.end()) {
        std::vector<Strategy> kept;
        std::string names;
        for (const Strategy& st : nc.strategies) {
          if (st.name == pin->second) kept.push_back(st);
          names += "\n  " + st.name;
        }
        if (kept.empty()) {
          return core::invalid_argument(fmt::format(
              "pinned strategy '{}' is not a strategy of node '{}' ({}) on {}; its strategies:{}",
              pin->second, n.name, n.op, mesh_.to_string(), names));
        }
        nc.strategies = std::move(kept);
      }
      // Parameter gradients are all-reduced in buckets (DDP-style).
      for (Strategy& s : nc.strategies) {
        for (auto& c : s.collectives) {
          if (c.input >= 0 && is_parameter_value(g, n.inputs[static_cast<size_t>(c.input)])) {
            c.fused = true;
            c.what = "parameter gradient";
            c.role = sharding::CollectiveRole::kParameterGrad;
          }
        }
      }
    } else {
      nc.strategies = {sharding::replicated_strategy(g, n)};
      nc.warning = why;
      nc.warning_detail = replicated_detail(g, n);
    }
  }
  bool backward = n.kind == ir::NodeKind::kOp && needs_grad_[n.id.index()];
  // Alpa's convention (allow_recompute_heavy_op = False): a matmul or
  // convolution may not be computed redundantly; only its most parallel
  // strategies are allowed.
  int64_t required_degree = 0;
  if (alpa_mode && n.kind == ir::NodeKind::kOp &&
      (ir::op_category(n.op) == ir::OpCategory::kMatmul ||
       ir::op_category(n.op) == ir::OpCategory::kConvolution)) {
    for (const Strategy& s : nc.strategies) required_degree = std::max(required_degree, s.parallel_degree);
  }
  for (const Strategy& s : nc.strategies) {
    double in_bytes = 0, out_bytes = 0;
    std::vector<double> outs;
    for (size_t i = 0; i < n.inputs.size(); ++i) in_bytes += local_bytes(g.meta(n.inputs[i]), s.inputs[i], mesh_);
    for (size_t j = 0; j < n.outputs.size(); ++j) {
      outs.push_back(local_bytes(n.outputs[j], s.outputs[j], mesh_));
      out_bytes += outs.back();
    }
    double compute = 0, forward = 0;
    if (!alpa_mode && n.kind == ir::NodeKind::kOp && !cost::is_view_op(n.op)) {
      double t = cost::roofline_time(n.flops / static_cast<double>(s.parallel_degree),
                                     in_bytes + out_bytes, n.outputs[0].dtype, mesh_.cluster().device);
      compute = cost::train_time(t, backward);
      forward = t;
    }
    double comm = 0;
    for (const auto& c : s.collectives) {
      const double t = cost::collective_time(c, mesh_, cost_options_);
      comm += t;
      if (c.phase == sharding::Phase::kForward) forward += t;
    }
    if (alpa_mode && n.kind == ir::NodeKind::kParameter) {
      for (int a = 0; a < 2; ++a) {
        if (mesh_.axis_size(a) > 1 && !s.outputs[0].uses_axis(a)) {
          comm += options.cost.alpa_replicated_param_penalty * outs[0];
        }
      }
    }
    if (s.parallel_degree < required_degree) compute = kInfinity;
    nc.compute.push_back(compute);
    nc.comm.push_back(comm);
    nc.memory.push_back(cost::node_memory(n, outs, backward, options.cost));
    nc.forward.push_back(forward);
  }
  nodes_.push_back(std::move(nc));
  return core::ok_status();
}

sharding::ReshardPlan CostGraph::edge_plan(const CostEdge& e, int64_t ks, int64_t kd) const {
  const ShardingSpec& from = nodes_[e.src.index()].strategies[static_cast<size_t>(ks)].outputs[static_cast<size_t>(e.src_output)];
  const ShardingSpec& to = nodes_[e.dst.index()].strategies[static_cast<size_t>(kd)].inputs[static_cast<size_t>(e.dst_input)];
  const ir::TensorMeta& meta = graph_->node(e.src).outputs[static_cast<size_t>(e.src_output)];
  return sharding::plan_reshard(from, to, meta, mesh_, needs_grad_[e.src.index()]);
}

void CostGraph::add_edges() {
  std::unordered_map<std::string, double> cache;
  for (const ir::Node& n : graph_->nodes()) {
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      CostEdge e{n.inputs[i].node, n.inputs[i].index, n.id, static_cast<int64_t>(i), {}};
      const auto& src = nodes_[e.src.index()].strategies;
      const auto& dst = nodes_[e.dst.index()].strategies;
      const ir::TensorMeta& meta = graph_->meta(n.inputs[i]);
      bool grad = needs_grad_[e.src.index()];
      e.costs.assign(src.size(), std::vector<double>(dst.size(), 0));
      for (size_t ks = 0; ks < src.size(); ++ks) {
        for (size_t kd = 0; kd < dst.size(); ++kd) {
          const ShardingSpec& from = src[ks].outputs[static_cast<size_t>(e.src_output)];
          const ShardingSpec& to = dst[kd].inputs[i];
          if (from == to) continue;
          std::string key = fmt::format("{}|{}|{}|{}", meta.to_string(), from.to_string(), to.to_string(), grad);
          auto it = cache.find(key);
          if (it == cache.end()) {
            sharding::ReshardPlan plan = sharding::plan_reshard(from, to, meta, mesh_, grad);
            double t = 0;
            for (const auto* list : {&plan.forward, &plan.backward}) {
              for (const auto& c : *list) t += cost::collective_time(c, mesh_, cost_options_);
            }
            it = cache.emplace(key, t).first;
          }
          e.costs[ks][kd] = it->second;
        }
      }
      edges_.push_back(std::move(e));
    }
  }
}

// Each follower takes, per strategy of its producer's ILP node, its own
// strategy minimizing (its cost + the edge from the producer).
void CostGraph::merge_followers() {
  size_t n = nodes_.size();
  ilp_node_.assign(n, -1);
  follow_map_.assign(n, {});
  follow_edge_.assign(edges_.size(), false);
  // edge index of (node, input position)
  std::vector<std::vector<int64_t>> input_edge(n);
  for (size_t k = 0; k < edges_.size(); ++k) input_edge[edges_[k].dst.index()].push_back(static_cast<int64_t>(k));
  for (const ir::Node& node : graph_->nodes()) {
    size_t i = node.id.index();
    int64_t followed = merge_ && nodes_[i].strategies.size() > 1 ? followed_input(*graph_, node) : -1;
    bool follow = followed >= 0;
    if (!follow) {
      ilp_node_[i] = num_ilp_nodes_++;
      ilp_rep_.push_back(static_cast<int64_t>(i));
      follow_map_[i].resize(nodes_[i].strategies.size());
      for (size_t k = 0; k < follow_map_[i].size(); ++k) follow_map_[i][k] = static_cast<int64_t>(k);
      continue;
    }
    int64_t edge_index = input_edge[i][static_cast<size_t>(followed)];
    const CostEdge& e = edges_[static_cast<size_t>(edge_index)];
    size_t p = e.src.index();
    follow_edge_[static_cast<size_t>(edge_index)] = true;
    ilp_node_[i] = ilp_node_[p];
    // Follow the operand's sharding (Alpa): prefer a strategy that reads the
    // producer's spec as is; only when none exists, the cheapest reshard.
    // (Choosing by local cost alone would split a follower of a replicated
    // value to save a little compute and force gathers downstream.)
    for (int64_t kp : follow_map_[p]) {
      const ShardingSpec& produced = nodes_[p].strategies[static_cast<size_t>(kp)].outputs[static_cast<size_t>(e.src_output)];
      int64_t best = -1;
      double best_cost = kInfinity;
      for (int pass = 0; pass < 2 && best < 0; ++pass) {
        for (size_t kf = 0; kf < nodes_[i].strategies.size(); ++kf) {
          if (pass == 0 && nodes_[i].strategies[kf].inputs[static_cast<size_t>(followed)] != produced) continue;
          double c = e.costs[static_cast<size_t>(kp)][kf] + nodes_[i].compute[kf] + nodes_[i].comm[kf];
          if (best < 0 || c < best_cost) {
            best_cost = c;
            best = static_cast<int64_t>(kf);
          }
        }
      }
      follow_map_[i].push_back(best);
    }
  }
}

core::Status check_pins(const ir::Graph& graph, const IntraOpOptions& options) {
  for (const auto& [name, spec] : options.pinned) {
    bool found = std::any_of(graph.nodes().begin(), graph.nodes().end(), [&](const ir::Node& n) {
      return n.name == name || (n.kind == ir::NodeKind::kParameter && n.target == name);
    });
    if (!found) {
      return core::invalid_argument(fmt::format(
          "plan override names '{}', which is not a parameter of the model (see "
          "model.named_parameters())", name));
    }
  }
  return core::ok_status();
}

core::StatusOr<CostGraph> CostGraph::build(const ir::Graph& graph, const mesh::DeviceMesh& mesh,
                                           const IntraOpOptions& options) {
  CostGraph cg;
  cg.graph_ = &graph;
  if (options.cost.compute_dtype != ir::DType::kFloat32) {
    // Same nodes and edges, activations in the dtypes autocast gives them.
    cg.autocast_ = std::make_shared<const ir::Graph>(
        ir::autocast_graph(graph, options.cost.compute_dtype));
    cg.graph_ = cg.autocast_.get();
  }
  const ir::Graph& g = *cg.graph_;
  cg.mesh_ = mesh;
  cg.cost_options_ = options.cost;
  cg.merge_ = options.merge_followers;
  cg.needs_grad_ = compute_needs_grad(g);
  cg.block_hints_ = sharding::collect_block_hints(g);
  if (!options.pins_may_name_other_stages) ALPA_RETURN_IF_ERROR(check_pins(g, options));
  for (const ir::Node& n : g.nodes()) ALPA_RETURN_IF_ERROR(cg.add_node(n, options));
  cg.add_edges();
  cg.merge_followers();
  return cg;
}

IlpProblem CostGraph::to_ilp(double memory_budget) const {
  IlpProblem p;
  p.node_costs.assign(static_cast<size_t>(num_ilp_nodes_), {});
  p.node_memory.assign(static_cast<size_t>(num_ilp_nodes_), {});
  for (int64_t r = 0; r < num_ilp_nodes_; ++r) {
    size_t rep = static_cast<size_t>(ilp_rep_[static_cast<size_t>(r)]);
    p.node_costs[static_cast<size_t>(r)].assign(follow_map_[rep].size(), 0);
    p.node_memory[static_cast<size_t>(r)].assign(follow_map_[rep].size(), 0);
  }
  for (size_t i = 0; i < nodes_.size(); ++i) {
    size_t r = static_cast<size_t>(ilp_node_[i]);
    for (size_t k = 0; k < p.node_costs[r].size(); ++k) {
      size_t ki = static_cast<size_t>(follow_map_[i][k]);
      p.node_costs[r][k] += nodes_[i].compute[ki] + nodes_[i].comm[ki] +
                            cost_options_.memory_tiebreak * nodes_[i].memory[ki];
      p.node_memory[r][k] += nodes_[i].memory[ki];
    }
  }
  std::map<std::pair<int64_t, int64_t>, size_t> index;
  for (size_t k = 0; k < edges_.size(); ++k) {
    const CostEdge& e = edges_[k];
    size_t s = e.src.index(), d = e.dst.index();
    int64_t rs = ilp_node_[s], rd = ilp_node_[d];
    if (follow_edge_[k] || rs == rd) {  // both ends decided by one variable
      for (size_t kk = 0; kk < p.node_costs[static_cast<size_t>(rd)].size(); ++kk) {
        p.node_costs[static_cast<size_t>(rd)][kk] +=
            e.costs[static_cast<size_t>(follow_map_[s][kk])][static_cast<size_t>(follow_map_[d][kk])];
      }
      continue;
    }
    auto key = std::make_pair(rs, rd);
    auto it = index.find(key);
    if (it == index.end()) {
      IlpProblem::Edge edge;
      edge.src = rs;
      edge.dst = rd;
      edge.costs.assign(p.node_costs[static_cast<size_t>(rs)].size(),
                        std::vector<double>(p.node_costs[static_cast<size_t>(rd)].size(), 0));
      it = index.emplace(key, p.edges.size()).first;
      p.edges.push_back(std::move(edge));
    }
    auto& costs = p.edges[it->second].costs;
    for (size_t a = 0; a < costs.size(); ++a) {
      for (size_t b = 0; b < costs[a].size(); ++b) {
        costs[a][b] += e.costs[static_cast<size_t>(follow_map_[s][a])][static_cast<size_t>(follow_map_[d][b])];
      }
    }
  }
  std::vector<NodeIdx> all;
  for (int64_t r = 0; r < num_ilp_nodes_; ++r) all.push_back(r);
  p.liveness = {all};
  p.memory_budget = memory_budget;
  return p;
}

std::vector<int64_t> CostGraph::expand(const std::vector<StrategyIdx>& ilp_choice) const {
  std::vector<int64_t> out(nodes_.size());
  for (size_t i = 0; i < nodes_.size(); ++i) {
    out[i] = follow_map_[i][static_cast<size_t>(ilp_choice[static_cast<size_t>(ilp_node_[i])])];
  }
  return out;
}

}  // namespace alpa::intra_op
