// Tests the stage profiler's memory bounds (Alpa §5.2): microbatches in
// flight under 1F1B and GPipe, with activations kept and with the stage's
// forward recomputed (remat), as arithmetic on bytes.
#include "inter_op/stage_profiler.h"

#include <limits>

#include <gtest/gtest.h>

namespace alpa::inter_op {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

TEST(StageProfilerTest, KeptActivationsBoundTheMicrobatchesInFlight) {
  // 10 bytes of parameters, 20 of activations per microbatch, budget 75:
  // (75 - 10) / 20 = 3 microbatches in flight, so 1F1B allows 2 successors.
  EXPECT_EQ(max_successors(10, 10 + 20, 75, 8, "1f1b"), 2);
  EXPECT_EQ(max_successors(10, 10 + 20, 75, 3, "1f1b"), kUnboundedSuccessors);  // all B fit
  EXPECT_EQ(max_successors(10, 10 + 20, 75, 8, "gpipe"), kNeverFits);  // GPipe keeps all 8
  EXPECT_EQ(max_successors(10, 10 + 20, 29, 8, "1f1b"), kNeverFits);  // not even one
  EXPECT_EQ(max_successors(10, 10 + 20, kInf, 8, "1f1b"), kUnboundedSuccessors);
}

TEST(StageProfilerTest, RematKeepsOnlyTheStageInputsPerMicrobatch) {
  // The same stage recomputing: one microbatch holds its 20 bytes while it
  // is recomputed, every other in flight only its 2 bytes of inputs:
  // 10 + 20 + 2 (f - 1) <= 75 gives f = 23 in flight, 22 successors.
  EXPECT_EQ(max_successors_remat(10, 10 + 20, 2, 75, 64, "1f1b"), 22);
  EXPECT_EQ(max_successors_remat(10, 10 + 20, 2, 75, 23, "1f1b"), kUnboundedSuccessors);
  EXPECT_EQ(max_successors_remat(10, 10 + 20, 2, 75, 23, "gpipe"), kUnboundedSuccessors);
  EXPECT_EQ(max_successors_remat(10, 10 + 20, 2, 75, 24, "gpipe"), kNeverFits);
  EXPECT_EQ(max_successors_remat(10, 10 + 20, 2, 29, 8, "1f1b"), kNeverFits);
  // Inputs never count for more than the activations they are part of.
  EXPECT_EQ(max_successors_remat(10, 10 + 20, 50, 75, 8, "1f1b"),
            max_successors(10, 10 + 20, 75, 8, "1f1b"));
  EXPECT_EQ(max_successors_remat(10, 10 + 20, 0, 75, 8, "1f1b"), kUnboundedSuccessors);
}

TEST(StageProfilerTest, RematNamesRoundTrip) {
  for (Remat r : {Remat::kNone, Remat::kAuto, Remat::kAll}) {
    auto parsed = parse_remat(remat_name(r));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, r);
  }
  EXPECT_EQ(parse_remat("some").status().message(),
            "unknown remat 'some'; use 'auto' (the planner picks per stage), 'none' or 'all'");
}

}  // namespace
}  // namespace alpa::inter_op
