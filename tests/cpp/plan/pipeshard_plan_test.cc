// Tests make_pipeshard_plan() on tiny hand-built graphs: manual stages and
// their errors, layers from module boundaries, a stage-DP choice computed by
// hand (an expensive inter-host link makes a pipeline with one stage per
// host), boundary values that connect neighbouring stages, the fallback of
// the balance rule, idle mesh axes, progress reports, plans that do not
// depend on the thread count, on pruning or on composing long spans, and
// composed stages solved whole once chosen.
#include "plan/pipeshard_plan.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <stdexcept>
#include <tuple>

#include "ir/graph_builder.h"
#include "plan/intra_op_plan.h"

namespace alpa::plan {
namespace {

using ir::DType;
using ir::GraphBuilder;
using ir::ValueRef;

/// x[batch, width] -> `blocks` x (Linear(width, width) in module h.<i>),
/// `per_block` linears per block.
ir::Graph linear_chain(int blocks, int64_t batch, int64_t width, int per_block = 1) {
  GraphBuilder b("chain");
  ValueRef h = b.input("x", {{batch, width}, DType::kFloat32});
  for (int i = 0; i < blocks; ++i) {
    for (int j = 0; j < per_block; ++j) {
      const std::string fqn = "h." + std::to_string(i) + ".fc" + std::to_string(j);
      h = b.linear(h, b.parameter(fqn + ".weight", {{width, width}, DType::kFloat32}), fqn);
    }
  }
  b.output(h);
  return b.build().value();
}

mesh::Cluster a100(int64_t hosts, int64_t per_host) {
  return mesh::cluster_preset("a100-40gb", hosts, per_host).value();
}

PipeshardRequest manual(std::vector<std::string> boundaries,
                        std::vector<std::array<int64_t, 2>> meshes, int64_t micro_batches = 2) {
  PipeshardRequest r;
  r.layer_boundaries = std::move(boundaries);
  r.stage_meshes = std::move(meshes);
  r.num_micro_batches = micro_batches;
  return r;
}

TEST(PipeshardPlanTest, ManualStages) {
  Plan p = make_pipeshard_plan(linear_chain(4, 64, 128), a100(1, 4),
                               manual({"h.2"}, {{1, 2}, {1, 2}}))
               .value();
  ASSERT_EQ(p.stages.size(), 2u);
  EXPECT_EQ(p.stages[0].layers, (std::array<int64_t, 2>{0, 0}));
  EXPECT_EQ(p.stages[1].layers, (std::array<int64_t, 2>{1, 1}));
  EXPECT_EQ(p.stages[0].submesh, (std::array<int64_t, 2>{1, 2}));
  EXPECT_EQ(p.stages[0].device_ids, (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(p.stages[1].device_ids, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(p.notes, (std::vector<std::string>{"2 manual stage(s)"}));
  // Stage 0 holds h.0 and h.1's weights, stage 1 the others.
  EXPECT_EQ(p.stages[0].param_specs.size(), 2u);
  EXPECT_EQ(p.stages[0].param_specs[1].first, "h.1.fc0.weight");
  EXPECT_EQ(p.stages[1].param_specs[0].first, "h.2.fc0.weight");
  const double t0 = p.stages[0].predicted_time, t1 = p.stages[1].predicted_time;
  EXPECT_DOUBLE_EQ(p.predicted_step_time(), t0 + t1 + 1 * std::max(t0, t1));
}

TEST(PipeshardPlanTest, ManualStageErrors) {
  ir::Graph g = linear_chain(4, 64, 128);
  auto message = [&](PipeshardRequest r) {
    auto p = make_pipeshard_plan(g, a100(1, 4), r);
    EXPECT_FALSE(p.ok());
    EXPECT_EQ(p.status().code(), core::StatusCode::kInvalidArgument);
    return p.status().message();
  };
  EXPECT_EQ(message(manual({"h.2"}, {{1, 2}})),
            "1 stage meshes given for 2 layers; give one logical mesh per stage (and 0 layer "
            "boundaries)");
  EXPECT_EQ(message(manual({"h.2"}, {{1, 2}, {1, 1}})),
            "the stage meshes use 3 devices but the cluster has 4; every device must belong to "
            "exactly one stage");
  EXPECT_EQ(message(manual({"h.9"}, {{1, 2}, {1, 2}})),
            "layer boundary 'h.9' matches no op after the previous boundary; boundaries are "
            "module FQN prefixes in forward order, e.g. 'transformer.h.2'");
  PipeshardRequest bad = manual({}, {});
  bad.num_micro_batches = 0;
  EXPECT_EQ(message(bad), "num_micro_batches must be >= 1, got 0");
  bad.num_micro_batches = 1;
  bad.schedule = "zigzag";
  EXPECT_EQ(message(bad), "unknown pipeline schedule 'zigzag'; use 'gpipe' or '1f1b'");
}

TEST(PipeshardPlanTest, LayersFromBoundaries) {
  ir::Graph g = linear_chain(3, 8, 16);
  // Nodes: x, then per block its weight and linear: w0 l0 w1 l1 w2 l2.
  EXPECT_EQ(layers_from_boundaries(g, {"h.1", "h.2"}).value(),
            (std::vector<int64_t>{0, 0, 0, 1, 1, 2, 2}));
  EXPECT_EQ(layers_from_boundaries(g, {"h.2"}).value(),
            (std::vector<int64_t>{0, 0, 0, 0, 0, 1, 1}));
  // "h" is a prefix of every module but must match whole components.
  EXPECT_EQ(layers_from_boundaries(g, {"h.1.fc0"}).value(),
            (std::vector<int64_t>{0, 0, 0, 1, 1, 1, 1}));
  auto out_of_order = layers_from_boundaries(g, {"h.2", "h.1"});
  ASSERT_FALSE(out_of_order.ok());
  EXPECT_EQ(out_of_order.status().message(),
            "layer boundary 'h.1' matches no op after the previous boundary; boundaries are "
            "module FQN prefixes in forward order, e.g. 'transformer.h.2'");
  EXPECT_FALSE(layers_from_boundaries(g, {"h.1."}).ok());
}

/// Two layers of Linear(1024, 1024) on a [4096, 1024] batch, 2 hosts × 1
/// device, inter-host link (α, β).
Plan two_hosts(double alpha, double beta, PipeshardStats* stats = nullptr) {
  mesh::Cluster c = a100(2, 1);
  c.inter_host = {alpha, beta};
  PipeshardRequest r;
  r.clustering.num_layers = 2;
  r.num_micro_batches = 2;
  return make_pipeshard_plan(linear_chain(2, 4096, 1024), c, r, stats).value();
}

TEST(PipeshardPlanTest, ExpensiveInterHostLinkPipelinesOneStagePerHost) {
  // On one device a layer takes t = 3 (forward + backward) × 2·4096·1024² FLOPs
  // / 156 TFLOP/s (compute-bound: 36 MiB at 1555 GB/s is 24 µs < 55 µs).
  const double t = 3 * 2.0 * 4096 * 1024 * 1024 / 156e12;
  // α = 1 s per message: any split of a layer over both hosts costs >= 1 s,
  // so the single stage would replicate: B·2t = 4t. Two stages: t + t + t.
  Plan slow = two_hosts(1.0, 1e-9);
  ASSERT_EQ(slow.stages.size(), 2u) << slow.explain();
  EXPECT_EQ(slow.stages[0].device_ids, (std::vector<int64_t>{0}));
  EXPECT_EQ(slow.stages[1].device_ids, (std::vector<int64_t>{1}));
  // Stage times carry the ILP's memory tie-break (1e-16 s per byte held).
  const double tiebreak = cost::CostOptions{}.memory_tiebreak;
  for (const StagePlan& s : slow.stages) {
    EXPECT_NEAR(s.predicted_time, t + tiebreak * s.memory_bytes, 1e-9 * t);
    EXPECT_EQ(s.communication_time, 0);
  }
  EXPECT_NEAR(slow.predicted_step_time(), 3 * t, 1e-4 * t);
  const std::string explained = slow.explain();
  EXPECT_NE(explained.find("chose 2 stage(s) [layers 0..0 on (1, 1), layers 1..1 on (1, 1)]"),
            std::string::npos) << explained;
  EXPECT_NE(explained.find("best single stage on all 2 devices (pure intra-op): "),
            std::string::npos) << explained;
  EXPECT_NE(explained.find("pipelining is 25.0% faster"), std::string::npos) << explained;
  // A free link: data parallelism halves the work, B·t/2·2 = 2t < 3t.
  Plan fast = two_hosts(1e-12, 1e-18);
  ASSERT_EQ(fast.stages.size(), 1u) << fast.explain();
  EXPECT_EQ(fast.stages[0].device_ids, (std::vector<int64_t>{0, 1}));
  EXPECT_NEAR(fast.predicted_step_time(), 2 * t, 1e-3 * t);
  EXPECT_NE(fast.explain().find("pure intra-op: a single stage on all 2 devices"),
            std::string::npos) << fast.explain();
  EXPECT_NE(fast.explain().find("beats the best pipeline of >= 2 stages [layers 0..0 on (1, 1), "
                                "layers 1..1 on (1, 1)]"),
            std::string::npos) << fast.explain();
}

/// (producer, output index) of each boundary value.
std::set<std::pair<std::string, int64_t>> producers(const std::vector<StageValue>& values) {
  std::set<std::pair<std::string, int64_t>> out;
  for (const StageValue& v : values) out.insert({v.producer, v.index});
  return out;
}

TEST(PipeshardPlanTest, BoundaryValuesConnectNeighbouringStages) {
  // h.0: a = fc(x); h.1: b = fc(a); h.2: c = b + a. `a` skips stage 1 and
  // travels through it.
  GraphBuilder b("skip");
  ValueRef x = b.input("x", {{64, 128}, DType::kFloat32});
  ValueRef a = b.linear(x, b.parameter("h.0.w", {{128, 128}, DType::kFloat32}), "h.0");
  ValueRef y = b.linear(a, b.parameter("h.1.w", {{128, 128}, DType::kFloat32}), "h.1");
  b.output(b.binary("add", y, a, "h.2"));
  Plan p = make_pipeshard_plan(b.build().value(), a100(1, 3),
                               manual({"h.1", "h.2"}, {{1, 1}, {1, 1}, {1, 1}}))
               .value();
  ASSERT_EQ(p.stages.size(), 3u);
  EXPECT_TRUE(p.stages[0].inputs.empty());
  EXPECT_TRUE(p.stages[2].outputs.empty());
  EXPECT_EQ(p.stages[2].graph_outputs, (std::vector<int64_t>{0}));
  for (size_t s = 0; s + 1 < p.stages.size(); ++s) {
    const auto& out = p.stages[s].outputs;
    const auto& in = p.stages[s + 1].inputs;
    EXPECT_EQ(producers(out), producers(in)) << "between stages " << s << " and " << s + 1;
    for (const StageValue& v : out) {
      auto match = std::find_if(in.begin(), in.end(), [&](const StageValue& w) {
        return w.producer == v.producer && w.index == v.index;
      });
      ASSERT_NE(match, in.end());
      EXPECT_EQ(match->meta, v.meta);
      EXPECT_EQ(match->requires_grad, v.requires_grad);
    }
  }
  EXPECT_EQ(p.stages[1].inputs.size(), 1u);   // a
  EXPECT_EQ(p.stages[1].outputs.size(), 2u);  // its result and a, passed through
}

/// Layer 0: three Linear(999, 999), layer 1: one; batch 7. Nothing divides
/// by 2, so the single stage on both devices replicates all 4 weights.
PipeshardRequest lopsided(double tolerance, bool skip_idle) {
  PipeshardRequest r;
  r.layer_boundaries = {"h.1"};
  r.num_micro_batches = 2;
  r.imbalance_tolerance = tolerance;
  r.skip_idle_mesh_axes = skip_idle;
  // Weights, gradients and Adam state: 16 B per parameter, 999² per weight:
  // the 4 weights (64 MB) do not fit, layer 0's 3 do (48 MB).
  r.options.memory_budget = 16.0 * 999 * 999 * 3.5;
  return r;
}

ir::Graph lopsided_graph() {
  GraphBuilder b("lopsided");
  ValueRef h = b.input("x", {{7, 999}, DType::kFloat32});
  for (const char* m : {"h.0.a", "h.0.b", "h.0.c", "h.1.a"}) {
    h = b.linear(h, b.parameter(std::string(m) + ".weight", {{999, 999}, DType::kFloat32}), m);
  }
  b.output(h);
  return b.build().value();
}

TEST(PipeshardPlanTest, BalanceRuleFallsBackWhenItLeavesNoPlan) {
  // τ = 0: layer 0 has 3/4 of the FLOPs but 1/2 of the devices, so only the
  // single stage is kept, and it does not fit; the planner then costs the
  // skipped stages and pipelines.
  PipeshardStats stats;
  auto p = make_pipeshard_plan(lopsided_graph(), a100(1, 2), lopsided(0.0, false), &stats);
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_EQ(p->stages.size(), 2u);
  EXPECT_TRUE(stats.imbalance_fallback);
  EXPECT_EQ(stats.num_pruned_imbalance, 0);
  EXPECT_NE(p->explain().find("the balance rule (imbalance tolerance 0) left no feasible "
                              "pipeline; the stages it skipped were costed too"),
            std::string::npos) << p->explain();
  EXPECT_NE(p->explain().find("best single stage on all 2 devices (pure intra-op): none fits "
                              "the memory budget"),
            std::string::npos) << p->explain();
  // With the default τ = 1 both halves are candidates from the start.
  PipeshardStats loose;
  auto q = make_pipeshard_plan(lopsided_graph(), a100(1, 2), lopsided(1.0, false), &loose);
  ASSERT_TRUE(q.ok());
  EXPECT_FALSE(loose.imbalance_fallback);
  EXPECT_EQ(q->stages, p->stages);
}

TEST(PipeshardPlanTest, IdleMeshAxesAreSkipped) {
  // Nothing divides by 2: the whole graph on (2, 1) would only replicate.
  PipeshardStats stats;
  auto p = make_pipeshard_plan(lopsided_graph(), a100(1, 2), lopsided(INFINITY, true), &stats);
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_EQ(stats.num_pruned_idle_axes, 1);
  EXPECT_EQ(stats.num_costed, 2);  // layer 0 and layer 1 on one device each
  EXPECT_EQ(p->stages.size(), 2u);
}

TEST(PipeshardPlanTest, ProgressReportsEveryDistinctSolve) {
  // Four equal blocks: 10 spans on 3 sub-meshes of a 1 x 4 cluster.
  PipeshardRequest r;
  r.clustering.num_layers = 4;
  r.num_micro_batches = 4;
  std::vector<std::pair<int64_t, int64_t>> calls;
  r.progress = [&](int64_t done, int64_t total) { calls.emplace_back(done, total); };
  PipeshardStats stats;
  ir::Graph g = linear_chain(4, 256, 256);
  Plan p = make_pipeshard_plan(g, a100(1, 4), r, &stats).value();
  ASSERT_EQ(static_cast<int64_t>(calls.size()), stats.num_solved);
  for (size_t i = 0; i < calls.size(); ++i) {
    EXPECT_EQ(calls[i], std::make_pair(static_cast<int64_t>(i) + 1, stats.num_solved));
  }
  EXPECT_LT(stats.num_solved, stats.num_costed);  // equal blocks shared their ILPs
  EXPECT_LT(stats.num_distinct_stage_graphs, stats.num_stage_graphs);
  EXPECT_EQ(stats.num_candidates, 10 * (1 + 1 + 2));
  // An exception from the callback stops planning and propagates.
  int seen = 0;
  r.progress = [&](int64_t, int64_t) {
    if (++seen == 2) throw std::runtime_error("cancelled");
  };
  r.num_threads = 2;
  EXPECT_THROW(make_pipeshard_plan(g, a100(1, 4), r), std::runtime_error);
  EXPECT_EQ(seen, 2);
}

TEST(PipeshardPlanTest, SamePlanWithThreadsAndWithoutPruning) {
  ir::Graph g = linear_chain(4, 512, 512, 2);
  PipeshardRequest r;
  r.clustering.num_layers = 4;
  r.num_micro_batches = 8;
  const std::string one = core::dump_json(make_pipeshard_plan(g, a100(2, 2), r).value().to_json());
  r.num_threads = 2;
  EXPECT_EQ(core::dump_json(make_pipeshard_plan(g, a100(2, 2), r).value().to_json()), one);
  r.imbalance_tolerance = INFINITY;
  r.skip_idle_mesh_axes = false;
  PipeshardStats all;
  Plan full = make_pipeshard_plan(g, a100(2, 2), r, &all).value();
  EXPECT_EQ(all.num_pruned_imbalance, 0);
  EXPECT_EQ(full.predicted_step_time(), Plan::parse(one).value().predicted_step_time());
}

TEST(PipeshardPlanTest, ComposedSpansAgreeWithWholeSolves) {
  // Six equal blocks: spans of 3+ layers are composed from 1- and 2-layer
  // ILPs (exact here: the blocks' layouts repeat), and the plan is the one
  // found when every span is solved whole.
  ir::Graph g = linear_chain(6, 1024, 512, 2);
  PipeshardRequest r;
  r.clustering.num_layers = 6;
  r.num_micro_batches = 8;
  r.imbalance_tolerance = INFINITY;
  PipeshardStats composed, whole;
  Plan a = make_pipeshard_plan(g, a100(2, 2), r, &composed).value();
  r.exact_span_layers = 0;
  Plan b = make_pipeshard_plan(g, a100(2, 2), r, &whole).value();
  EXPECT_EQ(a.stages, b.stages) << a.explain() << b.explain();
  EXPECT_GT(composed.num_composed, 0);
  EXPECT_EQ(whole.num_composed, 0);
  EXPECT_LT(composed.num_solved, whole.num_solved);
  EXPECT_LE(composed.max_composition_error, 1e-9);
  r.exact_span_layers = 1;
  auto bad = make_pipeshard_plan(g, a100(2, 2), r);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "exact_span_layers must be 0 (solve every span whole) or >= 2, got 1");
}

TEST(PipeshardPlanTest, ChosenComposedStagesAreSolvedWhole) {
  // B = 1 and compute-bound layers: one stage on all devices beats any
  // pipeline; that span of all four layers is composed at first and then
  // solved whole.
  ir::Graph g = linear_chain(4, 8192, 1024);
  PipeshardRequest r;
  r.clustering.num_layers = 4;
  r.num_micro_batches = 1;
  PipeshardStats stats;
  Plan p = make_pipeshard_plan(g, a100(1, 4), r, &stats).value();
  ASSERT_EQ(p.stages.size(), 1u) << p.explain();
  EXPECT_GE(stats.num_refined, 1);
  EXPECT_GE(stats.refinement_rounds, 1);
  EXPECT_LE(stats.max_composition_error, 1e-9);
  IntraOpRequest whole;
  whole.mesh_shape = p.stages[0].mesh_shape;
  Plan direct = make_intra_op_plan(g, a100(1, 4), whole).value();
  EXPECT_DOUBLE_EQ(p.stages[0].predicted_time, direct.stages[0].predicted_time);
}

}  // namespace
}  // namespace alpa::plan
