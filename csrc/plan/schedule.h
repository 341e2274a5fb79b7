// This file implements pipeline schedules as per-rank action lists (DESIGN
// §5 "Executor"): the Action and Schedule types, their one-line-per-rank
// text form, the static rules every schedule must obey, and a simulation
// that proves a schedule deadlock-free and measures its pipeline bubble.
// The PipelineExecutor (csrc/runtime/) runs exactly these lists.
//
// Model. The model is cut into S stages 0..S-1; S = P·V for P pipeline ranks
// and V virtual stages per rank. Pipeline rank r (a group of devices that
// all run the same list) hosts stages r, r+P, r+2P, ... (stage s lives on
// rank s mod P). A step is trained on B micro-batches 0..B-1. Interleaving
// (V > 1) needs P >= 2, so consecutive stages always live on different
// ranks and every stage boundary is a message between two ranks.
//
// Actions, for stage s and micro-batch mb:
//   F      forward of mb on s
//   B      backward of mb on s (input gradients and weight gradients)
//   SEND_F send the output activations of (s, mb) to stage s+1
//   RECV_F receive the input activations of (s, mb) from stage s-1
//   SEND_B send the input gradients of (s, mb) to stage s-1
//   RECV_B receive the output gradients of (s, mb) from stage s+1
//
// Text grammar (whitespace separates tokens; blank lines are ignored):
//   schedule := line*              one line per rank, ranks 0..P-1 in order
//   line     := "rank" <r> ":" action*
//   action   := [<stage>] kind <mb>        e.g. "F3", "RECV_B0", "2F3"
//   kind     := "F" | "B" | "SEND_F" | "RECV_F" | "SEND_B" | "RECV_B"
// <stage>, <r>, <mb> are decimal integers. The stage prefix may be left
// out only when V = 1, where the stage of every action is its rank;
// to_string() leaves it out exactly then. Example (1F1B, S = 2, B = 2):
//   rank 0: F0 SEND_F0 F1 SEND_F1 RECV_B0 B0 RECV_B1 B1
//   rank 1: RECV_F0 F0 B0 SEND_B0 RECV_F1 F1 B1 SEND_B1
//
// Execution semantics (what the executor implements and check_schedule
// verifies):
//  - Each rank runs its list strictly in order, one action at a time.
//  - SEND is non-blocking (isend): it returns at once, and the sent buffer
//    must stay alive until the matching RECV has completed.
//  - RECV blocks until its data has arrived.
//  - A channel is (sender rank, receiver rank, kind F or B). On a channel,
//    the k-th RECV receives the k-th SEND (FIFO), and that SEND must carry
//    the same stage boundary and micro-batch: SEND_F(s, mb) pairs with
//    RECV_F(s+1, mb), SEND_B(s, mb) with RECV_B(s-1, mb).
//  - On the rank hosting s: F(s, mb) comes after RECV_F(s, mb) (s > 0);
//    SEND_F(s, mb) after F(s, mb); B(s, mb) after F(s, mb) and, unless s is
//    the last stage, after RECV_B(s, mb); SEND_B(s, mb) after B(s, mb).
//  - F and B of every (stage, mb) appear exactly once; SEND_F/RECV_B exist
//    for every stage but the last, RECV_F/SEND_B for every stage but the
//    first, each exactly once, so every SEND has exactly one matching RECV.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace alpa::plan {

enum class ActionKind { kForward, kBackward, kSendF, kRecvF, kSendB, kRecvB };

/// "F", "B", "SEND_F", "RECV_F", "SEND_B", "RECV_B".
const char* action_kind_name(ActionKind kind);

struct Action {
  ActionKind kind = ActionKind::kForward;
  int64_t stage = 0;
  int64_t micro_batch = 0;

  /// Full form with the stage prefix: "2F3", "0SEND_F1".
  std::string to_string() const;
  /// Without the stage prefix: "F3", "SEND_F1".
  std::string to_short_string() const;
  /// Reads either form; a token without a stage prefix takes
  /// `implied_stage`, or is an error when implied_stage < 0.
  static core::StatusOr<Action> parse(std::string_view text, int64_t implied_stage = -1);

  friend bool operator==(const Action& a, const Action& b) {
    return a.kind == b.kind && a.stage == b.stage && a.micro_batch == b.micro_batch;
  }
  friend bool operator!=(const Action& a, const Action& b) { return !(a == b); }
};

struct Schedule {
  int64_t num_ranks = 0;          ///< P
  int64_t num_stages = 0;         ///< S = P·V
  int64_t num_micro_batches = 0;  ///< B
  std::vector<std::vector<Action>> ranks;  ///< ranks[r] = the list rank r runs

  /// V = S / P.
  int64_t num_virtual() const { return num_ranks > 0 ? num_stages / num_ranks : 0; }
  /// The pipeline rank hosting `stage` (stage mod P).
  int64_t rank_of_stage(int64_t stage) const { return stage % num_ranks; }
  /// True when to_string() leaves out stage prefixes (V = 1 and every
  /// action's stage is its rank).
  bool stages_implied() const;
  /// The text of one action as this schedule prints it.
  std::string action_text(const Action& action) const;

  /// One line per rank, "rank r: a0 a1 ...", each ending in '\n'.
  std::string to_string() const;
  /// Parses to_string()'s grammar. P is the number of rank lines; B is one
  /// more than the largest micro-batch index; S is P when no stage prefix
  /// names a stage >= P, else the largest stage + 1 rounded up to a
  /// multiple of P. Errors name the line, rank, step and token.
  static core::StatusOr<Schedule> from_text(std::string_view text);

  friend bool operator==(const Schedule& a, const Schedule& b) {
    return a.num_ranks == b.num_ranks && a.num_stages == b.num_stages &&
           a.num_micro_batches == b.num_micro_batches && a.ranks == b.ranks;
  }
};

/// Costs for simulate_schedule, in any one time unit (e.g. seconds).
/// Communication takes zero time.
struct SimulationOptions {
  double forward_cost = 1;   ///< time of one F action
  double backward_cost = 2;  ///< time of one B action
};

struct RankTimeline {
  double busy = 0;    ///< time spent in F and B
  double idle = 0;    ///< makespan − busy (waiting, and after the rank ends)
  double finish = 0;  ///< when the rank's last action ends
  /// Largest number of micro-batches whose forward ran on this rank and
  /// whose backward has not yet: activations held at once, per stage-mb.
  int64_t max_in_flight = 0;
  std::vector<double> start;  ///< start time of each action, by step
};

struct SimulationResult {
  std::vector<RankTimeline> ranks;
  double makespan = 0;  ///< time until every rank has finished
  /// 1 − Σ busy / (P · makespan); GPipe and 1F1B reach (S−1)/(B+S−1).
  double bubble_fraction = 0;
};

/// OK when `schedule` obeys every rule in the header comment and runs to
/// completion. Otherwise InvalidArgument naming the offending action (bad
/// stage or micro-batch, missing, duplicated, out of order, messages
/// received out of FIFO order), or, on deadlock, a rank × step grid showing
/// where each rank is stuck. Schedules over 2^20 (stage, micro-batch) pairs
/// are rejected.
core::Status check_schedule(const Schedule& schedule);

/// check_schedule, then the as-soon-as-possible timing of the schedule:
/// each action starts when the previous action of its rank has ended and,
/// for a RECV, when the matching SEND has run.
core::StatusOr<SimulationResult> simulate_schedule(const Schedule& schedule,
                                                   const SimulationOptions& options = {});

}  // namespace alpa::plan
