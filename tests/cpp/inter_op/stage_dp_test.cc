// Tests stage_dp(): hand-built tables whose optima are written as arithmetic,
// binding memory bounds, infeasibility and validation messages, the text
// form, evaluate_stages(), and cross-checks against exhaustive enumeration
// (small instances) and a plain reference DP over every t_max (medium ones).
#include "inter_op/stage_dp.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include <gtest/gtest.h>

#include "core/check.h"

namespace alpa::inter_op {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
using mesh::SubmeshShape;

StageDPRequest make_request(int64_t layers, std::vector<SubmeshShape> submeshes,
                            std::vector<int64_t> configs, int64_t devices, int64_t micro_batches) {
  StageDPRequest r;
  r.table = StageCostTable::create(layers, std::move(submeshes), std::move(configs)).value();
  r.num_devices = devices;
  r.num_micro_batches = micro_batches;
  return r;
}

/// Two layers on 1 × 2 devices: one stage on (1, 2), or one per device.
StageDPRequest two_layer_request(int64_t micro_batches) {
  StageDPRequest r = make_request(2, {{1, 1}, {1, 2}}, {1, 1}, 2, micro_batches);
  StageCostTable& t = r.table;
  t.set_cost(0, 0, 0, 0, 1.0);
  t.set_cost(1, 1, 0, 0, 2.0);
  t.set_cost(0, 1, 1, 0, 2.5);
  t.set_cost(0, 0, 1, 0, 0.5);  // unusable: the other layer would need 2 more devices
  t.set_cost(1, 1, 1, 0, 1.0);
  return r;
}

StageDPResult solve_ok(const StageDPRequest& r) {
  auto result = stage_dp(r);
  EXPECT_TRUE(result.ok()) << result.status().to_string();
  return result.ok() ? *result : StageDPResult{};
}

TEST(StageDPTest, SingleLayerSingleDevice) {
  StageDPRequest r = make_request(1, {{1, 1}}, {1}, 1, 4);
  r.table.set_cost(0, 0, 0, 0, 2.0);
  StageDPResult s = solve_ok(r);
  EXPECT_DOUBLE_EQ(s.total_time, 2.0 + 3 * 2.0);
  EXPECT_DOUBLE_EQ(s.t_max, 2.0);
  EXPECT_EQ(s.stages, (std::vector<StageChoice>{{0, 0, 0, 0, 2.0}}));
}

TEST(StageDPTest, OneMicrobatchMinimizesTheSum) {
  StageDPResult s = solve_ok(two_layer_request(1));
  EXPECT_DOUBLE_EQ(s.total_time, 2.5);  // one stage 2.5 beats 1 + 2
  EXPECT_EQ(s.stages, (std::vector<StageChoice>{{0, 1, 1, 0, 2.5}}));
}

TEST(StageDPTest, ManyMicrobatchesFavourTheShorterSlowestStage) {
  StageDPResult s = solve_ok(two_layer_request(4));
  EXPECT_DOUBLE_EQ(s.total_time, (1.0 + 2.0) + 3 * 2.0);  // 9 < 2.5 + 3 * 2.5
  EXPECT_DOUBLE_EQ(s.t_max, 2.0);
  EXPECT_EQ(s.stages, (std::vector<StageChoice>{{0, 0, 0, 0, 1.0}, {1, 1, 0, 0, 2.0}}));
  EXPECT_EQ(s.to_string(),
            "total_time 9 t_max 2 num_t_max_evaluated " + std::to_string(s.num_t_max_evaluated) +
                "\n"
                "stage 0: layers [0, 0] submesh 0 config 0 cost 1\n"
                "stage 1: layers [1, 1] submesh 0 config 0 cost 2\n");
}

TEST(StageDPTest, MaxNumStagesCapsThePipeline) {
  StageDPRequest r = two_layer_request(4);
  r.max_num_stages = 1;
  EXPECT_DOUBLE_EQ(solve_ok(r).total_time, 2.5 + 3 * 2.5);
}

TEST(StageDPTest, MemoryBoundForbidsASuccessor) {
  StageDPRequest r = two_layer_request(4);
  r.table.set_max_n_succ_stages(0, 0, 0, 0, 0);  // layer 0 alone fits only as the last stage
  StageDPResult s = solve_ok(r);
  EXPECT_DOUBLE_EQ(s.total_time, 2.5 + 3 * 2.5);
  EXPECT_EQ(s.stages.size(), 1u);
}

TEST(StageDPTest, MemoryBoundPicksTheCheaperConfigThatFits) {
  StageDPRequest r = make_request(2, {{1, 1}, {1, 2}}, {2, 1}, 2, 4);
  StageCostTable& t = r.table;
  t.set_cost(0, 0, 0, 0, 1.0);
  t.set_max_n_succ_stages(0, 0, 0, 0, 0);
  t.set_cost(0, 0, 0, 1, 1.5);  // slower config, fits with one stage after it
  t.set_max_n_succ_stages(0, 0, 0, 1, 1);
  t.set_cost(1, 1, 0, 0, 2.0);
  t.set_cost(1, 1, 0, 1, 3.0);
  t.set_cost(0, 1, 1, 0, 2.5);
  StageDPResult s = solve_ok(r);
  EXPECT_DOUBLE_EQ(s.total_time, (1.5 + 2.0) + 3 * 2.0);  // 9.5 < 10
  EXPECT_EQ(s.stages, (std::vector<StageChoice>{{0, 0, 0, 1, 1.5}, {1, 1, 0, 0, 2.0}}));
}

TEST(StageDPTest, ThreeStagesOnTwoHosts) {
  // 3 layers of cost 3 on one device, 2 on (1, 2), 1.25 on (2, 2); a stage
  // of j layers costs j times that. 2 hosts × 2 devices.
  StageDPRequest r = make_request(3, {{1, 1}, {1, 2}, {2, 2}}, {1, 1, 1}, 4, 8);
  const double per_layer[] = {3.0, 2.0, 1.25};
  for (int64_t i = 0; i < 3; ++i) {
    for (int64_t k = i; k < 3; ++k) {
      for (int64_t m = 0; m < 3; ++m) r.table.set_cost(i, k, m, 0, (k - i + 1) * per_layer[m]);
    }
  }
  // Candidates: (2,2) all layers 3.75 + 7·3.75 = 30; [0] on (1,2) + [1,2]
  // on (1,2): 2 + 4 + 7·4 = 34; three stages 1+1+2 devices: 3+3+2 + 7·3 = 29.
  StageDPResult s = solve_ok(r);
  EXPECT_DOUBLE_EQ(s.total_time, (3.0 + 3.0 + 2.0) + 7 * 3.0);
  EXPECT_EQ(s.stages.size(), 3u);
  EXPECT_DOUBLE_EQ(evaluate_stages(r, s.stages).value(), s.total_time);
}

// ---- infeasibility and validation ---------------------------------------------

TEST(StageDPTest, InfeasibleLayer) {
  StageDPRequest r = two_layer_request(4);
  r.table.set_cost(1, 1, 0, 0, kInf);
  r.table.set_max_n_succ_stages(1, 1, 1, 0, kNeverFits);
  r.table.set_cost(0, 1, 1, 0, kInf);
  auto s = stage_dp(r);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), core::StatusCode::kInfeasible);
  EXPECT_EQ(s.status().message(),
            "no stage can hold layer 1: every stage cost covering it is +inf, has "
            "max_n_succ_stages = -1, or needs a sub-mesh larger than the 2 devices");
}

TEST(StageDPTest, InfeasibleDeviceCount) {
  StageDPRequest r = make_request(2, {{1, 2}}, {1}, 3, 1);
  for (int64_t i = 0; i < 2; ++i) {
    for (int64_t k = i; k < 2; ++k) r.table.set_cost(i, k, 0, 0, 1.0);
  }
  auto s = stage_dp(r);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().message(),
            "no 2 or fewer sub-meshes add up to exactly 3 devices (sub-mesh sizes: 2); every "
            "device must be used");
}

TEST(StageDPTest, InfeasibleMemory) {
  StageDPRequest r = two_layer_request(4);
  r.table.set_max_n_succ_stages(0, 0, 0, 0, 0);
  r.table.set_max_n_succ_stages(0, 1, 1, 0, kNeverFits);
  auto s = stage_dp(r);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), core::StatusCode::kInfeasible);
  EXPECT_EQ(s.status().message(),
            "the memory bounds (max_n_succ_stages) rule out every pipeline of the 2 layers on 2 "
            "devices; without them a plan exists: give stages more devices or fewer layers");
}

TEST(StageDPTest, InfeasibleCombination) {
  StageDPRequest r = two_layer_request(4);
  r.table.set_cost(0, 1, 1, 0, kInf);
  r.table.set_cost(1, 1, 0, 0, kInf);  // layer 1 only on (1, 2), layer 0 then has no device
  auto s = stage_dp(r);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().message(),
            "no pipeline of at most 2 stages covers layers 0..1 on exactly 2 devices: the finite "
            "stage costs do not combine into a plan");
}

TEST(StageDPTest, ValidationMessages) {
  auto bad_configs = StageCostTable::create(2, {{1, 1}, {1, 2}}, {1});
  ASSERT_FALSE(bad_configs.ok());
  EXPECT_EQ(bad_configs.status().message(),
            "num_configs needs one count per sub-mesh: expected 2, got 1");
  EXPECT_EQ(StageCostTable::create(0, {{1, 1}}, {1}).status().message(),
            "num_layers must be ≥ 1, got 0");
  EXPECT_FALSE(StageCostTable::create(1, {{1, 1}}, {0}).ok());
  EXPECT_FALSE(StageCostTable::create(1, {}, {}).ok());

  StageDPRequest r = two_layer_request(4);
  r.table.set_cost(1, 1, 0, 0, -1.0);
  EXPECT_EQ(stage_dp(r).status().message(),
            "stage cost of layers 1..1 on sub-mesh 0 config 0 must be ≥ 0 seconds or +inf "
            "(infeasible), got -1");
  r.table.set_cost(1, 1, 0, 0, std::nan(""));
  EXPECT_EQ(stage_dp(r).status().code(), core::StatusCode::kInvalidArgument);
  r = two_layer_request(4);
  r.table.set_max_n_succ_stages(0, 1, 1, 0, -2);
  EXPECT_EQ(stage_dp(r).status().message(),
            "max_n_succ_stages of layers 0..1 on sub-mesh 1 config 0 must be ≥ -1 (-1 = never "
            "fits), got -2");
  r = two_layer_request(0);
  EXPECT_EQ(stage_dp(r).status().message(), "num_micro_batches must be ≥ 1, got 0");
  r = two_layer_request(1);
  r.num_devices = 0;
  EXPECT_EQ(stage_dp(r).status().message(), "num_devices must be ≥ 1, got 0");
  r = two_layer_request(1);
  r.max_num_stages = 0;
  EXPECT_EQ(stage_dp(r).status().message(), "max_num_stages must be ≥ 1 when given, got 0");
  EXPECT_EQ(stage_dp(StageDPRequest{}).status().message(),
            "the stage cost table is empty (0 layers); build it with StageCostTable::create");
  EXPECT_THROW(r.table.cost(1, 0, 0, 0), core::InternalError);
}

TEST(StageDPTest, SizesAreBoundedBeforeAnythingIsAllocated) {
  // Issue 11 #4: a sub-mesh of 2^63-1 devices segfaulted; 2^62 × 2^62
  // overflowed int64 into a plan with a negative total time.
  constexpr int64_t kBig = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(StageCostTable::create(1, {{kBig, 1}}, {1}).status().message(),
            "sub-mesh 0 is (9223372036854775807, 1): more than the 65536 devices the stage DP "
            "takes");
  EXPECT_EQ(StageCostTable::create(1, {{int64_t{1} << 62, int64_t{1} << 62}}, {1}).status().code(),
            core::StatusCode::kInvalidArgument);
  EXPECT_EQ(StageCostTable::create(kBig, {{1, 1}}, {1}).status().message(),
            "num_layers is 9223372036854775807; the stage DP takes at most 4096 layers");
  EXPECT_EQ(StageCostTable::create(1, {{1, 1}}, {kBig}).status().message(),
            "sub-mesh 0 needs between 1 and 1024 logical configs, got 9223372036854775807");
  EXPECT_NE(StageCostTable::create(4096, {{1, 1}, {1, 2}}, {1, 1}).status().message().find(
                "has 33554432 entries, more than the 16777216 the stage DP takes"),
            std::string::npos);
  EXPECT_EQ(StageCostTable::create(1, std::vector<SubmeshShape>(5000, {1, 1}),
                                   std::vector<int64_t>(5000, 1)).status().message(),
            "5000 sub-meshes given; the stage DP takes at most 4096");

  StageDPRequest r = make_request(1, {{1, 1}}, {1}, kBig, 1);
  r.table.set_cost(0, 0, 0, 0, 1.0);
  EXPECT_EQ(stage_dp(r).status().message(),
            "num_devices is 9223372036854775807; the stage DP takes at most 65536 devices");
  r.num_devices = 1;
  r.num_micro_batches = kBig;
  EXPECT_EQ(stage_dp(r).status().message(),
            "num_micro_batches is 9223372036854775807; the stage DP takes at most 1073741824");
  r.num_micro_batches = 1;
  r.table.set_cost(0, 0, 0, 0, 1e300);  // sums of such costs overflow to +inf
  EXPECT_EQ(stage_dp(r).status().message(),
            "stage cost of layers 0..0 on sub-mesh 0 config 0 is 1e+300 s, above the largest "
            "finite cost 1e+30 s; use +inf for an infeasible stage");

  // At the limits the DP still answers, exactly.
  StageDPRequest wide = make_request(1, {{1, kMaxStageDevices}}, {1}, kMaxStageDevices, 1 << 30);
  wide.table.set_cost(0, 0, 0, 0, 2.0);
  auto result = stage_dp(wide);
  ASSERT_TRUE(result.ok()) << result.status().to_string();
  EXPECT_DOUBLE_EQ(result->total_time, 2.0 + ((1 << 30) - 1) * 2.0);
  EXPECT_GE(result->total_time, 0.0);
}

TEST(StageDPTest, DpTableAndWorkAreBounded) {
  // 64 layers on 65536 devices, up to 63 stages: F alone would need
  // 64 × 65 × 65537 doubles.
  std::vector<SubmeshShape> subs;
  for (int64_t n = 1; n <= kMaxStageDevices; n *= 2) subs.push_back({1, n});
  StageDPRequest r = make_request(64, subs, std::vector<int64_t>(subs.size(), 1),
                                  kMaxStageDevices, 4);
  for (int64_t i = 0; i < 64; ++i) {
    for (int64_t k = i; k < 64; ++k) {
      for (int64_t m = 0; m < r.table.num_submeshes(); ++m) r.table.set_cost(i, k, m, 0, 1.0);
    }
  }
  r.max_num_stages = 63;
  auto s = stage_dp(r);
  ASSERT_EQ(s.status().code(), core::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("the stage DP table needs 64 × 65 × 65537"),
            std::string::npos) << s.status().message();
  // A table that fits, but 528 layer spans × 256 sub-meshes × 8 stage counts
  // × 65537 device counts per t_max would not end in useful time.
  std::vector<SubmeshShape> hosts;
  for (int64_t h = 1; h <= 256; ++h) hosts.push_back({h, 1});
  r = make_request(32, hosts, std::vector<int64_t>(hosts.size(), 1), kMaxStageDevices, 4);
  for (int64_t i = 0; i < 32; ++i) {
    for (int64_t k = i; k < 32; ++k) {
      for (int64_t m = 0; m < 256; ++m) {
        r.table.set_cost(i, k, m, 0, 1.0);
        r.table.set_max_n_succ_stages(i, k, m, 0, 6);
      }
    }
  }
  s = stage_dp(r);
  ASSERT_EQ(s.status().code(), core::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("one stage DP run would take 7.09e+10 steps"),
            std::string::npos) << s.status().message();
}

TEST(StageDPTest, EvaluateStagesChecksEveryRule) {
  StageDPRequest r = two_layer_request(4);
  EXPECT_DOUBLE_EQ(evaluate_stages(r, {{0, 0, 0, 0, 1.0}, {1, 1, 0, 0, 2.0}}).value(), 9.0);
  EXPECT_EQ(evaluate_stages(r, {{0, 0, 0, 0, 1.0}}).status().message(),
            "the stages cover layers 0..0 of 0..1");
  EXPECT_EQ(evaluate_stages(r, {{0, 0, 0, 0, 1.0}, {0, 1, 0, 0, 2.0}}).status().message(),
            "stage 1 covers layers [0, 1]; expected it to start at layer 1 and end by layer 1");
  EXPECT_EQ(evaluate_stages(r, {{0, 0, 1, 0, 0.5}, {1, 1, 1, 0, 1.0}}).status().message(),
            "the stages use 4 devices; expected exactly 2");
  EXPECT_EQ(evaluate_stages(r, {{0, 1, 0, 0, 0}}).status().message(),
            "stage 0 is infeasible (cost +inf)");
  r.table.set_max_n_succ_stages(0, 0, 0, 0, 0);
  EXPECT_EQ(evaluate_stages(r, {{0, 0, 0, 0, 1.0}, {1, 1, 0, 0, 2.0}}).status().message(),
            "stage 0 is followed by 1 stages but fits in memory with at most 0");
  EXPECT_EQ(evaluate_stages(r, {{0, 1, 1, 3, 0}}).status().message(),
            "stage 0 uses sub-mesh 1 config 3, which the table does not have");
}

TEST(StageDPTest, ResultTextRoundTrip) {
  StageDPResult s = solve_ok(two_layer_request(4));
  s.stages[0].cost = 0.1;  // doubles must survive the text form exactly
  s.total_time = 1.0 / 3.0;
  auto back = StageDPResult::parse(s.to_string());
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(back->to_string(), s.to_string());
  EXPECT_EQ(back->stages, s.stages);
  EXPECT_EQ(back->total_time, s.total_time);
  auto bad = StageDPResult::parse("total_time 1 t_max 1 num_t_max_evaluated 1\nstage 3: x\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "expected 'stage 0: layers [<first>, <last>] submesh <m> config <c> cost <s>', got "
            "'stage 3: x'");
  EXPECT_EQ(StageDPResult::parse("total 1").status().code(), core::StatusCode::kParseError);
}

// ---- cross-checks ------------------------------------------------------------------

/// Exhaustive search over contiguous partitions × sub-mesh × config choices.
class BruteForce {
 public:
  BruteForce(const StageDPRequest& r, bool ignore_memory) : r_(r), ignore_memory_(ignore_memory) {}
  double solve() {
    go(0, 0);
    return best_;
  }

 private:
  void go(int64_t layer, int64_t devices) {
    const StageCostTable& t = r_.table;
    if (layer == t.num_layers()) {
      if (devices == r_.num_devices) finish();
      return;
    }
    for (int64_t k = layer; k < t.num_layers(); ++k) {
      for (int64_t m = 0; m < t.num_submeshes(); ++m) {
        int64_t n = t.submesh(m).num_devices();
        if (devices + n > r_.num_devices) continue;
        for (int64_t c = 0; c < t.num_configs(m); ++c) {
          if (std::isinf(t.cost(layer, k, m, c))) continue;
          stack_.push_back({layer, k, m, c, t.cost(layer, k, m, c)});
          go(k + 1, devices + n);
          stack_.pop_back();
        }
      }
    }
  }
  void finish() {
    const int64_t count = static_cast<int64_t>(stack_.size());
    if (r_.max_num_stages && count > *r_.max_num_stages) return;
    double sum = 0, slowest = 0;
    for (int64_t s = 0; s < count; ++s) {
      const StageChoice& st = stack_[static_cast<size_t>(s)];
      int64_t bound = r_.table.max_n_succ_stages(st.start_layer, st.end_layer, st.submesh, st.config);
      if (!ignore_memory_ && count - 1 - s > bound) return;
      sum += st.cost;
      slowest = std::max(slowest, st.cost);
    }
    best_ = std::min(best_, sum + static_cast<double>(r_.num_micro_batches - 1) * slowest);
  }

  const StageDPRequest& r_;
  bool ignore_memory_;
  std::vector<StageChoice> stack_;
  double best_ = kInf;
};

/// Random costs that grow with the layer count and shrink sublinearly with
/// devices; some entries infeasible, some bounded in memory.
StageDPRequest random_request(std::mt19937* rng, int64_t layers, int64_t hosts, int64_t per_host,
                              int64_t configs, bool bounds, bool ties) {
  std::uniform_real_distribution<double> u(0, 1);
  auto cluster = mesh::cluster_preset("a100-40gb", hosts, per_host).value();
  std::vector<SubmeshShape> subs = mesh::enumerate_submeshes(cluster);
  StageDPRequest r = make_request(layers, subs, std::vector<int64_t>(subs.size(), configs),
                                  cluster.num_devices(), 1);
  std::vector<double> work;
  for (int64_t j = 0; j < layers; ++j) work.push_back(1 + 2 * u(*rng));
  for (int64_t i = 0; i < layers; ++i) {
    for (int64_t k = i; k < layers; ++k) {
      double w = 0;
      for (int64_t j = i; j <= k; ++j) w += work[static_cast<size_t>(j)];
      for (size_t m = 0; m < subs.size(); ++m) {
        for (int64_t c = 0; c < configs; ++c) {
          double t = w / std::pow(static_cast<double>(subs[m].num_devices()), 0.7) * (0.8 + 0.4 * u(*rng));
          if (ties) t = std::round(t * 2) / 2;
          if (u(*rng) < 0.15) t = kInf;
          r.table.set_cost(i, k, static_cast<int64_t>(m), c, t);
          if (bounds && u(*rng) < 0.6) {
            r.table.set_max_n_succ_stages(i, k, static_cast<int64_t>(m), c,
                                          static_cast<int64_t>((*rng)() % 5) - 1);
          }
        }
      }
    }
  }
  return r;
}

TEST(StageDPTest, MatchesBruteForceOnRandomInstances) {
  std::mt19937 rng(2022);
  const int64_t clusters[][2] = {{1, 1}, {1, 2}, {1, 4}, {2, 2}, {1, 8}};
  const int64_t micro_batches[] = {1, 2, 8};
  int solved = 0, infeasible = 0, memory_binding = 0;
  for (int trial = 0; trial < 240; ++trial) {
    const auto& shape = clusters[trial % 5];
    int64_t layers = 1 + static_cast<int64_t>(rng() % 6);
    int64_t configs = 1 + static_cast<int64_t>(rng() % 3);
    if (shape[1] == 8) layers = std::min<int64_t>(layers, 5);
    StageDPRequest r = random_request(&rng, layers, shape[0], shape[1], configs, trial % 2 == 0,
                                      trial % 3 == 0);
    r.num_micro_batches = micro_batches[(trial / 5) % 3];
    if (trial % 7 == 3) r.max_num_stages = 1 + static_cast<int64_t>(rng() % 3);
    double expected = BruteForce(r, false).solve();
    auto got = stage_dp(r);
    SCOPED_TRACE("trial " + std::to_string(trial));
    if (std::isinf(expected)) {
      ASSERT_FALSE(got.ok());
      EXPECT_EQ(got.status().code(), core::StatusCode::kInfeasible);
      ++infeasible;
      continue;
    }
    ASSERT_TRUE(got.ok()) << got.status().to_string();
    EXPECT_NEAR(got->total_time, expected, 1e-9 * expected);
    double recomputed = evaluate_stages(r, got->stages).value();
    EXPECT_NEAR(recomputed, got->total_time, 1e-9 * expected);
    double slowest = 0;
    for (const auto& st : got->stages) slowest = std::max(slowest, st.cost);
    EXPECT_EQ(got->t_max, slowest);
    if (BruteForce(r, true).solve() < expected) ++memory_binding;
    ++solved;
  }
  EXPECT_GE(solved, 200);
  EXPECT_GT(infeasible, 0);
  EXPECT_GE(memory_binding, 10);  // the bounds change the optimum
}

/// Plain F(s, i, d) over every distinct cost as t_max: no config collapse,
/// no buckets, no pruning.
double reference_dp(const StageDPRequest& r) {
  const StageCostTable& t = r.table;
  const int64_t L = t.num_layers(), D = r.num_devices, S = std::min(L, D);
  std::vector<double> candidates;
  for (int64_t i = 0; i < L; ++i)
    for (int64_t k = i; k < L; ++k)
      for (int64_t m = 0; m < t.num_submeshes(); ++m)
        for (int64_t c = 0; c < t.num_configs(m); ++c)
          if (!std::isinf(t.cost(i, k, m, c))) candidates.push_back(t.cost(i, k, m, c));
  double best = kInf;
  auto at = [&](std::vector<double>& f, int64_t s, int64_t i, int64_t d) -> double& {
    return f[static_cast<size_t>((s * (L + 1) + i) * (D + 1) + d)];
  };
  for (double t_max : candidates) {
    std::vector<double> f(static_cast<size_t>((S + 1) * (L + 1) * (D + 1)), kInf);
    at(f, 0, L, 0) = 0;
    for (int64_t s = 1; s <= S; ++s)
      for (int64_t i = L - 1; i >= 0; --i)
        for (int64_t d = 1; d <= D; ++d)
          for (int64_t k = i; k < L; ++k)
            for (int64_t m = 0; m < t.num_submeshes(); ++m)
              for (int64_t c = 0; c < t.num_configs(m); ++c) {
                int64_t n = t.submesh(m).num_devices();
                double cost = t.cost(i, k, m, c);
                if (n > d || cost > t_max || s - 1 > t.max_n_succ_stages(i, k, m, c)) continue;
                at(f, s, i, d) = std::min(at(f, s, i, d), at(f, s - 1, k + 1, d - n) + cost);
              }
    for (int64_t s = 1; s <= S; ++s) {
      best = std::min(best, at(f, s, 0, D) + static_cast<double>(r.num_micro_batches - 1) * t_max);
    }
  }
  return best;
}

TEST(StageDPTest, MatchesReferenceDPOnMediumInstances) {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 4; ++trial) {
    StageDPRequest r = random_request(&rng, 8, 2, 4, 2, trial % 2 == 0, trial == 1);
    r.num_micro_batches = trial == 3 ? 2 : 16;
    double expected = reference_dp(r);
    auto got = stage_dp(r);
    ASSERT_TRUE(got.ok()) << got.status().to_string();
    EXPECT_NEAR(got->total_time, expected, 1e-9 * expected) << "trial " << trial;
    EXPECT_LT(got->num_t_max_evaluated, 60);
  }
}

TEST(StageDPTest, LargeInstanceIsFastAndConsistent) {
  std::mt19937 rng(11);
  StageDPRequest r = random_request(&rng, 32, 4, 8, 5, true, false);
  r.num_micro_batches = 64;
  auto got = stage_dp(r);
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_NEAR(evaluate_stages(r, got->stages).value(), got->total_time, 1e-9 * got->total_time);
  auto again = stage_dp(r);
  EXPECT_EQ(again->to_string(), got->to_string());  // deterministic
}

}  // namespace
}  // namespace alpa::inter_op
