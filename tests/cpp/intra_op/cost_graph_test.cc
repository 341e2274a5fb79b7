// Tests the cost graph: follow-merging keeps the optimum of small graphs
// (cross-checked by exhaustive search over every node's strategies) and
// maps choices back to every node.
#include "intra_op/cost_graph.h"

#include <functional>

#include <gtest/gtest.h>

#include "intra_op/evaluator.h"
#include "intra_op/ilp_solver.h"
#include "ir/graph_builder.h"

namespace alpa::intra_op {
namespace {

using ir::DType;
using ir::GraphBuilder;
using ir::ValueRef;

ir::Graph small_mlp(int64_t batch, int64_t h) {
  GraphBuilder b("mlp");
  ValueRef x = b.input("x", {{batch, h}, DType::kFloat32});
  ValueRef w1 = b.parameter("w1", {{2 * h, h}, DType::kFloat32});
  ValueRef w2 = b.parameter("w2", {{h, 2 * h}, DType::kFloat32});
  ValueRef y = b.linear(b.unary("relu", b.linear(x, w1)), w2);
  b.output(y);
  return b.build().value();
}

// Exhaustive search over the unmerged problem: every graph node free.
double brute_force(const CostGraph& cg) {
  const auto& nodes = cg.nodes();
  std::vector<int64_t> choice(nodes.size(), 0);
  double best = kInfinity;
  std::function<void(size_t)> rec = [&](size_t i) {
    if (i == nodes.size()) {
      double total = 0;
      for (size_t n = 0; n < nodes.size(); ++n) {
        total += nodes[n].compute[static_cast<size_t>(choice[n])] + nodes[n].comm[static_cast<size_t>(choice[n])];
      }
      for (const CostEdge& e : cg.edges()) {
        total += e.costs[static_cast<size_t>(choice[e.src.index()])][static_cast<size_t>(choice[e.dst.index()])];
      }
      best = std::min(best, total);
      return;
    }
    for (size_t k = 0; k < nodes[i].strategies.size(); ++k) {
      choice[i] = static_cast<int64_t>(k);
      rec(i + 1);
    }
  };
  rec(0);
  return best;
}

TEST(CostGraphTest, MergedOptimumEqualsExhaustiveSearch) {
  auto cluster = mesh::cluster_preset("a100-40gb", 1, 2).value();
  auto mesh = mesh::DeviceMesh::create(cluster, {1, 2}).value();
  for (auto [batch, h] : {std::pair<int64_t, int64_t>{8, 512}, {2048, 32}, {64, 64}}) {
    ir::Graph g = small_mlp(batch, h);
    IntraOpOptions options;
    options.cost.memory_tiebreak = 0;
    CostGraph cg = CostGraph::build(g, mesh, options).value();
    EXPECT_LT(cg.num_ilp_nodes(), g.num_nodes());  // relu followed its producer
    IlpProblem p = cg.to_ilp(kInfinity);
    IlpSolution sol = solve_ilp(p).value();
    EXPECT_NEAR(sol.objective, brute_force(cg), 1e-12 + 1e-9 * sol.objective) << batch << "x" << h;
    // The expanded choice evaluates to the same objective on the full graph.
    std::vector<int64_t> full = cg.expand(sol.choice);
    double total = 0;
    for (size_t n = 0; n < full.size(); ++n) {
      total += cg.nodes()[n].compute[static_cast<size_t>(full[n])] + cg.nodes()[n].comm[static_cast<size_t>(full[n])];
    }
    for (const CostEdge& e : cg.edges()) {
      total += e.costs[static_cast<size_t>(full[e.src.index()])][static_cast<size_t>(full[e.dst.index()])];
    }
    EXPECT_NEAR(total, sol.objective, 1e-12 + 1e-9 * total);
  }
}

TEST(CostGraphTest, NeedsGradFollowsParameters) {
  ir::Graph g = small_mlp(8, 16);
  std::vector<bool> grad = compute_needs_grad(g);
  EXPECT_FALSE(grad[0]);  // x
  EXPECT_TRUE(grad[1]);   // w1
  EXPECT_TRUE(grad[g.num_nodes() - 1]);
}

}  // namespace
}  // namespace alpa::intra_op
