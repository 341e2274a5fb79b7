// Tests the single-stage planner on hand-built graphs whose optimal plans
// are known: Megatron tensor parallelism, data parallelism, memory budgets.
#include "plan/intra_op_plan.h"

#include <gtest/gtest.h>

#include "ir/graph_builder.h"

namespace alpa::plan {
namespace {

using ir::DType;
using ir::GraphBuilder;
using ir::ValueRef;

/// x[batch, h] -> Linear(h, 4h) -> GELU -> Linear(4h, h) -> sum (a loss).
ir::Graph mlp(int64_t batch, int64_t h) {
  GraphBuilder b("mlp");
  ValueRef x = b.input("x", {{batch, h}, DType::kFloat32});
  ValueRef w1 = b.parameter("fc1.weight", {{4 * h, h}, DType::kFloat32});
  ValueRef w2 = b.parameter("fc2.weight", {{h, 4 * h}, DType::kFloat32});
  ValueRef y = b.linear(b.unary("gelu", b.linear(x, w1, "fc1"), "act"), w2, "fc2");
  b.output(b.op("aten.sum.default", {y}, {{"self", ir::InputRef{0}}}));
  return b.build().value();
}

std::string spec_of(const Plan& p, const std::string& fqn) {
  for (const auto& [name, spec] : p.stages.at(0).param_specs) {
    if (name == fqn) return spec.to_string();
  }
  return "?";
}

mesh::Cluster a100(int64_t hosts, int64_t per_host) {
  return mesh::cluster_preset("a100-40gb", hosts, per_host).value();
}

TEST(IntraOpPlanTest, MegatronMlpOnFourDevices) {
  IntraOpRequest req;
  req.mesh_shape = {1, 4};
  Plan p = make_intra_op_plan(mlp(8, 1024), a100(1, 4), req).value();
  EXPECT_EQ(spec_of(p, "fc1.weight"), "S0R");
  EXPECT_EQ(spec_of(p, "fc2.weight"), "RS0");
  int forward_all_reduces = 0;
  for (const auto& c : p.stages[0].collectives) {
    if (c.phase == sharding::Phase::kForward && c.kind == sharding::CollectiveKind::kAllReduce &&
        c.bytes > 4) {
      ++forward_all_reduces;
    }
  }
  EXPECT_EQ(forward_all_reduces, 1) << p.explain();
}

TEST(IntraOpPlanTest, DataParallelForLargeBatch) {
  IntraOpRequest req;
  req.mesh_shape = {1, 4};
  Plan p = make_intra_op_plan(mlp(4096, 64), a100(1, 4), req).value();
  EXPECT_EQ(spec_of(p, "fc1.weight"), "RR") << p.explain();
  EXPECT_EQ(spec_of(p, "fc2.weight"), "RR");
  EXPECT_EQ(p.stages[0].input_specs[0].second.to_string(), "S0R");
  for (const auto& c : p.stages[0].collectives) {
    if (c.bytes <= 4) continue;  // the scalar loss
    EXPECT_EQ(c.phase, sharding::Phase::kBackward) << p.explain();
    EXPECT_EQ(c.kind, sharding::CollectiveKind::kAllReduce);
  }
}

TEST(IntraOpPlanTest, JsonRoundTrip) {
  IntraOpRequest req;
  req.mesh_shape = {2, 2};
  Plan p = make_intra_op_plan(mlp(64, 256), a100(1, 4), req).value();
  auto back = Plan::parse(p.to_json().dump());
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(back->to_json().dump(), p.to_json().dump());
}

}  // namespace
}  // namespace alpa::plan
