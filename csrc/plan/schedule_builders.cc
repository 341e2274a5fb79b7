// This file implements the GPipe, 1F1B and interleaved 1F1B schedule
// builders.
#include "plan/schedule_builders.h"

#include <algorithm>
#include <string>

#include <fmt/format.h>

namespace alpa::plan {
namespace {

using core::Status;
using core::StatusOr;

Status check_sizes(int64_t num_ranks, int64_t num_virtual, int64_t num_micro_batches) {
  if (num_ranks < 1) return core::invalid_argument(fmt::format("a pipeline needs at least 1 stage, got {}", num_ranks));
  if (num_virtual < 1) {
    return core::invalid_argument(fmt::format("num_virtual must be at least 1, got {}", num_virtual));
  }
  if (num_micro_batches < 1) {
    return core::invalid_argument(fmt::format("a pipeline needs at least 1 micro-batch, got {}", num_micro_batches));
  }
  return core::ok_status();
}

Schedule empty_schedule(int64_t num_ranks, int64_t num_stages, int64_t num_micro_batches) {
  Schedule s;
  s.num_ranks = num_ranks;
  s.num_stages = num_stages;
  s.num_micro_batches = num_micro_batches;
  s.ranks.resize(static_cast<size_t>(num_ranks));
  return s;
}

/// RECV_F (unless first stage), F, SEND_F (unless last stage).
void append_forward(Schedule& s, int64_t stage, int64_t mb) {
  std::vector<Action>& out = s.ranks[static_cast<size_t>(s.rank_of_stage(stage))];
  if (stage > 0) out.push_back({ActionKind::kRecvF, stage, mb});
  out.push_back({ActionKind::kForward, stage, mb});
  if (stage < s.num_stages - 1) out.push_back({ActionKind::kSendF, stage, mb});
}

/// RECV_B (unless last stage), B, SEND_B (unless first stage).
void append_backward(Schedule& s, int64_t stage, int64_t mb) {
  std::vector<Action>& out = s.ranks[static_cast<size_t>(s.rank_of_stage(stage))];
  if (stage < s.num_stages - 1) out.push_back({ActionKind::kRecvB, stage, mb});
  out.push_back({ActionKind::kBackward, stage, mb});
  if (stage > 0) out.push_back({ActionKind::kSendB, stage, mb});
}

}  // namespace

StatusOr<Schedule> gpipe(int64_t num_stages, int64_t num_micro_batches) {
  ALPA_RETURN_IF_ERROR(check_sizes(num_stages, 1, num_micro_batches));
  Schedule s = empty_schedule(num_stages, num_stages, num_micro_batches);
  for (int64_t stage = 0; stage < num_stages; ++stage) {
    for (int64_t mb = 0; mb < num_micro_batches; ++mb) append_forward(s, stage, mb);
    for (int64_t mb = 0; mb < num_micro_batches; ++mb) append_backward(s, stage, mb);
  }
  return s;
}

StatusOr<Schedule> one_f_one_b(int64_t num_stages, int64_t num_micro_batches) {
  ALPA_RETURN_IF_ERROR(check_sizes(num_stages, 1, num_micro_batches));
  Schedule s = empty_schedule(num_stages, num_stages, num_micro_batches);
  for (int64_t stage = 0; stage < num_stages; ++stage) {
    int64_t warmup = std::min(num_stages - stage - 1, num_micro_batches);
    int64_t steady = num_micro_batches - warmup;
    for (int64_t mb = 0; mb < warmup; ++mb) append_forward(s, stage, mb);
    for (int64_t i = 0; i < steady; ++i) {
      append_forward(s, stage, warmup + i);
      append_backward(s, stage, i);
    }
    for (int64_t mb = steady; mb < num_micro_batches; ++mb) append_backward(s, stage, mb);
  }
  return s;
}

StatusOr<Schedule> interleaved_one_f_one_b(int64_t num_ranks, int64_t num_virtual, int64_t num_micro_batches) {
  ALPA_RETURN_IF_ERROR(check_sizes(num_ranks, num_virtual, num_micro_batches));
  if (num_micro_batches % num_ranks != 0) {
    return core::invalid_argument(fmt::format(
        "interleaved 1F1B runs micro-batches in groups of one per rank, so the number of micro-batches must be a "
        "multiple of the number of ranks ({}), got {}", num_ranks, num_micro_batches));
  }
  if (num_virtual > 1 && num_ranks < 2) {
    return core::invalid_argument(fmt::format(
        "interleaving {} virtual stages needs at least 2 ranks, got 1", num_virtual));
  }
  const int64_t p = num_ranks;
  const int64_t v = num_virtual;
  const int64_t total = v * num_micro_batches;  // (chunk, micro-batch) pairs per rank
  Schedule s = empty_schedule(p, p * v, num_micro_batches);
  // The k-th forward (backward) of a rank: micro-batches advance in groups
  // of p through the chunks, backwards visit the chunks last-first.
  auto chunk_of = [&](int64_t k, bool forward) {
    int64_t chunk = (k % (p * v)) / p;
    return forward ? chunk : v - 1 - chunk;
  };
  auto mb_of = [&](int64_t k) { return (k / (p * v)) * p + k % p; };
  for (int64_t r = 0; r < p; ++r) {
    int64_t warmup = num_micro_batches == p ? total : std::min((p - r - 1) * 2 + (v - 1) * p, total);
    auto forward = [&](int64_t k) { append_forward(s, chunk_of(k, true) * p + r, mb_of(k)); };
    auto backward = [&](int64_t k) { append_backward(s, chunk_of(k, false) * p + r, mb_of(k)); };
    for (int64_t k = 0; k < warmup; ++k) forward(k);
    for (int64_t k = 0; k < total - warmup; ++k) {
      forward(warmup + k);
      backward(k);
    }
    for (int64_t k = total - warmup; k < total; ++k) backward(k);
  }
  return s;
}

StatusOr<Schedule> build_schedule(std::string_view kind, int64_t num_ranks, int64_t num_micro_batches,
                                  int64_t num_virtual) {
  if (kind == "interleaved_1f1b") return interleaved_one_f_one_b(num_ranks, num_virtual, num_micro_batches);
  if (kind != "gpipe" && kind != "1f1b") {
    return core::invalid_argument(fmt::format(
        "unknown schedule '{}', expected 'gpipe', '1f1b' or 'interleaved_1f1b'", kind));
  }
  if (num_virtual != 1) {
    return core::invalid_argument(fmt::format(
        "'{}' has one stage per rank (num_virtual = 1), got num_virtual = {}; use 'interleaved_1f1b'", kind,
        num_virtual));
  }
  return kind == "gpipe" ? gpipe(num_ranks, num_micro_batches) : one_f_one_b(num_ranks, num_micro_batches);
}

}  // namespace alpa::plan
