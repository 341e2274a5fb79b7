// Tests the schedule builders: golden text written by hand from the
// textbook schedules, deadlock freedom over a grid of sizes, the simulated
// bubble against theory, activation memory, and argument errors.
#include "plan/schedule_builders.h"

#include <gtest/gtest.h>

namespace alpa::plan {
namespace {

std::string text_of(core::StatusOr<Schedule> s) {
  EXPECT_TRUE(s.ok()) << s.status().to_string();
  return s.ok() ? s->to_string() : "";
}

// GPipe: all forwards, then all backwards in ascending micro-batch order.
TEST(ScheduleBuildersTest, GoldenGPipe) {
  EXPECT_EQ(text_of(gpipe(2, 4)),
            "rank 0: F0 SEND_F0 F1 SEND_F1 F2 SEND_F2 F3 SEND_F3 RECV_B0 B0 RECV_B1 B1 RECV_B2 B2 RECV_B3 B3\n"
            "rank 1: RECV_F0 F0 RECV_F1 F1 RECV_F2 F2 RECV_F3 F3 B0 SEND_B0 B1 SEND_B1 B2 SEND_B2 B3 SEND_B3\n");
  const std::string middle =
      "RECV_F0 F0 SEND_F0 RECV_F1 F1 SEND_F1 RECV_F2 F2 SEND_F2 RECV_F3 F3 SEND_F3 "
      "RECV_B0 B0 SEND_B0 RECV_B1 B1 SEND_B1 RECV_B2 B2 SEND_B2 RECV_B3 B3 SEND_B3\n";
  EXPECT_EQ(text_of(gpipe(4, 4)),
            "rank 0: F0 SEND_F0 F1 SEND_F1 F2 SEND_F2 F3 SEND_F3 RECV_B0 B0 RECV_B1 B1 RECV_B2 B2 RECV_B3 B3\n"
            "rank 1: " + middle + "rank 2: " + middle +
            "rank 3: RECV_F0 F0 RECV_F1 F1 RECV_F2 F2 RECV_F3 F3 B0 SEND_B0 B1 SEND_B1 B2 SEND_B2 B3 SEND_B3\n");
  EXPECT_EQ(text_of(gpipe(1, 2)), "rank 0: F0 F1 B0 B1\n");
}

// 1F1B: rank r warms up with S−r−1 forwards, alternates, cools down.
TEST(ScheduleBuildersTest, Golden1F1B) {
  EXPECT_EQ(text_of(one_f_one_b(2, 4)),
            "rank 0: F0 SEND_F0 F1 SEND_F1 RECV_B0 B0 F2 SEND_F2 RECV_B1 B1 F3 SEND_F3 RECV_B2 B2 RECV_B3 B3\n"
            "rank 1: RECV_F0 F0 B0 SEND_B0 RECV_F1 F1 B1 SEND_B1 RECV_F2 F2 B2 SEND_B2 RECV_F3 F3 B3 SEND_B3\n");
  EXPECT_EQ(text_of(one_f_one_b(4, 4)),
            // warm-up F0 F1 F2; F3 B0; cool-down B1 B2 B3
            "rank 0: F0 SEND_F0 F1 SEND_F1 F2 SEND_F2 F3 SEND_F3 RECV_B0 B0 RECV_B1 B1 RECV_B2 B2 RECV_B3 B3\n"
            // warm-up F0 F1; F2 B0 F3 B1; cool-down B2 B3
            "rank 1: RECV_F0 F0 SEND_F0 RECV_F1 F1 SEND_F1 RECV_F2 F2 SEND_F2 RECV_B0 B0 SEND_B0 "
            "RECV_F3 F3 SEND_F3 RECV_B1 B1 SEND_B1 RECV_B2 B2 SEND_B2 RECV_B3 B3 SEND_B3\n"
            // warm-up F0; F1 B0 F2 B1 F3 B2; cool-down B3
            "rank 2: RECV_F0 F0 SEND_F0 RECV_F1 F1 SEND_F1 RECV_B0 B0 SEND_B0 RECV_F2 F2 SEND_F2 "
            "RECV_B1 B1 SEND_B1 RECV_F3 F3 SEND_F3 RECV_B2 B2 SEND_B2 RECV_B3 B3 SEND_B3\n"
            // no warm-up: F0 B0 F1 B1 F2 B2 F3 B3
            "rank 3: RECV_F0 F0 B0 SEND_B0 RECV_F1 F1 B1 SEND_B1 RECV_F2 F2 B2 SEND_B2 RECV_F3 F3 B3 SEND_B3\n");
}

// Megatron interleaved, P = 2, V = 2, B = 4. Rank 0 hosts stages 0 and 2,
// rank 1 stages 1 and 3. Forward k visits (chunk, mb) = (0,0) (0,1) (1,0)
// (1,1) (0,2) (0,3) (1,2) (1,3); backward k visits chunks last-first:
// (1,0) (1,1) (0,0) (0,1) (1,2) (1,3) (0,2) (0,3). Warm-up: rank 0
// (2−0−1)·2 + (2−1)·2 = 4 forwards, rank 1 0·2 + 2 = 2.
TEST(ScheduleBuildersTest, GoldenInterleaved) {
  EXPECT_EQ(text_of(interleaved_one_f_one_b(2, 2, 4)),
            // 0F0 0F1 2F0 2F1 | 0F2 2B0 0F3 2B1 2F2 0B0 2F3 0B1 | 2B2 2B3 0B2 0B3
            "rank 0: 0F0 0SEND_F0 0F1 0SEND_F1 2RECV_F0 2F0 2SEND_F0 2RECV_F1 2F1 2SEND_F1 "
            "0F2 0SEND_F2 2RECV_B0 2B0 2SEND_B0 0F3 0SEND_F3 2RECV_B1 2B1 2SEND_B1 "
            "2RECV_F2 2F2 2SEND_F2 0RECV_B0 0B0 2RECV_F3 2F3 2SEND_F3 0RECV_B1 0B1 "
            "2RECV_B2 2B2 2SEND_B2 2RECV_B3 2B3 2SEND_B3 0RECV_B2 0B2 0RECV_B3 0B3\n"
            // 1F0 1F1 | 3F0 3B0 3F1 3B1 1F2 1B0 1F3 1B1 3F2 3B2 3F3 3B3 | 1B2 1B3
            "rank 1: 1RECV_F0 1F0 1SEND_F0 1RECV_F1 1F1 1SEND_F1 3RECV_F0 3F0 3B0 3SEND_B0 "
            "3RECV_F1 3F1 3B1 3SEND_B1 1RECV_F2 1F2 1SEND_F2 1RECV_B0 1B0 1SEND_B0 "
            "1RECV_F3 1F3 1SEND_F3 1RECV_B1 1B1 1SEND_B1 3RECV_F2 3F2 3B2 3SEND_B2 "
            "3RECV_F3 3F3 3B3 3SEND_B3 1RECV_B2 1B2 1SEND_B2 1RECV_B3 1B3 1SEND_B3\n");
  // B = P: every forward first (Megatron's special case).
  EXPECT_EQ(text_of(interleaved_one_f_one_b(2, 2, 2)),
            "rank 0: 0F0 0SEND_F0 0F1 0SEND_F1 2RECV_F0 2F0 2SEND_F0 2RECV_F1 2F1 2SEND_F1 "
            "2RECV_B0 2B0 2SEND_B0 2RECV_B1 2B1 2SEND_B1 0RECV_B0 0B0 0RECV_B1 0B1\n"
            "rank 1: 1RECV_F0 1F0 1SEND_F0 1RECV_F1 1F1 1SEND_F1 3RECV_F0 3F0 3RECV_F1 3F1 "
            "3B0 3SEND_B0 3B1 3SEND_B1 1RECV_B0 1B0 1SEND_B0 1RECV_B1 1B1 1SEND_B1\n");
}

TEST(ScheduleBuildersTest, TextRoundTrips) {
  for (const auto& s : {gpipe(3, 5), one_f_one_b(4, 6), interleaved_one_f_one_b(3, 2, 6)}) {
    ASSERT_TRUE(s.ok());
    auto parsed = Schedule::from_text(s->to_string());
    ASSERT_TRUE(parsed.ok()) << parsed.status().to_string();
    EXPECT_EQ(*parsed, *s);
    EXPECT_EQ(parsed->to_string(), s->to_string());
  }
}

// The theoretical GPipe bubble (S−1)/(B+S−1) holds for GPipe and 1F1B at
// F:B cost 1:1 and 1:2; interleaving divides the bubble time by V:
// (P−1)/(V·B+P−1).
TEST(ScheduleBuildersTest, AllBuiltSchedulesAreValidAndMatchTheBubbleTheory) {
  for (SimulationOptions costs : {SimulationOptions{1, 1}, SimulationOptions{1, 2}}) {
    for (int64_t s = 1; s <= 5; ++s) {
      for (int64_t b = 1; b <= 8; ++b) {
        double theory = static_cast<double>(s - 1) / static_cast<double>(b + s - 1);
        for (auto schedule : {gpipe(s, b), one_f_one_b(s, b)}) {
          ASSERT_TRUE(schedule.ok());
          auto r = simulate_schedule(*schedule, costs);
          ASSERT_TRUE(r.ok()) << r.status().to_string();
          EXPECT_NEAR(r->bubble_fraction, theory, 1e-12) << "S=" << s << " B=" << b;
          EXPECT_DOUBLE_EQ(r->makespan, static_cast<double>(b + s - 1) * (costs.forward_cost + costs.backward_cost));
        }
        for (int64_t v = 1; v <= 3; ++v) {
          if (b % s != 0 || (s == 1 && v > 1)) continue;
          auto schedule = interleaved_one_f_one_b(s, v, b);
          ASSERT_TRUE(schedule.ok()) << schedule.status().to_string();
          auto r = simulate_schedule(*schedule, costs);
          ASSERT_TRUE(r.ok()) << "P=" << s << " V=" << v << " B=" << b << "\n" << r.status().to_string();
          EXPECT_NEAR(r->bubble_fraction, static_cast<double>(s - 1) / static_cast<double>(v * b + s - 1), 1e-12)
              << "P=" << s << " V=" << v << " B=" << b;
        }
      }
    }
  }
}

TEST(ScheduleBuildersTest, ActivationsInFlight) {
  for (int64_t s = 1; s <= 5; ++s) {
    for (int64_t b = 1; b <= 8; ++b) {
      auto gp = simulate_schedule(*gpipe(s, b));
      auto ofob = simulate_schedule(*one_f_one_b(s, b));
      for (int64_t r = 0; r < s; ++r) {
        EXPECT_EQ(gp->ranks[static_cast<size_t>(r)].max_in_flight, b);
        EXPECT_EQ(ofob->ranks[static_cast<size_t>(r)].max_in_flight, std::min(s - r, b));
      }
    }
  }
}

TEST(ScheduleBuildersTest, BuildScheduleByName) {
  EXPECT_EQ(text_of(build_schedule("1f1b", 2, 4)), text_of(one_f_one_b(2, 4)));
  EXPECT_EQ(text_of(build_schedule("gpipe", 3, 2)), text_of(gpipe(3, 2)));
  EXPECT_EQ(text_of(build_schedule("interleaved_1f1b", 2, 4, 2)), text_of(interleaved_one_f_one_b(2, 2, 4)));
}

TEST(ScheduleBuildersTest, Errors) {
  EXPECT_EQ(interleaved_one_f_one_b(4, 2, 6).status().message(),
            "interleaved 1F1B runs micro-batches in groups of one per rank, so the number of micro-batches must be "
            "a multiple of the number of ranks (4), got 6");
  EXPECT_EQ(interleaved_one_f_one_b(1, 2, 4).status().message(),
            "interleaving 2 virtual stages needs at least 2 ranks, got 1");
  EXPECT_EQ(interleaved_one_f_one_b(2, 0, 4).status().message(), "num_virtual must be at least 1, got 0");
  EXPECT_EQ(gpipe(0, 4).status().message(), "a pipeline needs at least 1 stage, got 0");
  EXPECT_EQ(one_f_one_b(2, 0).status().message(), "a pipeline needs at least 1 micro-batch, got 0");
  EXPECT_EQ(build_schedule("zero_bubble", 2, 4).status().message(),
            "unknown schedule 'zero_bubble', expected 'gpipe', '1f1b' or 'interleaved_1f1b'");
  EXPECT_EQ(build_schedule("gpipe", 2, 4, 2).status().message(),
            "'gpipe' has one stage per rank (num_virtual = 1), got num_virtual = 2; use 'interleaved_1f1b'");
  EXPECT_EQ(gpipe(0, 4).status().code(), core::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace alpa::plan
