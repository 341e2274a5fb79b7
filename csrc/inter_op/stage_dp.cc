// This file implements the stage DP (Alpa §5.2), its t_max search and the
// independent plan evaluator; the algorithm is described in stage_dp.h.
#include "inter_op/stage_dp.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <queue>
#include <sstream>
#include <tuple>

#include <fmt/format.h>

#include "core/check.h"

namespace alpa::inter_op {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

/// One entry of a (i,k,m) config list after the collapse: admissible for
/// stage counts s with s-1 ≤ bound; cheaper than every entry before it.
struct ConfigStep {
  int64_t bound;  // max successors, capped at S-1 (S-1 = unbounded)
  double cost;    // seconds
  int64_t config;
};

/// The request preprocessed for the DP: config lists per (i,k,m) and the
/// stage-count buckets. Bucket b < num_buckets means exactly b stages; the
/// top bucket means "num_buckets or more" when `merge_top`.
struct Problem {
  int64_t L = 0, D = 0, M = 0, S = 0;
  int64_t num_buckets = 0;
  bool merge_top = false;
  std::vector<int64_t> devices;       // n_m
  std::vector<int64_t> steps_begin;   // CSR over (i·L + k)·M + m
  std::vector<ConfigStep> steps;      // bound descending, cost descending
  std::vector<double> candidates;     // distinct step costs, ascending

  const ConfigStep* begin(int64_t i, int64_t k, int64_t m) const {
    return steps.data() + steps_begin[static_cast<size_t>((i * L + k) * M + m)];
  }
  const ConfigStep* end(int64_t i, int64_t k, int64_t m) const {
    return steps.data() + steps_begin[static_cast<size_t>((i * L + k) * M + m) + 1];
  }
};

/// Keeps the configs of one (i,k,m) that are cheapest for some stage count.
void collapse_configs(std::vector<ConfigStep>* configs, std::vector<ConfigStep>* out) {
  std::sort(configs->begin(), configs->end(), [](const ConfigStep& a, const ConfigStep& b) {
    return std::tie(b.bound, a.cost, a.config) < std::tie(a.bound, b.cost, b.config);
  });
  double cheapest = kInf;
  for (const ConfigStep& step : *configs) {
    if (step.cost < cheapest) {
      out->push_back(step);
      cheapest = step.cost;
    }
  }
}

Problem build_problem(const StageDPRequest& request, bool ignore_memory) {
  const StageCostTable& table = request.table;
  Problem p;
  p.L = table.num_layers();
  p.D = request.num_devices;
  p.M = table.num_submeshes();
  p.S = std::min(p.L, p.D);
  if (request.max_num_stages) p.S = std::min(p.S, *request.max_num_stages);
  for (int64_t m = 0; m < p.M; ++m) p.devices.push_back(table.submesh(m).num_devices());
  int64_t largest_bound = -1;  // largest bound below S-1 (a binding one)
  std::vector<ConfigStep> configs;
  p.steps_begin.push_back(0);
  for (int64_t i = 0; i < p.L; ++i) {
    for (int64_t k = 0; k < p.L; ++k) {
      for (int64_t m = 0; m < p.M; ++m) {
        configs.clear();
        for (int64_t c = 0; k >= i && p.devices[m] <= p.D && c < table.num_configs(m); ++c) {
          double cost = table.cost(i, k, m, c);
          int64_t bound = ignore_memory ? kUnboundedSuccessors : table.max_n_succ_stages(i, k, m, c);
          if (std::isinf(cost) || bound < 0) continue;
          configs.push_back({std::min(bound, p.S - 1), cost, c});
        }
        collapse_configs(&configs, &p.steps);
        p.steps_begin.push_back(static_cast<int64_t>(p.steps.size()));
      }
    }
  }
  for (const ConfigStep& step : p.steps) {
    if (step.bound < p.S - 1) largest_bound = std::max(largest_bound, step.bound);
    p.candidates.push_back(step.cost);
  }
  std::sort(p.candidates.begin(), p.candidates.end());
  p.candidates.erase(std::unique(p.candidates.begin(), p.candidates.end()), p.candidates.end());
  // Counts s ≥ largest_bound + 2 admit exactly the unbounded configs; they
  // can share a bucket unless max_num_stages caps s below min(L, D).
  bool physical_cap = p.S == std::min(p.L, p.D);
  p.num_buckets = physical_cap ? std::min(p.S, largest_bound + 2) : p.S;
  p.merge_top = p.num_buckets < p.S;
  return p;
}

/// F(s, i, d) for one t_max, rows of D+1 device counts.
class StageTable {
 public:
  explicit StageTable(const Problem& p) : p_(p), row_(p.D + 1) {}

  void fill(double t_max);
  /// min_s F(s, 0, D) and its bucket (-1 when infinite).
  std::pair<double, int64_t> best() const;
  /// The stages of the plan that achieves F(bucket, 0, D).
  std::vector<StageChoice> trace(double t_max, int64_t bucket) const;

 private:
  double* row(int64_t b, int64_t i) { return &f_[static_cast<size_t>((b * (p_.L + 1) + i) * row_)]; }
  const double* row(int64_t b, int64_t i) const {
    return &f_[static_cast<size_t>((b * (p_.L + 1) + i) * row_)];
  }
  void relax_stage(int64_t i, int64_t k, int64_t m, double t_max);

  const Problem& p_;
  int64_t row_;
  std::vector<double> f_;
};

/// out[d] = min(out[d], prev[d - n] + t) for d in [lo, hi]: the innermost,
/// vectorizable step of the DP.
void min_plus_row(double* __restrict out, const double* __restrict prev, int64_t n, int64_t lo,
                  int64_t hi, double t) {
  for (int64_t d = lo; d <= hi; ++d) {
    double v = prev[d - n] + t;
    out[d] = v < out[d] ? v : out[d];
  }
}

/// Stage counts whose F(·, k+1, ·) can precede a stage i..k: bucket range
/// [lo, hi] of the new stage (hi < lo when none).
std::pair<int64_t, int64_t> bucket_range(const Problem& p, int64_t k, int64_t n) {
  int64_t rest = p.L - 1 - k;
  if (rest == 0) return {1, 1};
  int64_t hi = std::min({p.num_buckets, rest + 1, p.D - n + 1});
  return {std::min<int64_t>(2, p.num_buckets), hi};
}

void StageTable::relax_stage(int64_t i, int64_t k, int64_t m, double t_max) {
  const ConfigStep* first = p_.begin(i, k, m);
  const ConfigStep* last = p_.end(i, k, m);
  const int64_t n = p_.devices[static_cast<size_t>(m)];
  if (first == last || (last - 1)->cost > t_max) return;
  auto [b_lo, b_hi] = bucket_range(p_, k, n);
  const ConfigStep* step = last - 1;  // cheapest admissible for small counts
  for (int64_t b = b_lo; b <= b_hi; ++b) {
    while (step >= first && step->bound < b - 1) --step;
    if (step < first || step->cost > t_max) break;  // costs only grow with b
    const int64_t lo = i == 0 ? p_.D : n + b - 1;
    double* out = row(b, i);
    if (b - 1 > 0 || k + 1 == p_.L) min_plus_row(out, row(b - 1, k + 1), n, lo, p_.D, step->cost);
    if (p_.merge_top && b == p_.num_buckets) {
      min_plus_row(out, row(b, k + 1), n, lo, p_.D, step->cost);
    }
  }
}

void StageTable::fill(double t_max) {
  f_.assign(static_cast<size_t>((p_.num_buckets + 1) * (p_.L + 1) * row_), kInf);
  row(0, p_.L)[0] = 0;
  for (int64_t i = p_.L - 1; i >= 0; --i) {
    for (int64_t k = i; k < p_.L; ++k) {
      for (int64_t m = 0; m < p_.M; ++m) relax_stage(i, k, m, t_max);
    }
  }
}

std::pair<double, int64_t> StageTable::best() const {
  double g = kInf;
  int64_t bucket = -1;
  for (int64_t b = 1; b <= p_.num_buckets; ++b) {
    if (row(b, 0)[p_.D] < g) {
      g = row(b, 0)[p_.D];
      bucket = b;
    }
  }
  return {g, bucket};
}

std::vector<StageChoice> StageTable::trace(double t_max, int64_t bucket) const {
  std::vector<StageChoice> stages;
  int64_t b = bucket, i = 0, d = p_.D;
  while (i < p_.L) {
    const double target = row(b, i)[d];
    bool found = false;
    for (int64_t k = i; k < p_.L && !found; ++k) {
      for (int64_t m = 0; m < p_.M && !found; ++m) {
        const int64_t n = p_.devices[static_cast<size_t>(m)];
        const ConfigStep* first = p_.begin(i, k, m);
        const ConfigStep* step = p_.end(i, k, m) - 1;
        while (step >= first && step->bound < b - 1) --step;
        if (step < first || step->cost > t_max || d - n < 0) continue;
        for (int64_t prev : {b - 1, p_.merge_top && b == p_.num_buckets ? b : int64_t{-1}}) {
          if (prev < 0 || row(prev, k + 1)[d - n] + step->cost != target) continue;
          stages.push_back({i, k, m, step->config, step->cost});
          b = prev;
          i = k + 1;
          d -= n;
          found = true;
          break;
        }
      }
    }
    ALPA_CHECK(found, "stage DP traceback lost its way at layer {} ({} devices left)", i, d);
  }
  return stages;
}

/// One DP run at a candidate t_max: G(t_max) and the plan achieving it.
struct Evaluation {
  double g = kInf;
  double slowest = kInf;  // the traced plan's slowest stage (≤ t_max)
  std::vector<StageChoice> stages;
};

Evaluation evaluate_at(StageTable* table, double t_max) {
  Evaluation e;
  table->fill(t_max);
  auto [g, bucket] = table->best();
  if (bucket < 0) return e;
  e.g = g;
  e.stages = table->trace(t_max, bucket);
  e.slowest = 0;
  for (const StageChoice& s : e.stages) e.slowest = std::max(e.slowest, s.cost);
  return e;
}

/// Unsearched candidates [a, b) below a point b whose G is known (Gb).
struct Interval {
  double bound;  // Gb + (B-1)·c_a: no t in the interval does better
  int64_t a, b;
  double gb;
  bool operator>(const Interval& o) const { return std::tie(bound, a) > std::tie(o.bound, o.a); }
};

/// Best-first branch and bound over the sorted candidates (see stage_dp.h).
StageDPResult search_t_max(const Problem& p, int64_t num_micro_batches, StageTable* table) {
  const std::vector<double>& c = p.candidates;
  const double w = static_cast<double>(num_micro_batches - 1);
  StageDPResult best;
  best.total_time = kInf;
  auto index_of = [&](double t) {
    return static_cast<int64_t>(std::lower_bound(c.begin(), c.end(), t) - c.begin());
  };
  auto consider = [&](Evaluation& e) {
    ++best.num_t_max_evaluated;
    if (e.g == kInf) return;
    double total = e.g + w * e.slowest;
    if (total < best.total_time) {
      best.total_time = total;
      best.t_max = e.slowest;
      best.stages = std::move(e.stages);
    }
  };
  Evaluation top = evaluate_at(table, c.back());
  const double g_top = top.g, slowest_top = top.slowest;
  consider(top);
  if (g_top == kInf) return best;
  std::priority_queue<Interval, std::vector<Interval>, std::greater<Interval>> open;
  auto push = [&](int64_t a, int64_t b, double gb) {
    if (a < b) open.push({gb + w * c[static_cast<size_t>(a)], a, b, gb});
  };
  push(0, index_of(slowest_top), g_top);
  while (!open.empty() && open.top().bound < best.total_time) {
    Interval in = open.top();
    open.pop();
    int64_t mid = in.a + (in.b - in.a - 1) / 2;
    Evaluation e = evaluate_at(table, c[static_cast<size_t>(mid)]);
    const double g = e.g, slowest = e.slowest;
    consider(e);
    if (g == kInf) {  // so is every t below mid
      push(mid + 1, in.b, in.gb);
      continue;
    }
    push(in.a, index_of(slowest), g);          // G is constant on [slowest, mid]
    if (g > in.gb) push(mid + 1, in.b, in.gb);  // else also constant up to b
  }
  return best;
}

core::Status validate_request(const StageDPRequest& r) {
  if (r.table.num_layers() < 1) {
    return core::invalid_argument(
        "the stage cost table is empty (0 layers); build it with StageCostTable::create");
  }
  ALPA_RETURN_IF_ERROR(r.table.validate());
  if (r.num_devices < 1) {
    return core::invalid_argument(fmt::format("num_devices must be ≥ 1, got {}", r.num_devices));
  }
  if (r.num_devices > kMaxStageDevices) {
    return core::invalid_argument(fmt::format(
        "num_devices is {}; the stage DP takes at most {} devices", r.num_devices,
        kMaxStageDevices));
  }
  if (r.num_micro_batches < 1) {
    return core::invalid_argument(
        fmt::format("num_micro_batches must be ≥ 1, got {}", r.num_micro_batches));
  }
  if (r.num_micro_batches > kMaxMicroBatches) {
    return core::invalid_argument(fmt::format(
        "num_micro_batches is {}; the stage DP takes at most {}", r.num_micro_batches,
        kMaxMicroBatches));
  }
  if (r.max_num_stages && *r.max_num_stages < 1) {
    return core::invalid_argument(
        fmt::format("max_num_stages must be ≥ 1 when given, got {}", *r.max_num_stages));
  }
  return core::ok_status();
}

}  // namespace

// ---- the cost table ---------------------------------------------------------

core::StatusOr<StageCostTable> StageCostTable::create(int64_t num_layers,
                                                      std::vector<mesh::SubmeshShape> submeshes,
                                                      std::vector<int64_t> num_configs) {
  if (num_layers < 1) {
    return core::invalid_argument(fmt::format("num_layers must be ≥ 1, got {}", num_layers));
  }
  if (num_layers > kMaxStageLayers) {
    return core::invalid_argument(fmt::format(
        "num_layers is {}; the stage DP takes at most {} layers", num_layers, kMaxStageLayers));
  }
  if (submeshes.empty()) return core::invalid_argument("at least one sub-mesh is needed, got none");
  if (static_cast<int64_t>(submeshes.size()) > kMaxSubmeshes) {
    return core::invalid_argument(fmt::format(
        "{} sub-meshes given; the stage DP takes at most {}", submeshes.size(), kMaxSubmeshes));
  }
  if (num_configs.size() != submeshes.size()) {
    return core::invalid_argument(fmt::format(
        "num_configs needs one count per sub-mesh: expected {}, got {}", submeshes.size(),
        num_configs.size()));
  }
  StageCostTable t;
  for (size_t m = 0; m < submeshes.size(); ++m) {
    const mesh::SubmeshShape& sm = submeshes[m];
    if (sm.num_hosts < 1 || sm.devices_per_host < 1) {
      return core::invalid_argument(fmt::format(
          "sub-mesh {} is {}; expected at least 1 host and 1 device per host", m,
          sm.to_string()));
    }
    if (sm.num_hosts > kMaxStageDevices / sm.devices_per_host) {
      return core::invalid_argument(fmt::format(
          "sub-mesh {} is {}: more than the {} devices the stage DP takes", m, sm.to_string(),
          kMaxStageDevices));
    }
    if (num_configs[m] < 1 || num_configs[m] > kMaxConfigs) {
      return core::invalid_argument(fmt::format(
          "sub-mesh {} needs between 1 and {} logical configs, got {}", m, kMaxConfigs,
          num_configs[m]));
    }
    t.config_offset_.push_back(t.total_configs_);
    t.total_configs_ += num_configs[m];
  }
  const int64_t entries = num_layers * num_layers * t.total_configs_;  // < 2^46
  if (entries > kMaxTableEntries) {
    return core::invalid_argument(fmt::format(
        "a stage cost table of {} × {} layers × {} configs has {} entries, more than the {} "
        "the stage DP takes; use fewer layers or configs", num_layers, num_layers,
        t.total_configs_, entries, kMaxTableEntries));
  }
  t.num_layers_ = num_layers;
  t.submeshes_ = std::move(submeshes);
  t.num_configs_ = std::move(num_configs);
  size_t size = static_cast<size_t>(entries);
  t.costs_.assign(size, kInf);
  t.max_n_succ_.assign(size, kUnboundedSuccessors);
  return t;
}

size_t StageCostTable::index(int64_t i, int64_t k, int64_t m, int64_t c) const {
  ALPA_CHECK(0 <= i && i <= k && k < num_layers_ && 0 <= m && m < num_submeshes() && 0 <= c &&
                 c < num_configs_[static_cast<size_t>(m)],
             "stage cost index (i={}, k={}, m={}, c={}) out of range for {} layers, {} sub-meshes",
             i, k, m, c, num_layers_, num_submeshes());
  return static_cast<size_t>((i * num_layers_ + k) * total_configs_ +
                             config_offset_[static_cast<size_t>(m)] + c);
}

core::Status StageCostTable::validate() const {
  for (int64_t i = 0; i < num_layers_; ++i) {
    for (int64_t k = i; k < num_layers_; ++k) {
      for (int64_t m = 0; m < num_submeshes(); ++m) {
        for (int64_t c = 0; c < num_configs(m); ++c) {
          double t = cost(i, k, m, c);
          int64_t bound = max_n_succ_stages(i, k, m, c);
          if (std::isnan(t) || t < 0) {
            return core::invalid_argument(fmt::format(
                "stage cost of layers {}..{} on sub-mesh {} config {} must be ≥ 0 seconds or "
                "+inf (infeasible), got {}", i, k, m, c, t));
          }
          if (std::isfinite(t) && t > kMaxStageCost) {
            return core::invalid_argument(fmt::format(
                "stage cost of layers {}..{} on sub-mesh {} config {} is {} s, above the "
                "largest finite cost {} s; use +inf for an infeasible stage", i, k, m, c, t,
                kMaxStageCost));
          }
          if (bound < kNeverFits) {
            return core::invalid_argument(fmt::format(
                "max_n_succ_stages of layers {}..{} on sub-mesh {} config {} must be ≥ -1 "
                "(-1 = never fits), got {}", i, k, m, c, bound));
          }
        }
      }
    }
  }
  return core::ok_status();
}

// ---- text forms ---------------------------------------------------------------

std::string StageChoice::to_string() const {
  return fmt::format("layers [{}, {}] submesh {} config {} cost {}", start_layer, end_layer,
                     submesh, config, cost);
}

std::string StageDPResult::to_string() const {
  std::string out = fmt::format("total_time {} t_max {} num_t_max_evaluated {}\n", total_time,
                                t_max, num_t_max_evaluated);
  for (size_t s = 0; s < stages.size(); ++s) {
    out += fmt::format("stage {}: {}\n", s, stages[s].to_string());
  }
  return out;
}

core::StatusOr<StageDPResult> StageDPResult::parse(const std::string& text) {
  std::istringstream in(text);
  std::string line;
  StageDPResult r;
  long long evaluated = 0;
  int used = -1;
  if (!std::getline(in, line) ||
      std::sscanf(line.c_str(), "total_time %lf t_max %lf num_t_max_evaluated %lld%n",
                  &r.total_time, &r.t_max, &evaluated, &used) != 3 ||
      used != static_cast<int>(line.size())) {
    return core::parse_error(fmt::format(
        "expected 'total_time <s> t_max <s> num_t_max_evaluated <n>' on line 1, got '{}'", line));
  }
  r.num_t_max_evaluated = evaluated;
  for (int64_t s = 0; std::getline(in, line); ++s) {
    if (line.empty()) continue;
    long long index, a, b, m, c;
    StageChoice st;
    used = -1;
    if (std::sscanf(line.c_str(), "stage %lld: layers [%lld, %lld] submesh %lld config %lld cost %lf%n",
                    &index, &a, &b, &m, &c, &st.cost, &used) != 6 ||
        used != static_cast<int>(line.size()) || index != s) {
      return core::parse_error(fmt::format(
          "expected 'stage {}: layers [<first>, <last>] submesh <m> config <c> cost <s>', got '{}'",
          s, line));
    }
    st.start_layer = a;
    st.end_layer = b;
    st.submesh = m;
    st.config = c;
    r.stages.push_back(st);
  }
  return r;
}

// ---- the solver -----------------------------------------------------------------

namespace {

/// InvalidArgument when the DP table F or the work of one DP run (min-plus
/// steps over device rows) is beyond what the stage DP takes.
core::Status check_dp_size(const Problem& p) {
  const int64_t entries = (p.num_buckets + 1) * (p.L + 1) * (p.D + 1);  // < 2^41
  if (entries > kMaxDpEntries) {
    return core::invalid_argument(fmt::format(
        "the stage DP table needs {} × {} × {} = {} entries (stage counts × layers × devices), "
        "more than the {} it takes; use fewer layers, devices or max_num_stages",
        p.num_buckets + 1, p.L + 1, p.D + 1, entries, kMaxDpEntries));
  }
  int64_t stage_steps = 0;  // (i, k, m) that admit some config
  for (size_t at = 0; at + 1 < p.steps_begin.size(); ++at) {
    stage_steps += p.steps_begin[at + 1] > p.steps_begin[at];
  }
  const double work = static_cast<double>(stage_steps) * static_cast<double>(p.num_buckets) *
                      static_cast<double>(p.D + 1);
  if (work > kMaxDpWork) {
    return core::invalid_argument(fmt::format(
        "one stage DP run would take {:.3g} steps ({} feasible stages × {} stage counts × {} "
        "device counts), more than the {:.3g} it takes; use fewer layers, sub-meshes, devices "
        "or max_num_stages", work, stage_steps, p.num_buckets, p.D + 1, kMaxDpWork));
  }
  return core::ok_status();
}

/// The most specific reason no plan exists.
core::Status explain_infeasible(const StageDPRequest& request, const Problem& p) {
  for (int64_t j = 0; j < p.L; ++j) {
    bool held = false;
    for (int64_t i = 0; i <= j && !held; ++i) {
      for (int64_t k = j; k < p.L && !held; ++k) {
        for (int64_t m = 0; m < p.M && !held; ++m) held = p.begin(i, k, m) != p.end(i, k, m);
      }
    }
    if (!held) {
      return core::infeasible(fmt::format(
          "no stage can hold layer {}: every stage cost covering it is +inf, has "
          "max_n_succ_stages = -1, or needs a sub-mesh larger than the {} devices", j, p.D));
    }
  }
  // The fewest sub-meshes of the table that add up to exactly D devices.
  std::vector<int64_t> sizes = p.devices;
  std::sort(sizes.begin(), sizes.end());
  sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
  constexpr int64_t kNone = std::numeric_limits<int64_t>::max();
  std::vector<int64_t> fewest(static_cast<size_t>(p.D + 1), kNone);
  fewest[0] = 0;
  for (int64_t d = 1; d <= p.D; ++d) {
    for (int64_t n : sizes) {
      if (n > d) break;
      int64_t before = fewest[static_cast<size_t>(d - n)];
      if (before != kNone) fewest[static_cast<size_t>(d)] = std::min(fewest[static_cast<size_t>(d)], before + 1);
    }
  }
  if (fewest[static_cast<size_t>(p.D)] > p.S) {
    return core::infeasible(fmt::format(
        "no {} or fewer sub-meshes add up to exactly {} devices (sub-mesh sizes: {}); every "
        "device must be used", p.S, p.D, fmt::join(p.devices, ", ")));
  }
  Problem relaxed = build_problem(request, /*ignore_memory=*/true);
  if (!check_dp_size(relaxed).ok()) {
    return core::infeasible(fmt::format(
        "no pipeline of at most {} stages covers layers 0..{} on exactly {} devices within the "
        "memory bounds (max_n_succ_stages)", p.S, p.L - 1, p.D));
  }
  StageTable table(relaxed);
  if (!relaxed.candidates.empty() && evaluate_at(&table, kInf).g < kInf) {
    return core::infeasible(fmt::format(
        "the memory bounds (max_n_succ_stages) rule out every pipeline of the {} layers on {} "
        "devices; without them a plan exists: give stages more devices or fewer layers", p.L, p.D));
  }
  return core::infeasible(fmt::format(
      "no pipeline of at most {} stages covers layers 0..{} on exactly {} devices: the finite "
      "stage costs do not combine into a plan", p.S, p.L - 1, p.D));
}

}  // namespace

core::StatusOr<StageDPResult> stage_dp(const StageDPRequest& request) {
  ALPA_RETURN_IF_ERROR(validate_request(request));
  Problem p = build_problem(request, /*ignore_memory=*/false);
  if (p.candidates.empty()) return explain_infeasible(request, p);
  ALPA_RETURN_IF_ERROR(check_dp_size(p));
  StageTable table(p);
  StageDPResult result = search_t_max(p, request.num_micro_batches, &table);
  if (result.stages.empty()) return explain_infeasible(request, p);
  return result;
}

core::StatusOr<double> evaluate_stages(const StageDPRequest& request,
                                       const std::vector<StageChoice>& stages) {
  ALPA_RETURN_IF_ERROR(validate_request(request));
  const StageCostTable& table = request.table;
  const int64_t num_stages = static_cast<int64_t>(stages.size());
  if (num_stages == 0) return core::invalid_argument("a plan needs at least one stage, got none");
  if (request.max_num_stages && num_stages > *request.max_num_stages) {
    return core::invalid_argument(fmt::format("the plan has {} stages, more than max_num_stages = {}",
                                              num_stages, *request.max_num_stages));
  }
  double sum = 0, slowest = 0;
  int64_t devices = 0, next_layer = 0;
  for (int64_t s = 0; s < num_stages; ++s) {
    const StageChoice& st = stages[static_cast<size_t>(s)];
    if (st.start_layer != next_layer || st.end_layer < st.start_layer ||
        st.end_layer >= table.num_layers()) {
      return core::invalid_argument(fmt::format(
          "stage {} covers layers [{}, {}]; expected it to start at layer {} and end by layer {}",
          s, st.start_layer, st.end_layer, next_layer, table.num_layers() - 1));
    }
    if (st.submesh < 0 || st.submesh >= table.num_submeshes() || st.config < 0 ||
        st.config >= table.num_configs(st.submesh)) {
      return core::invalid_argument(fmt::format(
          "stage {} uses sub-mesh {} config {}, which the table does not have", s, st.submesh,
          st.config));
    }
    double t = table.cost(st.start_layer, st.end_layer, st.submesh, st.config);
    int64_t bound = table.max_n_succ_stages(st.start_layer, st.end_layer, st.submesh, st.config);
    if (std::isinf(t)) return core::invalid_argument(fmt::format("stage {} is infeasible (cost +inf)", s));
    if (num_stages - 1 - s > bound) {
      return core::invalid_argument(fmt::format(
          "stage {} is followed by {} stages but fits in memory with at most {}", s,
          num_stages - 1 - s, bound));
    }
    sum += t;
    slowest = std::max(slowest, t);
    devices += table.submesh(st.submesh).num_devices();
    next_layer = st.end_layer + 1;
  }
  if (next_layer != table.num_layers()) {
    return core::invalid_argument(fmt::format("the stages cover layers 0..{} of 0..{}",
                                              next_layer - 1, table.num_layers() - 1));
  }
  if (devices != request.num_devices) {
    return core::invalid_argument(fmt::format("the stages use {} devices; expected exactly {}",
                                              devices, request.num_devices));
  }
  return sum + static_cast<double>(request.num_micro_batches - 1) * slowest;
}

}  // namespace alpa::inter_op
