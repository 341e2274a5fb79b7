// This file implements pipeline schedules: the action text form and its
// parser, the static rules (ranges, exactly-once, local order, FIFO message
// matching) and the simulation that detects deadlocks and times a schedule.
#include "plan/schedule.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <map>
#include <tuple>

#include <fmt/format.h>

#include "core/check.h"

namespace alpa::plan {
namespace {

using core::Status;
using core::StatusOr;

constexpr std::array<ActionKind, 6> kAllKinds = {ActionKind::kForward, ActionKind::kBackward,
                                                 ActionKind::kSendF,   ActionKind::kRecvF,
                                                 ActionKind::kSendB,   ActionKind::kRecvB};
/// Most (stage, micro-batch) pairs a schedule may have: the checker keeps a
/// table of 6 actions per pair (~100 MB at this bound).
constexpr int64_t kMaxStageMicroBatchPairs = int64_t{1} << 20;

bool is_send(ActionKind k) { return k == ActionKind::kSendF || k == ActionKind::kSendB; }
bool is_recv(ActionKind k) { return k == ActionKind::kRecvF || k == ActionKind::kRecvB; }
bool carries_activations(ActionKind k) {
  return k == ActionKind::kSendF || k == ActionKind::kRecvF;
}

/// Reads a run of decimal digits at `pos`; -1 when there is none, -2 when it
/// has more than 9 digits (so that it cannot overflow).
int64_t read_index(std::string_view text, size_t& pos) {
  size_t begin = pos;
  while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos]))) ++pos;
  if (pos == begin) return -1;
  if (pos - begin > 9) return -2;
  int64_t value = 0;
  for (size_t i = begin; i < pos; ++i) value = value * 10 + (text[i] - '0');
  return value;
}

struct ParsedToken {
  Action action;
  bool has_stage = false;
};

StatusOr<ParsedToken> parse_token(std::string_view text) {
  size_t pos = 0;
  ParsedToken out;
  int64_t stage = read_index(text, pos);
  if (stage == -2) return core::parse_error(fmt::format("'{}': stage index too large", text));
  out.has_stage = stage >= 0;
  out.action.stage = std::max<int64_t>(stage, 0);
  size_t kind_begin = pos;
  while (pos < text.size() && (std::isalpha(static_cast<unsigned char>(text[pos])) || text[pos] == '_')) {
    ++pos;
  }
  std::string_view kind = text.substr(kind_begin, pos - kind_begin);
  bool known = false;
  for (ActionKind k : kAllKinds) {
    if (kind == action_kind_name(k)) {
      out.action.kind = k;
      known = true;
    }
  }
  if (!known) {
    return core::parse_error(fmt::format(
        "'{}': unknown action kind '{}' (expected F, B, SEND_F, RECV_F, SEND_B or RECV_B)", text, kind));
  }
  int64_t mb = read_index(text, pos);
  if (mb == -1) return core::parse_error(fmt::format("'{}': missing the micro-batch index after '{}'", text, kind));
  if (mb == -2) return core::parse_error(fmt::format("'{}': micro-batch index too large", text));
  if (pos != text.size()) {
    return core::parse_error(fmt::format("'{}': unexpected '{}' after the micro-batch index", text, text.substr(pos)));
  }
  out.action.micro_batch = mb;
  return out;
}

std::vector<std::string_view> split_whitespace(std::string_view text) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    size_t begin = i;
    while (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    if (i > begin) out.push_back(text.substr(begin, i - begin));
  }
  return out;
}

/// Splits "rank <r>: tokens..." into its rank number and the action tokens.
StatusOr<std::vector<std::string_view>> parse_rank_line(std::string_view line, int64_t expected_rank,
                                                        int64_t line_number) {
  size_t pos = line.find_first_not_of(" \t\r");
  std::string head = fmt::format("line {}: expected 'rank {}:'", line_number, expected_rank);
  if (pos == std::string_view::npos || line.substr(pos, 4) != "rank") {
    return core::parse_error(fmt::format("{} at the start, got '{}'", head, line));
  }
  pos += 4;
  while (pos < line.size() && (line[pos] == ' ' || line[pos] == '\t')) ++pos;
  int64_t rank = read_index(line, pos);
  while (pos < line.size() && (line[pos] == ' ' || line[pos] == '\t')) ++pos;
  if (rank != expected_rank || pos >= line.size() || line[pos] != ':') {
    size_t colon = line.find(':');
    return core::parse_error(fmt::format("{} (ranks are listed in order 0, 1, ...), got '{}'", head,
                                         line.substr(0, colon == std::string_view::npos ? line.size() : colon + 1)));
  }
  return split_whitespace(line.substr(pos + 1));
}

std::string join_ints(const std::vector<int64_t>& values) {
  return fmt::format("{}", fmt::join(values, ", "));
}

}  // namespace

const char* action_kind_name(ActionKind kind) {
  switch (kind) {
    case ActionKind::kForward: return "F";
    case ActionKind::kBackward: return "B";
    case ActionKind::kSendF: return "SEND_F";
    case ActionKind::kRecvF: return "RECV_F";
    case ActionKind::kSendB: return "SEND_B";
    case ActionKind::kRecvB: return "RECV_B";
  }
  ALPA_CHECK(false, "unknown ActionKind {}", static_cast<int>(kind));
}

std::string Action::to_string() const {
  return fmt::format("{}{}{}", stage, action_kind_name(kind), micro_batch);
}

std::string Action::to_short_string() const {
  return fmt::format("{}{}", action_kind_name(kind), micro_batch);
}

StatusOr<Action> Action::parse(std::string_view text, int64_t implied_stage) {
  ALPA_ASSIGN_OR_RETURN(ParsedToken token, parse_token(text));
  if (!token.has_stage) {
    if (implied_stage < 0) {
      return core::parse_error(fmt::format("'{}' needs a stage prefix, e.g. '0{}'", text, text));
    }
    token.action.stage = implied_stage;
  }
  return token.action;
}

bool Schedule::stages_implied() const {
  if (num_stages != num_ranks) return false;
  for (size_t r = 0; r < ranks.size(); ++r) {
    for (const Action& a : ranks[r]) {
      if (a.stage != static_cast<int64_t>(r)) return false;
    }
  }
  return true;
}

std::string Schedule::action_text(const Action& action) const {
  return stages_implied() ? action.to_short_string() : action.to_string();
}

std::string Schedule::to_string() const {
  bool short_form = stages_implied();
  std::string out;
  for (size_t r = 0; r < ranks.size(); ++r) {
    out += fmt::format("rank {}:", r);
    for (const Action& a : ranks[r]) out += " " + (short_form ? a.to_short_string() : a.to_string());
    out += "\n";
  }
  return out;
}

StatusOr<Schedule> Schedule::from_text(std::string_view text) {
  struct Pending {
    ParsedToken token;
    int64_t line = 0;
    std::string_view text;
  };
  std::vector<std::vector<Pending>> lines;
  int64_t line_number = 0;
  int64_t max_stage = -1;
  int64_t max_mb = -1;
  for (size_t begin = 0; begin <= text.size(); ++line_number) {
    size_t end = std::min(text.find('\n', begin), text.size());
    std::string_view line = text.substr(begin, end - begin);
    begin = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    int64_t rank = static_cast<int64_t>(lines.size());
    ALPA_ASSIGN_OR_RETURN(auto tokens, parse_rank_line(line, rank, line_number + 1));
    std::vector<Pending>& row = lines.emplace_back();
    for (size_t step = 0; step < tokens.size(); ++step) {
      auto token = parse_token(tokens[step]);
      if (!token.ok()) {
        return token.status().with_context(
            fmt::format("line {}, rank {}, step {}", line_number + 1, rank, step));
      }
      if (token->has_stage) max_stage = std::max(max_stage, token->action.stage);
      max_mb = std::max(max_mb, token->action.micro_batch);
      row.push_back({*token, line_number + 1, tokens[step]});
    }
  }
  if (lines.empty()) return core::parse_error("schedule text has no 'rank <r>:' lines");
  Schedule s;
  s.num_ranks = static_cast<int64_t>(lines.size());
  s.num_stages = std::max(s.num_ranks, (max_stage + s.num_ranks) / s.num_ranks * s.num_ranks);
  s.num_micro_batches = max_mb + 1;
  for (size_t r = 0; r < lines.size(); ++r) {
    std::vector<Action>& actions = s.ranks.emplace_back();
    for (size_t step = 0; step < lines[r].size(); ++step) {
      const Pending& p = lines[r][step];
      Action a = p.token.action;
      if (!p.token.has_stage && s.num_stages != s.num_ranks) {
        std::vector<int64_t> hosted;
        for (int64_t st = static_cast<int64_t>(r); st < s.num_stages; st += s.num_ranks) hosted.push_back(st);
        return core::parse_error(fmt::format(
            "line {}, rank {}, step {}: '{}' needs a stage prefix (e.g. '{}{}') because rank {} hosts "
            "stages {}", p.line, r, step, p.text, hosted[0], p.text, r, join_ints(hosted)));
      }
      if (!p.token.has_stage) a.stage = static_cast<int64_t>(r);
      actions.push_back(a);
    }
  }
  return s;
}

// ---- static rules -----------------------------------------------------------

namespace {

struct Where {
  int64_t rank = -1;
  int64_t step = -1;
  bool found() const { return step >= 0; }
};

/// Where each (kind, stage, micro-batch) occurs; valid after check_ranges.
class ActionIndex {
 public:
  ActionIndex(int64_t stages, int64_t micro_batches)
      : stages_(stages), micro_batches_(micro_batches),
        table_(static_cast<size_t>(6 * stages * micro_batches)) {}
  Where& at(ActionKind kind, int64_t stage, int64_t mb) {
    return table_[static_cast<size_t>((static_cast<int64_t>(kind) * stages_ + stage) * micro_batches_ + mb)];
  }

 private:
  int64_t stages_;
  int64_t micro_batches_;
  std::vector<Where> table_;
};

std::string describe(const Schedule& s, const Action& a) {
  return fmt::format("{} (stage {}, micro-batch {})", s.action_text(a), a.stage, a.micro_batch);
}

/// Whether the schedule must contain `kind` for `stage` (first and last
/// stages have no neighbour on one side).
bool expected(const Schedule& s, ActionKind kind, int64_t stage) {
  bool last = stage == s.num_stages - 1;
  switch (kind) {
    case ActionKind::kSendF:
    case ActionKind::kRecvB: return !last;
    case ActionKind::kRecvF:
    case ActionKind::kSendB: return stage > 0;
    default: return true;
  }
}

Status check_shape(const Schedule& s) {
  if (s.num_ranks < 1) return core::invalid_argument(fmt::format("a schedule needs at least 1 rank, got {}", s.num_ranks));
  if (static_cast<int64_t>(s.ranks.size()) != s.num_ranks) {
    return core::invalid_argument(fmt::format("num_ranks is {} but the schedule has action lists for {} ranks",
                                              s.num_ranks, s.ranks.size()));
  }
  if (s.num_stages < 1 || s.num_stages % s.num_ranks != 0) {
    return core::invalid_argument(fmt::format(
        "the number of stages must be a positive multiple of the number of ranks ({}), got {}", s.num_ranks, s.num_stages));
  }
  if (s.num_stages > s.num_ranks && s.num_ranks < 2) {
    return core::invalid_argument(fmt::format(
        "virtual stages need at least 2 ranks (so that neighbouring stages live on different ranks), got {} stages "
        "on 1 rank", s.num_stages));
  }
  if (s.num_micro_batches < 1) {
    return core::invalid_argument(fmt::format("a schedule needs at least 1 micro-batch, got {}", s.num_micro_batches));
  }
  if (s.num_stages > kMaxStageMicroBatchPairs / s.num_micro_batches) {
    return core::invalid_argument(fmt::format("schedule too large: {} stages × {} micro-batches exceeds {} pairs",
                                              s.num_stages, s.num_micro_batches, kMaxStageMicroBatchPairs));
  }
  return core::ok_status();
}

Status check_action(const Schedule& s, int64_t rank, int64_t step, const Action& a) {
  std::string where = fmt::format("rank {} step {}: {}", rank, step, a.to_string());
  if (a.stage < 0 || a.stage >= s.num_stages) {
    return core::invalid_argument(fmt::format("{} names stage {}, expected 0..{}", where, a.stage, s.num_stages - 1));
  }
  if (a.micro_batch < 0 || a.micro_batch >= s.num_micro_batches) {
    return core::invalid_argument(fmt::format("{} names micro-batch {}, expected 0..{}", where, a.micro_batch,
                                              s.num_micro_batches - 1));
  }
  if (s.rank_of_stage(a.stage) != rank) {
    return core::invalid_argument(fmt::format("{} is on the wrong rank: stage {} lives on rank {}", where, a.stage,
                                              s.rank_of_stage(a.stage)));
  }
  if (!expected(s, a.kind, a.stage)) {
    bool to_next = a.kind == ActionKind::kSendF || a.kind == ActionKind::kRecvB;
    return core::invalid_argument(fmt::format(
        "{}: stage {} is the {} stage, there is no {} stage to {} {} {}", where, a.stage, to_next ? "last" : "first",
        to_next ? "next" : "previous", is_send(a.kind) ? "send" : "receive",
        carries_activations(a.kind) ? "activations" : "gradients", is_send(a.kind) ? "to" : "from"));
  }
  return core::ok_status();
}

/// Fills `index`, rejecting out-of-range and duplicated actions.
Status index_actions(const Schedule& s, ActionIndex& index) {
  for (int64_t r = 0; r < s.num_ranks; ++r) {
    const auto& actions = s.ranks[static_cast<size_t>(r)];
    for (int64_t step = 0; step < static_cast<int64_t>(actions.size()); ++step) {
      const Action& a = actions[static_cast<size_t>(step)];
      ALPA_RETURN_IF_ERROR(check_action(s, r, step, a));
      Where& w = index.at(a.kind, a.stage, a.micro_batch);
      if (w.found()) {
        return core::invalid_argument(fmt::format("duplicate action {} on rank {}: at steps {} and {}",
                                                  describe(s, a), r, w.step, step));
      }
      w = {r, step};
    }
  }
  return core::ok_status();
}

Status check_complete(const Schedule& s, ActionIndex& index) {
  std::vector<std::string> missing;
  for (int64_t stage = 0; stage < s.num_stages; ++stage) {
    for (int64_t mb = 0; mb < s.num_micro_batches; ++mb) {
      for (ActionKind k : kAllKinds) {
        if (expected(s, k, stage) && !index.at(k, stage, mb).found()) {
          missing.push_back(fmt::format("{} on rank {}", describe(s, {k, stage, mb}), s.rank_of_stage(stage)));
        }
      }
    }
  }
  if (missing.empty()) return core::ok_status();
  size_t shown = std::min<size_t>(missing.size(), 5);
  std::vector<std::string> head(missing.begin(), missing.begin() + static_cast<std::ptrdiff_t>(shown));
  return core::invalid_argument(fmt::format("missing {} action{}: {}{}", missing.size(), missing.size() == 1 ? "" : "s",
                                            fmt::join(head, "; "), shown < missing.size() ? "; ..." : ""));
}

struct OrderRule {
  ActionKind later;
  ActionKind earlier;
  const char* reason;
};

constexpr std::array<OrderRule, 5> kOrderRules = {{
    {ActionKind::kForward, ActionKind::kRecvF, "a forward needs its input activations received first"},
    {ActionKind::kSendF, ActionKind::kForward, "activations are sent after the forward computes them"},
    {ActionKind::kBackward, ActionKind::kForward, "a backward needs its forward"},
    {ActionKind::kBackward, ActionKind::kRecvB, "a backward needs its output gradients received first"},
    {ActionKind::kSendB, ActionKind::kBackward, "input gradients are sent after the backward computes them"},
}};

Status check_local_order(const Schedule& s, ActionIndex& index) {
  for (int64_t stage = 0; stage < s.num_stages; ++stage) {
    for (int64_t mb = 0; mb < s.num_micro_batches; ++mb) {
      for (const OrderRule& rule : kOrderRules) {
        if (!expected(s, rule.later, stage) || !expected(s, rule.earlier, stage)) continue;
        Where later = index.at(rule.later, stage, mb);
        Where earlier = index.at(rule.earlier, stage, mb);
        if (later.step > earlier.step) continue;
        return core::invalid_argument(fmt::format("rank {}: {} at step {} comes before {} at step {}, but {}",
                                                  later.rank, describe(s, {rule.later, stage, mb}), later.step,
                                                  s.action_text({rule.earlier, stage, mb}), earlier.step,
                                                  rule.reason));
      }
    }
  }
  return core::ok_status();
}

/// The rank at the other end of a SEND or RECV.
int64_t peer_rank(const Schedule& s, const Action& a) {
  bool next = a.kind == ActionKind::kSendF || a.kind == ActionKind::kRecvB;
  return s.rank_of_stage(next ? a.stage + 1 : a.stage - 1);
}

/// The lower stage of the boundary a message crosses.
int64_t boundary_of(const Action& a) {
  bool next = a.kind == ActionKind::kSendF || a.kind == ActionKind::kRecvB;
  return next ? a.stage : a.stage - 1;
}

/// The SEND whose data a RECV receives.
Action matching_send(const Action& recv) {
  if (recv.kind == ActionKind::kRecvF) return {ActionKind::kSendF, recv.stage - 1, recv.micro_batch};
  return {ActionKind::kSendB, recv.stage + 1, recv.micro_batch};
}

struct Message {
  Action action;
  int64_t step = 0;
};

struct Channel {
  std::vector<Message> sends;
  std::vector<Message> recvs;
};

/// The k-th RECV on a (sender, receiver, kind) channel gets the k-th SEND;
/// both must name the same boundary and micro-batch.
Status check_fifo(const Schedule& s) {
  std::map<std::tuple<int64_t, int64_t, bool>, Channel> channels;  // (src, dst, activations?)
  for (int64_t r = 0; r < s.num_ranks; ++r) {
    const auto& actions = s.ranks[static_cast<size_t>(r)];
    for (int64_t step = 0; step < static_cast<int64_t>(actions.size()); ++step) {
      const Action& a = actions[static_cast<size_t>(step)];
      if (is_send(a.kind)) channels[{r, peer_rank(s, a), carries_activations(a.kind)}].sends.push_back({a, step});
      if (is_recv(a.kind)) channels[{peer_rank(s, a), r, carries_activations(a.kind)}].recvs.push_back({a, step});
    }
  }
  for (const auto& [key, channel] : channels) {
    const auto& [src, dst, activations] = key;
    ALPA_CHECK(channel.sends.size() == channel.recvs.size(), "channel {}->{} has {} sends and {} receives", src,
               dst, channel.sends.size(), channel.recvs.size());
    for (size_t k = 0; k < channel.sends.size(); ++k) {
      const Message& send = channel.sends[k];
      const Message& recv = channel.recvs[k];
      if (boundary_of(send.action) == boundary_of(recv.action) &&
          send.action.micro_batch == recv.action.micro_batch) {
        continue;
      }
      return core::invalid_argument(fmt::format(
          "{} from rank {} to rank {} are received in the order they are sent, so send #{}, {} at rank {} step {}, "
          "would arrive at receive #{}, {} at rank {} step {}",
          activations ? "activations" : "gradients", src, dst, k + 1, describe(s, send.action), src, send.step,
          k + 1, describe(s, recv.action), dst, recv.step));
    }
  }
  return core::ok_status();
}

// ---- simulation -------------------------------------------------------------

std::string rstrip(std::string text) {
  while (!text.empty() && text.back() == ' ') text.pop_back();
  return text;
}

/// The rank × step grid; the action each unfinished rank is stuck on is
/// shown in brackets.
std::string format_grid(const Schedule& s, const std::vector<size_t>& pc) {
  size_t rows = 0;
  size_t last_stuck = 0;
  for (size_t r = 0; r < s.ranks.size(); ++r) {
    rows = std::max(rows, s.ranks[r].size());
    if (pc[r] < s.ranks[r].size()) last_stuck = std::max(last_stuck, pc[r]);
  }
  size_t shown = std::min(rows, last_stuck + 3);
  bool short_form = s.stages_implied();
  auto cell = [&](size_t r, size_t step) -> std::string {
    if (step >= s.ranks[r].size()) return "";
    const Action& a = s.ranks[r][step];
    std::string text = short_form ? a.to_short_string() : a.to_string();
    return step == pc[r] ? "[" + text + "]" : text;
  };
  std::vector<size_t> width(s.ranks.size());
  for (size_t r = 0; r < s.ranks.size(); ++r) {
    width[r] = fmt::format("rank {}", r).size();
    for (size_t step = 0; step < shown; ++step) width[r] = std::max(width[r], cell(r, step).size());
  }
  std::string header = "step  ";
  for (size_t r = 0; r < s.ranks.size(); ++r) header += fmt::format("{:<{}}  ", fmt::format("rank {}", r), width[r]);
  std::string out = rstrip(header) + "\n";
  for (size_t step = 0; step < shown; ++step) {
    std::string line = fmt::format("{:<4}  ", step);
    for (size_t r = 0; r < s.ranks.size(); ++r) line += fmt::format("{:<{}}  ", cell(r, step), width[r]);
    out += rstrip(line) + "\n";
  }
  if (shown < rows) out += fmt::format("... ({} more steps)\n", rows - shown);
  out += "[X] = the receive a rank is stuck on; the steps above it ran, the ones below did not";
  return out;
}

Status deadlock_error(const Schedule& s, ActionIndex& index, const std::vector<size_t>& pc) {
  std::vector<int64_t> stuck;
  std::string reasons;
  for (size_t r = 0; r < s.ranks.size(); ++r) {
    if (pc[r] >= s.ranks[r].size()) continue;
    stuck.push_back(static_cast<int64_t>(r));
    const Action& recv = s.ranks[r][pc[r]];
    ALPA_CHECK(is_recv(recv.kind), "rank {} stopped at {}, which cannot block", r, recv.to_string());
    Action send = matching_send(recv);
    Where w = index.at(send.kind, send.stage, send.micro_batch);
    reasons += fmt::format("  rank {} is stuck at step {} on {}: its {} is rank {} step {}, which never runs (rank {} "
                           "is stuck at step {})\n", r, pc[r], s.action_text(recv), s.action_text(send), w.rank,
                           w.step, w.rank, pc[static_cast<size_t>(w.rank)]);
  }
  return core::invalid_argument(fmt::format("deadlock: rank{} {} wait forever\n{}{}", stuck.size() == 1 ? "" : "s",
                                            join_ints(stuck), reasons, format_grid(s, pc)));
}

/// Runs every rank as far as it can (Kahn-style fixed point: the timing of
/// an action depends only on its predecessors, not on the visiting order).
StatusOr<SimulationResult> run(const Schedule& s, ActionIndex& index, const SimulationOptions& options) {
  size_t num_ranks = s.ranks.size();
  SimulationResult result;
  result.ranks.resize(num_ranks);
  std::vector<size_t> pc(num_ranks, 0);
  std::vector<int64_t> in_flight(num_ranks, 0);
  for (size_t r = 0; r < num_ranks; ++r) result.ranks[r].start.assign(s.ranks[r].size(), 0.0);
  for (bool progress = true; progress;) {
    progress = false;
    for (size_t r = 0; r < num_ranks; ++r) {
      RankTimeline& line = result.ranks[r];
      for (; pc[r] < s.ranks[r].size(); ++pc[r], progress = true) {
        const Action& a = s.ranks[r][pc[r]];
        double start = line.finish;
        if (is_recv(a.kind)) {
          Action send = matching_send(a);
          Where w = index.at(send.kind, send.stage, send.micro_batch);
          if (static_cast<size_t>(w.step) >= pc[static_cast<size_t>(w.rank)]) break;
          start = std::max(start, result.ranks[static_cast<size_t>(w.rank)].start[static_cast<size_t>(w.step)]);
        }
        double cost = a.kind == ActionKind::kForward ? options.forward_cost
                      : a.kind == ActionKind::kBackward ? options.backward_cost : 0.0;
        in_flight[r] += a.kind == ActionKind::kForward ? 1 : a.kind == ActionKind::kBackward ? -1 : 0;
        line.max_in_flight = std::max(line.max_in_flight, in_flight[r]);
        line.start[pc[r]] = start;
        line.finish = start + cost;
        line.busy += cost;
      }
    }
  }
  for (size_t r = 0; r < num_ranks; ++r) {
    if (pc[r] < s.ranks[r].size()) return deadlock_error(s, index, pc);
  }
  double busy = 0;
  for (const RankTimeline& line : result.ranks) {
    result.makespan = std::max(result.makespan, line.finish);
    busy += line.busy;
  }
  for (RankTimeline& line : result.ranks) line.idle = result.makespan - line.busy;
  double capacity = result.makespan * static_cast<double>(num_ranks);
  result.bubble_fraction = capacity > 0 ? 1.0 - busy / capacity : 0.0;
  return result;
}

}  // namespace

Status check_schedule(const Schedule& schedule) { return simulate_schedule(schedule).status(); }

StatusOr<SimulationResult> simulate_schedule(const Schedule& schedule, const SimulationOptions& options) {
  if (!(options.forward_cost >= 0 && options.backward_cost >= 0) ||
      !std::isfinite(options.forward_cost + options.backward_cost)) {
    return core::invalid_argument(fmt::format("forward and backward costs must be finite and >= 0, got {} and {}",
                                              options.forward_cost, options.backward_cost));
  }
  ALPA_RETURN_IF_ERROR(check_shape(schedule));
  ActionIndex index(schedule.num_stages, schedule.num_micro_batches);
  ALPA_RETURN_IF_ERROR(index_actions(schedule, index));
  ALPA_RETURN_IF_ERROR(check_complete(schedule, index));
  ALPA_RETURN_IF_ERROR(check_local_order(schedule, index));
  ALPA_RETURN_IF_ERROR(check_fifo(schedule));
  return run(schedule, index, options);
}

}  // namespace alpa::plan
