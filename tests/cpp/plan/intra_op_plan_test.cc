// Tests the single-stage planner on hand-built graphs whose optimal plans
// are known: Megatron tensor parallelism, data parallelism, memory budgets.
#include "plan/intra_op_plan.h"

#include <cmath>
#include <map>

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
  auto back = Plan::parse(core::dump_json(p.to_json()));
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(core::dump_json(back->to_json()), core::dump_json(p.to_json()));
}

TEST(IntraOpPlanTest, NoMemoryBudgetIsValidJsonAndOlderFilesLoad) {
  IntraOpRequest req;
  req.mesh_shape = {1, 2};
  Plan p = make_intra_op_plan(mlp(64, 256), a100(1, 2), req).value();
  ASSERT_TRUE(std::isinf(p.memory_budget));
  const std::string text = core::dump_json(p.to_json());
  EXPECT_TRUE(core::Json::accept(text)) << text;
  const std::string field = R"("memory_budget":"Infinity")";
  const size_t at = text.find(field);
  ASSERT_NE(at, std::string::npos) << text;
  // Plans written before held the bare token (so did Plan.to_json(indent)).
  std::string legacy = text;
  legacy.replace(at, field.size(), R"("memory_budget":Infinity)");
  auto back = Plan::parse(legacy);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_TRUE(std::isinf(back->memory_budget));
  EXPECT_EQ(core::dump_json(back->to_json()), text);
}

TEST(IntraOpPlanTest, CollectivesCarryTheirRole) {
  IntraOpRequest req;
  req.mesh_shape = {1, 4};
  Plan p = make_intra_op_plan(mlp(8, 1024), a100(1, 4), req).value();
  std::map<std::string, int> roles;
  for (const auto& c : p.stages[0].collectives) ++roles[sharding::collective_role_name(c.role)];
  // Megatron: the second linear's partial sums are all-reduced forward.
  EXPECT_EQ(roles["partial_output"], 1) << p.explain();
  for (const auto& c : p.stages[0].collectives) {
    if (c.role == sharding::CollectiveRole::kPartialOutput) {
      EXPECT_EQ(c.node, "linear_1");
      EXPECT_EQ(c.phase, sharding::Phase::kForward);
    }
  }
  // Roles survive JSON; a plan written before roles existed gets them
  // back from the `what` text.
  std::string text = core::dump_json(p.to_json());
  Plan back = Plan::parse(text).value();
  EXPECT_EQ(back.stages[0].collectives, p.stages[0].collectives);
  std::string legacy = text;
  for (const char* role : {"reshard", "partial_output", "input_grad", "parameter_grad"}) {
    const std::string key = std::string(",\"role\":\"") + role + "\"";
    for (size_t at = legacy.find(key); at != std::string::npos; at = legacy.find(key)) {
      legacy.erase(at, key.size());
    }
  }
  ASSERT_EQ(legacy.find("\"role\""), std::string::npos) << legacy;
  Plan old = Plan::parse(legacy).value();
  EXPECT_EQ(old.stages[0].collectives, p.stages[0].collectives);
  // An unknown role is refused by name.
  std::string bad = text;
  bad.replace(bad.find("\"partial_output\""), 16, "\"partial_sums\"");
  auto refused = Plan::parse(bad);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("unknown collective role 'partial_sums'"), std::string::npos)
      << refused.status().to_string();
}

}  // namespace
}  // namespace alpa::plan
