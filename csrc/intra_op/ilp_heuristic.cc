// This file implements fit_to_budget(): the repair, improve and eject
// phases of ilp_heuristic.h.
#include "intra_op/ilp_heuristic.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <tuple>
#include <utility>

namespace alpa::intra_op::detail {
namespace {

// Move evaluations before the search settles for what it has (a move costs
// its node's degree): bounded work, so results do not depend on the clock.
constexpr int64_t kMaxWork = 20'000'000;
// Cost-lowering moves tried per ejection round, and rounds.
constexpr size_t kEjectCandidates = 16;
constexpr int kMaxEjectRounds = 8;
// A move lowers the cost when it saves more than this fraction of the total.
constexpr double kRelativeTolerance = 1e-12;

class LocalSearch {
 public:
  LocalSearch(const IlpProblem& problem, const Presolved& ps, std::vector<StrategyIdx> start)
      : problem_(problem), ps_(ps), choice_(std::move(start)) {
    const size_t n = ps.costs.size();
    neighbours_.resize(n);
    times_of_.resize(n);
    for (const auto& [key, matrix] : ps.edges) {
      neighbours_[static_cast<size_t>(key.first)].push_back({key.second, &matrix, true});
      neighbours_[static_cast<size_t>(key.second)].push_back({key.first, &matrix, false});
    }
    memory_.assign(problem.liveness.size(), 0.0L);
    for (size_t t = 0; t < problem.liveness.size(); ++t) {
      for (NodeIdx i : problem.liveness[t]) {
        times_of_[static_cast<size_t>(i)].push_back(static_cast<TimeIdx>(t));
        memory_[t] += problem.memory(i, choice_[static_cast<size_t>(i)]);
      }
    }
    for (size_t i = 0; i < n; ++i) {
      if (ps.fixed[i] == kFree) free_.push_back(static_cast<NodeIdx>(i));
    }
  }

  /// Greedy: while over the budget, the move that fits the budget at the
  /// least cost, else the least cost per byte of excess removed. `frozen`
  /// keeps its strategy. False when no move reduces the excess.
  bool repair(NodeIdx frozen = -1) {
    for (long double excess = total_excess(); excess > 0.0L; excess = total_excess()) {
      std::tuple<int, double, NodeIdx, StrategyIdx> best{2, 0.0, -1, -1};
      for (NodeIdx i : free_) {
        if (i == frozen) continue;
        const double current = local_cost(i, strategy(i));
        for (size_t k = 0; k < ps_.costs[static_cast<size_t>(i)].size(); ++k) {
          if (!candidate(i, k)) continue;
          const long double removed = -excess_change(i, static_cast<StrategyIdx>(k));
          if (removed <= 0.0L) continue;
          const double dc = local_cost(i, static_cast<StrategyIdx>(k)) - current;
          const bool fits = removed >= excess;
          std::tuple<int, double, NodeIdx, StrategyIdx> key{
              fits ? 0 : 1, fits ? dc : static_cast<double>(dc / removed), i,
              static_cast<StrategyIdx>(k)};
          if (key < best) best = key;
        }
        if (out_of_work()) return false;
      }
      if (std::get<2>(best) < 0) return false;
      apply(std::get<2>(best), std::get<3>(best));
    }
    return true;
  }

  /// First improvement per node, best strategy of the node: moves that
  /// keep every time point within the budget and lower the cost.
  void improve() {
    for (bool changed = true; changed && !out_of_work();) {
      changed = false;
      const double tolerance = kRelativeTolerance * std::max(objective(), 1e-300);
      for (NodeIdx i : free_) {
        const double current = local_cost(i, strategy(i));
        StrategyIdx best = -1;
        double best_dc = -tolerance;
        for (size_t k = 0; k < ps_.costs[static_cast<size_t>(i)].size(); ++k) {
          if (!candidate(i, k) || !stays_within(i, static_cast<StrategyIdx>(k))) continue;
          const double dc = local_cost(i, static_cast<StrategyIdx>(k)) - current;
          if (dc < best_dc) {
            best = static_cast<StrategyIdx>(k);
            best_dc = dc;
          }
        }
        if (best >= 0) {
          apply(i, best);
          changed = true;
        }
      }
    }
  }

  /// Rounds of: take one of the cheapest cost-lowering moves that break
  /// the budget, repair elsewhere, improve; keep the best result when the
  /// total falls.
  void eject() {
    for (int round = 0; round < kMaxEjectRounds && !out_of_work(); ++round) {
      const double base = objective();
      const double tolerance = kRelativeTolerance * std::max(base, 1e-300);
      std::vector<std::tuple<double, NodeIdx, StrategyIdx>> gains;
      for (NodeIdx i : free_) {
        const double current = local_cost(i, strategy(i));
        for (size_t k = 0; k < ps_.costs[static_cast<size_t>(i)].size(); ++k) {
          if (!candidate(i, k) || stays_within(i, static_cast<StrategyIdx>(k))) continue;
          const double dc = local_cost(i, static_cast<StrategyIdx>(k)) - current;
          if (dc < -tolerance) gains.emplace_back(dc, i, static_cast<StrategyIdx>(k));
        }
      }
      std::sort(gains.begin(), gains.end());
      if (gains.size() > kEjectCandidates) gains.resize(kEjectCandidates);
      const std::vector<StrategyIdx> saved_choice = choice_;
      const std::vector<long double> saved_memory = memory_;
      std::optional<std::pair<double, std::vector<StrategyIdx>>> best;
      for (const auto& [dc, i, k] : gains) {
        apply(i, k);
        if (repair(i)) {
          improve();
          const double total = objective();
          if (total < base - tolerance && (!best || total < best->first)) best.emplace(total, choice_);
        }
        choice_ = saved_choice;
        memory_ = saved_memory;
      }
      if (!best) return;
      for (NodeIdx i : free_) apply(i, best->second[static_cast<size_t>(i)]);
    }
  }

  const std::vector<StrategyIdx>& choice() const { return choice_; }

 private:
  struct Neighbour {
    NodeIdx node;
    const Matrix* costs;
    bool first;  // this node indexes the matrix's rows
  };

  StrategyIdx strategy(NodeIdx i) const { return choice_[static_cast<size_t>(i)]; }

  bool candidate(NodeIdx i, size_t k) const {
    return static_cast<StrategyIdx>(k) != strategy(i) && ps_.allowed(i, k);
  }

  double local_cost(NodeIdx i, StrategyIdx k) {
    const auto& nbrs = neighbours_[static_cast<size_t>(i)];
    work_ += 1 + static_cast<int64_t>(nbrs.size());
    double c = ps_.costs[static_cast<size_t>(i)][static_cast<size_t>(k)];
    for (const Neighbour& nb : nbrs) {
      const size_t other = static_cast<size_t>(strategy(nb.node));
      c += nb.first ? (*nb.costs)[static_cast<size_t>(k)][other]
                    : (*nb.costs)[other][static_cast<size_t>(k)];
    }
    return c;
  }

  long double over(long double bytes) const {
    return std::max(0.0L, bytes - static_cast<long double>(problem_.memory_budget));
  }

  long double total_excess() const {
    long double sum = 0.0L;
    for (long double bytes : memory_) sum += over(bytes);
    return sum;
  }

  long double memory_change(NodeIdx i, StrategyIdx k) const {
    return static_cast<long double>(problem_.memory(i, k)) -
           static_cast<long double>(problem_.memory(i, strategy(i)));
  }

  long double excess_change(NodeIdx i, StrategyIdx k) const {
    const long double dm = memory_change(i, k);
    long double change = 0.0L;
    for (TimeIdx t : times_of_[static_cast<size_t>(i)]) {
      const long double bytes = memory_[static_cast<size_t>(t)];
      change += over(bytes + dm) - over(bytes);
    }
    return change;
  }

  bool stays_within(NodeIdx i, StrategyIdx k) const {
    const long double dm = memory_change(i, k);
    for (TimeIdx t : times_of_[static_cast<size_t>(i)]) {
      if (over(memory_[static_cast<size_t>(t)] + dm) > 0.0L) return false;
    }
    return true;
  }

  void apply(NodeIdx i, StrategyIdx k) {
    const long double dm = memory_change(i, k);
    for (TimeIdx t : times_of_[static_cast<size_t>(i)]) memory_[static_cast<size_t>(t)] += dm;
    choice_[static_cast<size_t>(i)] = k;
  }

  double objective() const { return model_objective(ps_, choice_); }
  bool out_of_work() const { return work_ > kMaxWork; }

  const IlpProblem& problem_;
  const Presolved& ps_;
  std::vector<StrategyIdx> choice_;
  std::vector<NodeIdx> free_;
  std::vector<std::vector<Neighbour>> neighbours_;
  std::vector<std::vector<TimeIdx>> times_of_;
  std::vector<long double> memory_;  // bytes per time point under choice_
  int64_t work_ = 0;
};

}  // namespace

std::optional<std::vector<StrategyIdx>> fit_to_budget(const IlpProblem& problem,
                                                      const Presolved& ps,
                                                      std::vector<StrategyIdx> start) {
  LocalSearch search(problem, ps, std::move(start));
  if (!search.repair()) return std::nullopt;
  search.improve();
  search.eject();
  return search.choice();
}

}  // namespace alpa::intra_op::detail
