// This file implements PipelineExecutor: one training step of a pipeshard
// plan on this device — the schedule's actions for the device's stage
// (F, B, SEND_F, RECV_F, SEND_B, RECV_B; plan/schedule.h), with cross-mesh
// resharding of every boundary value (plan/cross_mesh.h) over c10d p2p, and
// gradient accumulation over microbatches by autograd.
//
//   stage s (devices of sub-mesh s)            stage s+1
//   RECV_F mb ─▶ F mb ─▶ SEND_F mb ───────────▶ RECV_F mb ─▶ F mb ─ ...
//   SEND_B mb ◀─ B mb ◀─ RECV_B mb ◀─────────── SEND_B mb ◀─ B mb ─ ...
//
// The stage's compute is a StageRunner (a Python FX GraphModule, or C++);
// the executor keeps each microbatch's autograd graph from F to B and runs
// backward itself, so the runner is called only for forward compute.
#pragma once

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "plan/cross_mesh.h"
#include "plan/plan.h"
#include "plan/schedule.h"

namespace alpa::runtime {

/// The compute of the stage this device belongs to.
class StageRunner {
 public:
  virtual ~StageRunner() = default;
  /// Forward of `micro_batch`. `inputs`: the received boundary values (this
  /// device's shards, in StagePlan::inputs order; empty on stage 0, whose
  /// runner reads the user's batch). Returns the boundary outputs in
  /// StagePlan::outputs order; the last stage returns one scalar loss.
  virtual std::vector<at::Tensor> forward(int64_t stage, int64_t micro_batch,
                                          const std::vector<at::Tensor>& inputs) = 0;
};

/// One boundary value's moves between neighbouring stages.
struct BoundaryValuePlan {
  plan::StageValue value;
  plan::CrossMeshPlan forward;   ///< producer's layout -> consumer's layout
  plan::CrossMeshPlan backward;  ///< gradient: consumer's layout -> producer's
  std::vector<int64_t> producer_local_shape;  ///< on this device, if it produces
  std::vector<int64_t> consumer_local_shape;  ///< on this device, if it consumes
};

struct ExecutorOptions {
  std::chrono::milliseconds timeout{120000};  ///< every p2p wait
  /// Gradient of each microbatch's loss (1/B: the step's loss is the mean).
  double loss_scale = 1.0;
};

class PipelineExecutor {
 public:
  /// `device`: this process's global rank (device id of the plan).
  /// `group_name`: the c10d group (usually the world) used for p2p; its
  /// ranks must equal the plan's device ids.
  static std::unique_ptr<PipelineExecutor> create(const plan::Plan& plan, int64_t device,
                                                  const std::string& group_name,
                                                  ExecutorOptions options = {});

  /// Runs one step (every microbatch's forward and backward). Returns each
  /// microbatch's loss on the last stage's devices, nothing elsewhere.
  /// A failed or timed-out transfer is raised through runtime/failures.h
  /// (its hook, else c10::DistBackendError) naming the action, microbatch,
  /// value and peer device; other errors (the runner's) propagate as they are.
  std::vector<double> run(StageRunner& runner);

  int64_t stage() const { return stage_; }
  const plan::Schedule& schedule() const { return schedule_; }
  /// This device's action list, as text ("F0 SEND_F0 ...").
  std::string actions_text() const;

 private:
  PipelineExecutor() = default;
  struct MicroBatch;
  void recv_values(int64_t boundary, int64_t mb, bool grads, std::vector<at::Tensor>& out);
  void send_values(int64_t boundary, int64_t mb, bool grads, const std::vector<at::Tensor>& in);
  void backward(int64_t mb, MicroBatch& m);
  int tag(int64_t boundary, int64_t mb, bool grads, int64_t value, int64_t transfer) const;
  void wait_sends();
  /// Raises a failed transfer through runtime/failures.h (never returns).
  [[noreturn]] void fail_transfer(const char* what, const char* action, int64_t mb,
                                  const std::string& value, int64_t peer, const std::string& error);

  int64_t device_ = 0;
  int64_t stage_ = 0;
  int64_t num_stages_ = 1;
  int64_t num_micro_batches_ = 1;
  plan::Schedule schedule_;
  std::vector<plan::Action> actions_;
  /// [b] = values crossing from stage b to stage b + 1.
  std::vector<std::vector<BoundaryValuePlan>> boundaries_;
  c10::intrusive_ptr<c10d::ProcessGroup> group_;
  std::string group_name_;
  ExecutorOptions options_;
  struct PendingSend {
    c10::intrusive_ptr<c10d::Work> work;
    at::Tensor buffer;  ///< kept alive until the send completes
    int64_t peer;
    int64_t boundary;
    int64_t mb;
    bool grads;
    std::string value;
  };
  std::vector<PendingSend> pending_;
  int64_t max_transfers_ = 1;
};

}  // namespace alpa::runtime
