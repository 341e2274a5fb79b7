// Tests the candidate-stage pruning rules: exact device/stage-count room,
// the FLOP/device balance tolerance, idle logical mesh axes, bad options.
#include "inter_op/stage_pruning.h"

#include <gtest/gtest.h>

#include <cmath>

#include "ir/graph_builder.h"

namespace alpa::inter_op {
namespace {

StagePruner pruner(std::vector<double> flops, int64_t devices, double tolerance,
                   std::optional<int64_t> max_stages = std::nullopt) {
  auto p = StagePruner::create(std::move(flops), devices, tolerance, max_stages);
  EXPECT_TRUE(p.ok()) << p.status().to_string();
  return *p;
}

TEST(StagePruningTest, ExactRoomForTheOtherStages) {
  StagePruner p = pruner({1, 1, 1, 1}, 8, INFINITY);
  EXPECT_EQ(p.verdict(0, 3, 8), StageVerdict::kCandidate);  // the single stage
  EXPECT_EQ(p.verdict(0, 3, 4), StageVerdict::kNoRoom);     // 4 devices left idle
  EXPECT_EQ(p.verdict(0, 2, 8), StageVerdict::kNoRoom);     // layer 3 has no device
  EXPECT_EQ(p.verdict(0, 2, 7), StageVerdict::kCandidate);
  EXPECT_EQ(p.verdict(1, 2, 7), StageVerdict::kNoRoom);     // layers 0 and 3 need 2
  EXPECT_EQ(p.verdict(1, 2, 6), StageVerdict::kCandidate);
  StagePruner two = pruner({1, 1, 1, 1}, 8, INFINITY, 2);
  EXPECT_EQ(two.verdict(1, 2, 2), StageVerdict::kNoRoom);   // needs 3 stages
  EXPECT_EQ(two.verdict(0, 2, 2), StageVerdict::kCandidate);
}

TEST(StagePruningTest, BalanceTolerance) {
  // Layers 0..1 hold 1/2 of the FLOPs.
  StagePruner loose = pruner({1, 1, 1, 1}, 8, 1.0);
  EXPECT_EQ(loose.verdict(0, 1, 4), StageVerdict::kCandidate);   // 1/2 vs 1/2
  EXPECT_EQ(loose.verdict(0, 1, 2), StageVerdict::kCandidate);   // 1/4 = (1/2) / 2
  EXPECT_EQ(loose.verdict(0, 1, 1), StageVerdict::kImbalanced);  // 1/8 < (1/2) / 2
  EXPECT_EQ(loose.verdict(0, 0, 2), StageVerdict::kCandidate);   // 1/4 vs 1/4
  EXPECT_EQ(loose.verdict(0, 0, 4), StageVerdict::kCandidate);   // 1/2 = (1/4) · 2
  EXPECT_EQ(loose.verdict(0, 0, 6), StageVerdict::kImbalanced);  // 3/4 > (1/4) · 2
  StagePruner exact = pruner({1, 1, 1, 1}, 8, 0.0);
  EXPECT_EQ(exact.verdict(0, 0, 2), StageVerdict::kCandidate);
  EXPECT_EQ(exact.verdict(0, 0, 1), StageVerdict::kImbalanced);
  EXPECT_EQ(exact.verdict(0, 3, 8), StageVerdict::kCandidate);   // always: 1 vs 1
  EXPECT_DOUBLE_EQ(exact.flop_share(1, 2), 0.5);
  // A graph without FLOPs: every stage counts as the whole (share 1).
  StagePruner none = pruner({0, 0}, 2, 0.0);
  EXPECT_DOUBLE_EQ(none.flop_share(0, 0), 1.0);
}

TEST(StagePruningTest, BadOptions) {
  auto message = [](std::vector<double> flops, int64_t devices, double tol,
                    std::optional<int64_t> stages) {
    auto p = StagePruner::create(std::move(flops), devices, tol, stages);
    EXPECT_FALSE(p.ok());
    return p.status().message();
  };
  EXPECT_EQ(message({1}, 1, -1, {}),
            "imbalance_tolerance must be >= 0 (+inf disables the rule), got -1");
  EXPECT_EQ(message({1}, 0, 1, {}), "num_devices must be >= 1, got 0");
  EXPECT_EQ(message({}, 1, 1, {}), "stage pruning needs at least one layer");
  EXPECT_EQ(message({1, NAN}, 1, 1, {}), "layer 1 has FLOPs nan; expected a finite value >= 0");
  EXPECT_EQ(message({1}, 1, 1, 0), "max_num_stages must be >= 1, got 0");
}

TEST(StagePruningTest, IdleAxes) {
  const std::vector<int64_t> gpt = {8, 64, 128, 1024, 8192, 32768, 51200};
  EXPECT_FALSE(has_idle_axis({8, 8}, gpt));
  EXPECT_FALSE(has_idle_axis({40, 1}, gpt));  // 40 divides the vocabulary 51200
  EXPECT_TRUE(has_idle_axis({24, 1}, gpt));   // 3 divides nothing
  EXPECT_TRUE(has_idle_axis({6, 4}, gpt));
  EXPECT_TRUE(has_idle_axis({2, 3}, gpt));
  EXPECT_FALSE(has_idle_axis({1, 1}, {}));

  ir::GraphBuilder b("g");
  ir::ValueRef x = b.input("x", {{6, 10}, ir::DType::kFloat32});
  ir::ValueRef w = b.parameter("w", {{1, 10}, ir::DType::kFloat32});
  b.output(b.linear(x, w));
  EXPECT_EQ(tensor_dim_sizes(b.build().value()), (std::vector<int64_t>{6, 10}));
}

}  // namespace
}  // namespace alpa::inter_op
