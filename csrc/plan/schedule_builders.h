// This file implements the textbook pipeline schedules as action lists
// (see plan/schedule.h for the action semantics): GPipe, 1F1B
// (PipeDream-flush) and Megatron's interleaved 1F1B. Every builder places
// RECV_F right before its F, SEND_F right after it, RECV_B right before its
// B and SEND_B right after it; all built schedules pass check_schedule.
#pragma once

#include <cstdint>
#include <string_view>

#include "core/status.h"
#include "plan/schedule.h"

namespace alpa::plan {

/// GPipe (Huang et al. 2019): each stage runs the forwards of micro-batches
/// 0..B-1, then the backwards of micro-batches 0..B-1, in ascending order.
/// The GPipe paper draws the backwards in reverse order; both orders give
/// the same makespan, (B+S−1)·(f+b), and both keep all B activations
/// alive. Ascending order makes gradient accumulation add micro-batch
/// gradients in the same order as 1F1B does, so switching between the two
/// schedules leaves the summed gradients bit-identical.
core::StatusOr<Schedule> gpipe(int64_t num_stages, int64_t num_micro_batches);

/// 1F1B with a flush (PipeDream-flush, Narayanan et al. 2021; Megatron's
/// default): rank r runs min(S−r−1, B) warm-up forwards, then alternates
/// one forward and one backward, then runs the remaining backwards. At most
/// S−r micro-batches are in flight on rank r (GPipe: B); same makespan as
/// GPipe.
core::StatusOr<Schedule> one_f_one_b(int64_t num_stages, int64_t num_micro_batches);

/// Megatron-LM's interleaved 1F1B (Narayanan et al. 2021, §2.2): P ranks
/// each host V model chunks (stages r, r+P, ...; S = P·V). Micro-batches
/// go through the chunks in groups of P, so B must be a multiple of P. Rank
/// r warms up with min((P−r−1)·2 + (V−1)·P, V·B) forwards (all V·B when
/// B = P), then alternates, then cools down. Needs P >= 2 when V > 1.
core::StatusOr<Schedule> interleaved_one_f_one_b(int64_t num_ranks, int64_t num_virtual,
                                                 int64_t num_micro_batches);

/// The schedule named `kind`: "gpipe", "1f1b" (both need num_virtual = 1)
/// or "interleaved_1f1b", over `num_ranks` pipeline ranks.
core::StatusOr<Schedule> build_schedule(std::string_view kind, int64_t num_ranks, int64_t num_micro_batches,
                                        int64_t num_virtual = 1);

}  // namespace alpa::plan
