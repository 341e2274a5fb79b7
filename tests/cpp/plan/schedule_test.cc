// Tests pipeline schedules: the action and schedule text forms, every
// static rule of check_schedule by its message, the deadlock grid, exact
// simulated timings, and a brute-force cross-check of deadlock detection and
// makespan against a longest-path computation on random schedules.
#include "plan/schedule.h"

#include <algorithm>
#include <functional>
#include <map>
#include <random>

#include <gtest/gtest.h>

namespace alpa::plan {
namespace {

Schedule parse_ok(const std::string& text) {
  auto s = Schedule::from_text(text);
  EXPECT_TRUE(s.ok()) << s.status().to_string();
  return s.ok() ? *s : Schedule{};
}

std::string check_message(const std::string& text) {
  core::Status status = check_schedule(parse_ok(text));
  EXPECT_FALSE(status.ok()) << text;
  EXPECT_EQ(status.code(), core::StatusCode::kInvalidArgument);
  return status.message();
}

std::string parse_message(const std::string& text) {
  auto s = Schedule::from_text(text);
  EXPECT_FALSE(s.ok()) << text;
  if (s.ok()) return "";
  EXPECT_EQ(s.status().code(), core::StatusCode::kParseError);
  return s.status().message();
}

// 1F1B with S = 2, B = 2: the smallest schedule with a steady phase.
constexpr const char* k1F1BS2B2 =
    "rank 0: F0 SEND_F0 F1 SEND_F1 RECV_B0 B0 RECV_B1 B1\n"
    "rank 1: RECV_F0 F0 B0 SEND_B0 RECV_F1 F1 B1 SEND_B1\n";

TEST(ScheduleTextTest, ActionRoundTrip) {
  Action a{ActionKind::kRecvB, 2, 13};
  EXPECT_EQ(a.to_string(), "2RECV_B13");
  EXPECT_EQ(a.to_short_string(), "RECV_B13");
  EXPECT_EQ(*Action::parse("2RECV_B13"), a);
  EXPECT_EQ(*Action::parse("RECV_B13", 2), a);
  EXPECT_EQ(*Action::parse("F0", 0), (Action{ActionKind::kForward, 0, 0}));
  for (ActionKind k : {ActionKind::kForward, ActionKind::kBackward, ActionKind::kSendF, ActionKind::kRecvF,
                       ActionKind::kSendB, ActionKind::kRecvB}) {
    Action b{k, 7, 3};
    EXPECT_EQ(*Action::parse(b.to_string()), b);
    EXPECT_EQ(*Action::parse(b.to_short_string(), 7), b);
  }
}

TEST(ScheduleTextTest, ActionParseErrors) {
  EXPECT_EQ(Action::parse("F3").status().message(), "'F3' needs a stage prefix, e.g. '0F3'");
  EXPECT_EQ(Action::parse("XF3", 0).status().message(),
            "'XF3': unknown action kind 'XF' (expected F, B, SEND_F, RECV_F, SEND_B or RECV_B)");
  EXPECT_EQ(Action::parse("SEND_F", 0).status().message(), "'SEND_F': missing the micro-batch index after 'SEND_F'");
  EXPECT_EQ(Action::parse("1B2x").status().message(), "'1B2x': unexpected 'x' after the micro-batch index");
  EXPECT_EQ(Action::parse("B1234567890", 0).status().message(), "'B1234567890': micro-batch index too large");
  EXPECT_EQ(Action::parse("F3", 0).status().code(), core::StatusCode::kOk);
}

TEST(ScheduleTextTest, ScheduleRoundTripShortForm) {
  Schedule s = parse_ok(k1F1BS2B2);
  EXPECT_EQ(s.num_ranks, 2);
  EXPECT_EQ(s.num_stages, 2);
  EXPECT_EQ(s.num_micro_batches, 2);
  EXPECT_TRUE(s.stages_implied());
  EXPECT_EQ(s.ranks[1][0], (Action{ActionKind::kRecvF, 1, 0}));
  EXPECT_EQ(s.to_string(), k1F1BS2B2);
  EXPECT_EQ(parse_ok(s.to_string()), s);
}

TEST(ScheduleTextTest, StagePrefixesInferVirtualStages) {
  // P = 2, stages 0..3: the largest stage (3) fixes S = 4, so V = 2.
  Schedule s = parse_ok("rank 0: 0F0 2F0\n\n  rank 1 :1F0   3F0\n");
  EXPECT_EQ(s.num_ranks, 2);
  EXPECT_EQ(s.num_stages, 4);
  EXPECT_EQ(s.num_virtual(), 2);
  EXPECT_EQ(s.num_micro_batches, 1);
  EXPECT_EQ(s.rank_of_stage(3), 1);
  EXPECT_FALSE(s.stages_implied());
  EXPECT_EQ(s.to_string(), "rank 0: 0F0 2F0\nrank 1: 1F0 3F0\n");
  // Stage 4 over 2 ranks rounds up to S = 6.
  EXPECT_EQ(parse_ok("rank 0: 4F0\nrank 1:\n").num_stages, 6);
  // Prefixes that agree with the rank are accepted and dropped on output.
  EXPECT_EQ(parse_ok("rank 0: 0F0\nrank 1: 1F0\n").to_string(), "rank 0: F0\nrank 1: F0\n");
  // A prefix naming another rank's stage is kept, so the text round-trips.
  Schedule odd = parse_ok("rank 0: 1F0\nrank 1: F0\n");
  EXPECT_EQ(odd.to_string(), "rank 0: 1F0\nrank 1: 1F0\n");
}

TEST(ScheduleTextTest, ParseErrorsNameLineRankStepAndToken) {
  EXPECT_EQ(parse_message("rank 0: F0 SEND_F0\nrank 1: RECV_F0 F0 XF0\n"),
            "line 2, rank 1, step 2: 'XF0': unknown action kind 'XF' (expected F, B, SEND_F, RECV_F, SEND_B or "
            "RECV_B)");
  EXPECT_EQ(parse_message("rank 0: 0F0 2F0\nrank 1: 1F0 F0\n"),
            "line 2, rank 1, step 1: 'F0' needs a stage prefix (e.g. '1F0') because rank 1 hosts stages 1, 3");
  EXPECT_EQ(parse_message("rank 0: F0\nrank 2: F0\n"),
            "line 2: expected 'rank 1:' (ranks are listed in order 0, 1, ...), got 'rank 2:'");
  EXPECT_EQ(parse_message("F0 B0\n"), "line 1: expected 'rank 0:' at the start, got 'F0 B0'");
  EXPECT_EQ(parse_message("rank 0 F0\n"),
            "line 1: expected 'rank 0:' (ranks are listed in order 0, 1, ...), got 'rank 0 F0'");
  EXPECT_EQ(parse_message("\n \n"), "schedule text has no 'rank <r>:' lines");
}

TEST(ScheduleCheckTest, AcceptsHandWrittenSchedules) {
  EXPECT_TRUE(check_schedule(parse_ok(k1F1BS2B2)).ok());
  EXPECT_TRUE(check_schedule(parse_ok("rank 0: F0 F1 B1 B0\n")).ok());
  // Interleaved, P = 2, V = 2, B = 1.
  EXPECT_TRUE(check_schedule(parse_ok("rank 0: 0F0 0SEND_F0 2RECV_F0 2F0 2SEND_F0 2RECV_B0 2B0 2SEND_B0 0RECV_B0 0B0\n"
                                      "rank 1: 1RECV_F0 1F0 1SEND_F0 3RECV_F0 3F0 3B0 3SEND_B0 1RECV_B0 1B0 1SEND_B0\n"))
                  .ok());
}

TEST(ScheduleCheckTest, DeadlockPrintsRankByStepGrid) {
  // Rank 0 waits for gradients before it has sent the activations.
  EXPECT_EQ(check_message("rank 0: F0 RECV_B0 SEND_F0 B0\nrank 1: RECV_F0 F0 B0 SEND_B0\n"),
            "deadlock: ranks 0, 1 wait forever\n"
            "  rank 0 is stuck at step 1 on RECV_B0: its SEND_B0 is rank 1 step 3, which never runs (rank 1 is "
            "stuck at step 0)\n"
            "  rank 1 is stuck at step 0 on RECV_F0: its SEND_F0 is rank 0 step 2, which never runs (rank 0 is "
            "stuck at step 1)\n"
            "step  rank 0     rank 1\n"
            "0     F0         [RECV_F0]\n"
            "1     [RECV_B0]  F0\n"
            "2     SEND_F0    B0\n"
            "3     B0         SEND_B0\n"
            "[X] = the receive a rank is stuck on; the steps above it ran, the ones below did not");
}

TEST(ScheduleCheckTest, DeadlockAcrossThreeRanksTruncatesTheGrid) {
  // Rank 1 waits for gradients before forwarding: ranks 1 and 2 wait on
  // each other, rank 0 waits on rank 1.
  std::string message = check_message(
      "rank 0: F0 SEND_F0 F1 SEND_F1 RECV_B0 B0 RECV_B1 B1\n"
      "rank 1: RECV_F0 F0 RECV_B0 SEND_F0 B0 SEND_B0 RECV_F1 F1 SEND_F1 RECV_B1 B1 SEND_B1\n"
      "rank 2: RECV_F0 F0 B0 SEND_B0 RECV_F1 F1 B1 SEND_B1\n");
  EXPECT_NE(message.find("deadlock: ranks 0, 1, 2 wait forever\n"), std::string::npos) << message;
  EXPECT_NE(message.find("rank 2 is stuck at step 0 on RECV_F0: its SEND_F0 is rank 1 step 3"), std::string::npos)
      << message;
  // Rows run to two past the deepest stuck step (4); the rest is elided.
  EXPECT_NE(message.find("step  rank 0     rank 1     rank 2\n"
                         "0     F0         RECV_F0    [RECV_F0]\n"
                         "1     SEND_F0    F0         F0\n"
                         "2     F1         [RECV_B0]  B0\n"
                         "3     SEND_F1    SEND_F0    SEND_B0\n"
                         "4     [RECV_B0]  B0         RECV_F1\n"
                         "5     B0         SEND_B0    F1\n"
                         "6     RECV_B1    RECV_F1    B1\n"
                         "... (5 more steps)\n"),
            std::string::npos)
      << message;
}

TEST(ScheduleCheckTest, MissingDuplicateAndMisplacedActions) {
  EXPECT_EQ(check_message("rank 0: F0 SEND_F0 RECV_B0 B0\nrank 1: RECV_F0 F0 B0\n"),
            "missing 1 action: SEND_B0 (stage 1, micro-batch 0) on rank 1");
  EXPECT_EQ(check_message("rank 0: F0 F1 B0\n"), "missing 1 action: B1 (stage 0, micro-batch 1) on rank 0");
  EXPECT_EQ(check_message("rank 0: F0 SEND_F0 RECV_B0 B0 F0\nrank 1: RECV_F0 F0 B0 SEND_B0\n"),
            "duplicate action F0 (stage 0, micro-batch 0) on rank 0: at steps 0 and 4");
  EXPECT_EQ(check_message("rank 0: 1F0 SEND_F0 RECV_B0 B0\nrank 1: RECV_F0 F0 B0 SEND_B0\n"),
            "rank 0 step 0: 1F0 is on the wrong rank: stage 1 lives on rank 1");
  EXPECT_EQ(check_message("rank 0: F0 SEND_F0 RECV_B0 B0\nrank 1: RECV_F0 F0 SEND_F0 B0 SEND_B0\n"),
            "rank 1 step 2: 1SEND_F0: stage 1 is the last stage, there is no next stage to send activations to");
  EXPECT_EQ(check_message("rank 0: RECV_F0 F0 B0\n"),
            "rank 0 step 0: 0RECV_F0: stage 0 is the first stage, there is no previous stage to receive "
            "activations from");
  // S = 2, B = 4: 32 actions expected, 2 present; the first 5 are named.
  std::string many = check_message("rank 0: F0\nrank 1: F3\n");
  EXPECT_EQ(many.substr(0, 24), "missing 30 actions: B0 (") << many;
  EXPECT_EQ(many.substr(many.size() - 5), "; ...");
}

TEST(ScheduleCheckTest, LocalOrderRules) {
  EXPECT_EQ(check_message("rank 0: F0 SEND_F0 RECV_B0 B0\nrank 1: F0 RECV_F0 B0 SEND_B0\n"),
            "rank 1: F0 (stage 1, micro-batch 0) at step 0 comes before RECV_F0 at step 1, but a forward needs "
            "its input activations received first");
  EXPECT_EQ(check_message("rank 0: SEND_F0 F0 RECV_B0 B0\nrank 1: RECV_F0 F0 B0 SEND_B0\n"),
            "rank 0: SEND_F0 (stage 0, micro-batch 0) at step 0 comes before F0 at step 1, but activations are "
            "sent after the forward computes them");
  EXPECT_EQ(check_message("rank 0: B0 F0\n"),
            "rank 0: B0 (stage 0, micro-batch 0) at step 0 comes before F0 at step 1, but a backward needs its "
            "forward");
  EXPECT_EQ(check_message("rank 0: F0 SEND_F0 B0 RECV_B0\nrank 1: RECV_F0 F0 B0 SEND_B0\n"),
            "rank 0: B0 (stage 0, micro-batch 0) at step 2 comes before RECV_B0 at step 3, but a backward needs "
            "its output gradients received first");
  EXPECT_EQ(check_message("rank 0: F0 SEND_F0 RECV_B0 B0\nrank 1: RECV_F0 F0 SEND_B0 B0\n"),
            "rank 1: SEND_B0 (stage 1, micro-batch 0) at step 2 comes before B0 at step 3, but input gradients "
            "are sent after the backward computes them");
}

TEST(ScheduleCheckTest, MessagesMustBeReceivedInSendOrder) {
  EXPECT_EQ(check_message("rank 0: F0 SEND_F0 F1 SEND_F1 RECV_B0 B0 RECV_B1 B1\n"
                          "rank 1: RECV_F1 F1 RECV_F0 F0 B0 SEND_B0 B1 SEND_B1\n"),
            "activations from rank 0 to rank 1 are received in the order they are sent, so send #1, SEND_F0 "
            "(stage 0, micro-batch 0) at rank 0 step 1, would arrive at receive #1, RECV_F1 (stage 1, micro-batch "
            "1) at rank 1 step 0");
  EXPECT_EQ(check_message("rank 0: F0 SEND_F0 F1 SEND_F1 RECV_B1 B1 RECV_B0 B0\n"
                          "rank 1: RECV_F0 F0 RECV_F1 F1 B0 SEND_B0 B1 SEND_B1\n"),
            "gradients from rank 1 to rank 0 are received in the order they are sent, so send #1, SEND_B0 (stage "
            "1, micro-batch 0) at rank 1 step 5, would arrive at receive #1, RECV_B1 (stage 0, micro-batch 1) at "
            "rank 0 step 4");
}

TEST(ScheduleCheckTest, ShapeErrors) {
  Schedule s = parse_ok("rank 0:\n");
  EXPECT_EQ(check_schedule(s).message(), "a schedule needs at least 1 micro-batch, got 0");
  s = parse_ok(k1F1BS2B2);
  s.num_stages = 3;
  EXPECT_EQ(check_schedule(s).message(),
            "the number of stages must be a positive multiple of the number of ranks (2), got 3");
  s.num_stages = 2;
  s.num_ranks = 3;
  EXPECT_EQ(check_schedule(s).message(), "num_ranks is 3 but the schedule has action lists for 2 ranks");
  EXPECT_EQ(check_schedule(parse_ok("rank 0: 0F0 1F0 1B0 0B0\n")).message(),
            "virtual stages need at least 2 ranks (so that neighbouring stages live on different ranks), got 2 "
            "stages on 1 rank");
  EXPECT_EQ(check_schedule(parse_ok("rank 0: F0 B0 F2 B2\n")).message(),
            "missing 2 actions: F1 (stage 0, micro-batch 1) on rank 0; B1 (stage 0, micro-batch 1) on rank 0");
  EXPECT_EQ(check_schedule(parse_ok("rank 0: F999999999\n")).message(),
            "schedule too large: 1 stages × 1000000000 micro-batches exceeds 1048576 pairs");
  SimulationOptions bad;
  bad.backward_cost = -1;
  EXPECT_EQ(simulate_schedule(parse_ok(k1F1BS2B2), bad).status().message(),
            "forward and backward costs must be finite and >= 0, got 1 and -1");
}

TEST(ScheduleSimulationTest, ExactTimesOf1F1B) {
  SimulationResult r = *simulate_schedule(parse_ok(k1F1BS2B2));
  // Rank 1 gets F0 at 1, runs F0 [1,2] B0 [2,4]; rank 0 gets it back at 4.
  EXPECT_EQ(r.ranks[0].start, (std::vector<double>{0, 1, 1, 2, 4, 4, 7, 7}));
  EXPECT_EQ(r.ranks[1].start, (std::vector<double>{1, 1, 2, 4, 4, 4, 5, 7}));
  EXPECT_DOUBLE_EQ(r.makespan, 9);  // (B+S−1)·(f+b) = 3·3
  EXPECT_DOUBLE_EQ(r.ranks[0].busy, 6);
  EXPECT_DOUBLE_EQ(r.ranks[0].idle, 3);
  EXPECT_DOUBLE_EQ(r.ranks[1].finish, 7);
  EXPECT_DOUBLE_EQ(r.ranks[1].idle, 3);  // 1 before F0, 1 before F1, 1 after B1
  EXPECT_DOUBLE_EQ(r.bubble_fraction, 1.0 / 3);  // (S−1)/(B+S−1)
  EXPECT_EQ(r.ranks[0].max_in_flight, 2);
  EXPECT_EQ(r.ranks[1].max_in_flight, 1);
  SimulationOptions even{1, 1};
  EXPECT_DOUBLE_EQ(simulate_schedule(parse_ok(k1F1BS2B2), even)->makespan, 6);
}

// ---- brute-force cross-check ---------------------------------------------------

/// A random per-rank order of the actions of stage r (V = 1) that obeys the
/// local rules and sends/receives each kind in micro-batch order (so FIFO
/// holds); it may still deadlock.
Schedule random_schedule(std::mt19937& rng, int64_t stages, int64_t micro_batches) {
  Schedule s{stages, stages, micro_batches, std::vector<std::vector<Action>>(static_cast<size_t>(stages))};
  const std::vector<ActionKind> kinds = {ActionKind::kRecvF, ActionKind::kForward, ActionKind::kSendF,
                                         ActionKind::kRecvB, ActionKind::kBackward, ActionKind::kSendB};
  for (int64_t r = 0; r < stages; ++r) {
    std::map<ActionKind, int64_t> next;  // next micro-batch of each kind
    auto present = [&](ActionKind k) {
      if (k == ActionKind::kRecvF || k == ActionKind::kSendB) return r > 0;
      if (k == ActionKind::kSendF || k == ActionKind::kRecvB) return r < stages - 1;
      return true;
    };
    auto done = [&](ActionKind k, int64_t mb) { return !present(k) || next[k] > mb; };
    auto ready = [&](ActionKind k) {
      int64_t mb = next[k];
      if (!present(k) || mb >= micro_batches) return false;
      switch (k) {
        case ActionKind::kForward: return done(ActionKind::kRecvF, mb);
        case ActionKind::kSendF: return done(ActionKind::kForward, mb);
        case ActionKind::kBackward: return done(ActionKind::kForward, mb) && done(ActionKind::kRecvB, mb);
        case ActionKind::kSendB: return done(ActionKind::kBackward, mb);
        default: return true;
      }
    };
    for (;;) {
      std::vector<ActionKind> candidates;
      for (ActionKind k : kinds) {
        if (ready(k)) candidates.push_back(k);
      }
      if (candidates.empty()) break;
      ActionKind k = candidates[std::uniform_int_distribution<size_t>(0, candidates.size() - 1)(rng)];
      s.ranks[static_cast<size_t>(r)].push_back({k, r, next[k]++});
    }
  }
  return s;
}

/// Independent oracle: the happens-before graph (program order plus
/// send -> receive) must be acyclic; start times are longest paths.
struct Oracle {
  const Schedule& s;
  SimulationOptions costs;
  std::map<std::pair<int64_t, int64_t>, int> state;  // 1 visiting, 2 done
  std::map<std::pair<int64_t, int64_t>, double> start;
  bool cycle = false;

  double cost(const Action& a) const {
    return a.kind == ActionKind::kForward ? costs.forward_cost
           : a.kind == ActionKind::kBackward ? costs.backward_cost : 0;
  }
  std::pair<int64_t, int64_t> where(const Action& a) const {
    for (size_t r = 0; r < s.ranks.size(); ++r) {
      for (size_t i = 0; i < s.ranks[r].size(); ++i) {
        if (s.ranks[r][i] == a) return {static_cast<int64_t>(r), static_cast<int64_t>(i)};
      }
    }
    ADD_FAILURE() << "no " << a.to_string();
    return {0, 0};
  }
  double visit(int64_t r, int64_t i) {
    auto key = std::make_pair(r, i);
    if (state[key] == 2) return start[key];
    if (state[key] == 1) {
      cycle = true;
      return 0;
    }
    state[key] = 1;
    const Action& a = s.ranks[static_cast<size_t>(r)][static_cast<size_t>(i)];
    double t = 0;
    if (i > 0) t = visit(r, i - 1) + cost(s.ranks[static_cast<size_t>(r)][static_cast<size_t>(i - 1)]);
    if (a.kind == ActionKind::kRecvF) t = std::max(t, visit_action({ActionKind::kSendF, a.stage - 1, a.micro_batch}));
    if (a.kind == ActionKind::kRecvB) t = std::max(t, visit_action({ActionKind::kSendB, a.stage + 1, a.micro_batch}));
    state[key] = 2;
    return start[key] = t;
  }
  double visit_action(const Action& a) {
    auto [r, i] = where(a);
    return visit(r, i);
  }
};

TEST(ScheduleSimulationTest, MatchesLongestPathOracleOnRandomSchedules) {
  std::mt19937 rng(20240607);
  int ok = 0;
  int deadlocked = 0;
  for (int trial = 0; trial < 300; ++trial) {
    int64_t stages = std::uniform_int_distribution<int64_t>(1, 4)(rng);
    int64_t micro_batches = std::uniform_int_distribution<int64_t>(1, 4)(rng);
    Schedule s = random_schedule(rng, stages, micro_batches);
    SimulationOptions costs{1.0 + trial % 3, 2.0 + trial % 2};
    Oracle oracle{s, costs};
    double makespan = 0;
    for (size_t r = 0; r < s.ranks.size(); ++r) {
      int64_t last = static_cast<int64_t>(s.ranks[r].size()) - 1;
      makespan = std::max(makespan, oracle.visit(static_cast<int64_t>(r), last) + oracle.cost(s.ranks[r].back()));
    }
    auto result = simulate_schedule(s, costs);
    ASSERT_EQ(result.ok(), !oracle.cycle) << s.to_string() << result.status().to_string();
    if (!result.ok()) {
      ++deadlocked;
      EXPECT_EQ(result.status().message().substr(0, 10), "deadlock: ") << result.status().message();
      continue;
    }
    ++ok;
    EXPECT_DOUBLE_EQ(result->makespan, makespan) << s.to_string();
    for (size_t r = 0; r < s.ranks.size(); ++r) {
      for (size_t i = 0; i < s.ranks[r].size(); ++i) {
        auto key = std::make_pair(static_cast<int64_t>(r), static_cast<int64_t>(i));
        EXPECT_DOUBLE_EQ(result->ranks[r].start[i], oracle.start[key]);
      }
    }
  }
  EXPECT_GT(ok, 30);
  EXPECT_GT(deadlocked, 30);
}

}  // namespace
}  // namespace alpa::plan
