// This file implements train_pipeline: pipeline-parallel training of a small
// MLP from C++, on 2 processes it launches itself, with alpa_torch's
// planner and C++ PipelineExecutor.
//
//   launcher (this binary, no flags): hosts a c10d::TCPStore, re-runs itself
//   │                                 as --rank 0 and --rank 1, waits for both
//   ├─ rank 0: stage 0 = fc1 + relu  ── F/SEND_F ──▶ ┐  1F1B schedule over
//   └─ rank 1: stage 1 = fc2 + MSE   ◀── SEND_B ──── ┘  4 microbatches
//
// Each rank builds the graph of ONE microbatch with ir::GraphBuilder, plans
// it with make_pipeshard_plan (manual stages: layer boundary "fc2", stage
// meshes 1x1 and 1x1), creates a c10d::ProcessGroup over the store, and runs
// 20 SGD steps; its StageRunner runs the torch::nn modules of its stage.
// Rank 1 also trains the same model in one process and checks that the
// pipeline's losses equal those (1e-5) and that the loss falls. Exit code:
// 0 when every check passes, 1 otherwise.
//
// The process group's p2p goes through the TCPStore (StoreP2PBackend
// below): the torch wheel ships no Gloo headers, so a C++ program cannot
// construct c10d::ProcessGroupGloo; the executor works with any
// c10d::ProcessGroup (Gloo, NCCL, ...) registered under a name.
#include <alpa_torch/alpa.h>

#include <torch/csrc/distributed/c10d/GroupRegistry.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/nn/modules/linear.h>
#include <torch/optim/sgd.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <iostream>
#include <map>
#include <thread>

namespace {

constexpr int kWorld = 2;
constexpr int64_t kBatch = 16, kMicroBatches = 4, kIn = 16, kHidden = 32, kOut = 4;
constexpr int kSteps = 20;
constexpr double kLearningRate = 0.5;
const char* const kGroupName = "alpa_example";

// ---- a c10d backend whose send/recv go through the store -------------------

/// A Work that runs `finish` (with the wait's timeout) on the first wait().
class StoreWork : public c10d::Work {
 public:
  explicit StoreWork(std::function<void(std::chrono::milliseconds)> finish)
      : finish_(std::move(finish)) {}
  bool wait(std::chrono::milliseconds timeout) override {
    if (!done_) finish_(timeout);
    done_ = true;
    return true;
  }
  bool isCompleted() override { return done_; }

 private:
  std::function<void(std::chrono::milliseconds)> finish_;
  bool done_ = false;
};

/// Point-to-point messages as store keys "p2p/<src>/<dst>/<tag>/<n>": the
/// n-th message with this tag between the two ranks (both sides count, so
/// tags may repeat every step). Sends complete at once; a recv waits for
/// its key, copies the bytes and deletes the key.
class StoreP2PBackend : public c10d::Backend {
 public:
  StoreP2PBackend(c10::intrusive_ptr<c10d::Store> store, int rank, int size)
      : Backend(rank, size), store_(std::move(store)) {}

  const std::string getBackendName() const override { return "alpa_example_store_p2p"; }

  c10::intrusive_ptr<c10d::Work> send(std::vector<at::Tensor>& tensors, int dst,
                                      int tag) override {
    TORCH_CHECK(tensors.size() == 1, "StoreP2PBackend sends one tensor at a time");
    const at::Tensor t = tensors[0].contiguous();
    std::vector<uint8_t> bytes(t.nbytes());
    std::memcpy(bytes.data(), t.data_ptr(), bytes.size());
    store_->set(key(getRank(), dst, tag, sent_[{dst, tag}]++), bytes);
    return c10::make_intrusive<StoreWork>([](std::chrono::milliseconds) {});
  }

  c10::intrusive_ptr<c10d::Work> recv(std::vector<at::Tensor>& tensors, int src,
                                      int tag) override {
    TORCH_CHECK(tensors.size() == 1 && tensors[0].is_contiguous(),
                "StoreP2PBackend receives into one contiguous tensor");
    const std::string k = key(src, getRank(), tag, received_[{src, tag}]++);
    at::Tensor out = tensors[0];
    auto store = store_;
    return c10::make_intrusive<StoreWork>([store, k, out](std::chrono::milliseconds timeout) {
      store->wait({k}, timeout.count() > 0 ? timeout : store->getTimeout());
      const std::vector<uint8_t> bytes = store->get(k);
      TORCH_CHECK(bytes.size() == out.nbytes(), "message ", k, " has ", bytes.size(),
                  " bytes, the receiving tensor ", out.nbytes());
      std::memcpy(out.data_ptr(), bytes.data(), bytes.size());
      store->deleteKey(k);
    });
  }

 private:
  static std::string key(int src, int dst, int tag, int64_t n) {
    return "p2p/" + std::to_string(src) + "/" + std::to_string(dst) + "/" +
           std::to_string(tag) + "/" + std::to_string(n);
  }
  c10::intrusive_ptr<c10d::Store> store_;
  std::map<std::pair<int, int>, int64_t> sent_, received_;
};

c10::intrusive_ptr<c10d::ProcessGroup> make_group(c10::intrusive_ptr<c10d::Store> store,
                                                  int rank) {
  auto group = c10::make_intrusive<c10d::ProcessGroup>(store, rank, kWorld);
  auto backend = c10::make_intrusive<StoreP2PBackend>(store, rank, kWorld);
  group->setBackend(c10::DeviceType::CPU, c10d::ProcessGroup::BackendType::CUSTOM, backend);
  group->setDefaultBackend(c10d::ProcessGroup::BackendType::CUSTOM);
  return group;
}

// ---- the model, its plan, and the stage runner ------------------------------

template <typename T>
T unwrap(alpa::core::StatusOr<T> value, const char* what) {
  TORCH_CHECK(value.ok(), what, ": ", value.status().to_string());
  return std::move(value).value();
}

/// The graph of one microbatch: x[4,16] -> fc1 -> relu -> fc2 -> y[4,4].
alpa::ir::Graph model_graph() {
  using alpa::ir::DType;
  alpa::ir::GraphBuilder b("mlp");
  auto x = b.input("x", {{kBatch / kMicroBatches, kIn}, DType::kFloat32});
  auto w1 = b.parameter("fc1.weight", {{kHidden, kIn}, DType::kFloat32});
  auto b1 = b.parameter("fc1.bias", {{kHidden}, DType::kFloat32});
  auto w2 = b.parameter("fc2.weight", {{kOut, kHidden}, DType::kFloat32});
  auto b2 = b.parameter("fc2.bias", {{kOut}, DType::kFloat32});
  auto h = b.unary("relu", b.linear(x, w1, b1, "fc1"));
  b.output(b.linear(h, w2, b2, "fc2"));
  return unwrap(b.build(), "building the graph");
}

alpa::plan::Plan make_plan() {
  alpa::plan::PipeshardRequest request;
  request.num_micro_batches = kMicroBatches;
  request.schedule = "1f1b";
  request.layer_boundaries = {"fc2"};  // layer 1 starts at module fc2
  request.stage_meshes = {{1, 1}, {1, 1}};
  request.options.cost.optimizer_state_factor = 0;  // plain SGD
  auto cluster = unwrap(alpa::mesh::cluster_preset("cpu-gloo", 1, kWorld), "cluster");
  return unwrap(alpa::plan::make_pipeshard_plan(model_graph(), cluster, request), "planning");
}

struct Model {
  torch::nn::Linear fc1{kIn, kHidden}, fc2{kHidden, kOut};
};

Model make_model() {
  torch::manual_seed(0);  // the same initial weights on every rank
  return Model{};
}

/// Batch `step`: x and a target the MLP can learn, the same on every rank.
std::pair<torch::Tensor, torch::Tensor> batch(int step) {
  torch::manual_seed(1000 + step);
  torch::Tensor x = torch::randn({kBatch, kIn});
  torch::manual_seed(7);
  torch::Tensor w = torch::randn({kIn, kOut}) / std::sqrt(static_cast<double>(kIn));
  return {x, torch::tanh(x.matmul(w))};
}

/// Stage 0 runs fc1 + relu on microbatch `mb` of x; stage 1 runs fc2 on the
/// received activation and returns the MSE loss against the target.
class MlpStageRunner : public alpa::runtime::StageRunner {
 public:
  explicit MlpStageRunner(Model& model) : model_(model) {}
  void set_batch(torch::Tensor x, torch::Tensor target) {
    x_ = x.chunk(kMicroBatches, 0);
    target_ = target.chunk(kMicroBatches, 0);
  }
  std::vector<at::Tensor> forward(int64_t stage, int64_t mb,
                                  const std::vector<at::Tensor>& inputs) override {
    if (stage == 0) return {torch::relu(model_.fc1(x_[static_cast<size_t>(mb)]))};
    TORCH_CHECK(inputs.size() == 1, "stage 1 expects one received value");
    torch::Tensor y = model_.fc2(inputs[0]);
    return {torch::mse_loss(y, target_[static_cast<size_t>(mb)])};
  }

 private:
  Model& model_;
  std::vector<torch::Tensor> x_, target_;
};

/// The plan must cut where the runner does: fc1 (+relu) | fc2.
void check_plan(const alpa::plan::Plan& plan) {
  TORCH_CHECK(plan.stages.size() == 2, "expected 2 stages, got ", plan.stages.size());
  const auto& s0 = plan.stages[0];
  const auto& s1 = plan.stages[1];
  TORCH_CHECK(s0.outputs.size() == 1 && s0.outputs[0].producer == "relu",
              "stage 0 should send relu's output");
  TORCH_CHECK(s1.param_specs.size() == 2 && s1.param_specs[0].first == "fc2.weight",
              "stage 1 should hold fc2");
  TORCH_CHECK(s0.device_ids == std::vector<int64_t>{0} && s1.device_ids == std::vector<int64_t>{1},
              "stage devices should be [0] and [1]");
}

/// The same training in one process: the losses the pipeline must match.
std::vector<double> reference_losses() {
  Model m = make_model();
  std::vector<torch::Tensor> params = m.fc1->parameters();
  for (const auto& p : m.fc2->parameters()) params.push_back(p);
  torch::optim::SGD opt(params, kLearningRate);
  std::vector<double> losses;
  for (int step = 0; step < kSteps; ++step) {
    auto [x, target] = batch(step);
    torch::Tensor loss = torch::mse_loss(m.fc2(torch::relu(m.fc1(x))), target);
    opt.zero_grad();
    loss.backward();
    opt.step();
    losses.push_back(loss.item<double>());
  }
  return losses;
}

// ---- one rank ----------------------------------------------------------------

int run_rank(int rank, int port) {
  c10d::TCPStoreOptions options;
  options.port = static_cast<uint16_t>(port);
  options.isServer = false;
  options.timeout = std::chrono::seconds(60);
  auto store = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", options);
  // The registry holds a weak reference: keep the group alive here.
  const c10::intrusive_ptr<c10d::ProcessGroup> group = make_group(store, rank);
  c10d::register_process_group(kGroupName, group);

  const alpa::plan::Plan plan = make_plan();
  check_plan(plan);
  // Every rank planned on its own; the plans must be the same, bit for bit.
  const std::string json = plan.to_json().dump();
  store->set("plan/" + std::to_string(rank), std::vector<uint8_t>(json.begin(), json.end()));
  const std::vector<uint8_t> other = store->get("plan/" + std::to_string(1 - rank));
  TORCH_CHECK(std::string(other.begin(), other.end()) == json, "the ranks made different plans");

  Model model = make_model();
  torch::nn::Linear& mine = rank == 0 ? model.fc1 : model.fc2;
  torch::optim::SGD opt(mine->parameters(), kLearningRate);
  MlpStageRunner runner(model);
  alpa::runtime::ExecutorOptions exec_options;
  exec_options.loss_scale = 1.0 / kMicroBatches;  // the step's loss is the mean
  exec_options.timeout = std::chrono::seconds(60);
  auto executor = alpa::runtime::PipelineExecutor::create(plan, rank, kGroupName, exec_options);
  if (rank == 0) std::cout << "rank 0 actions: " << executor->actions_text() << "\n";

  std::vector<double> losses;
  for (int step = 0; step < kSteps; ++step) {
    auto [x, target] = batch(step);
    runner.set_batch(x, target);
    const std::vector<double> mb_losses = executor->run(runner);
    opt.step();
    opt.zero_grad();
    double sum = 0;
    for (double l : mb_losses) sum += l;
    if (rank == 1) losses.push_back(sum / kMicroBatches);
  }
  if (rank == 0) return 0;
  const std::vector<double> reference = reference_losses();
  bool ok = true;
  for (int step = 0; step < kSteps; ++step) {
    const double diff = std::abs(losses[step] - reference[step]);
    std::printf("step %2d  pipeline loss %.6f  single-process %.6f\n", step, losses[step],
                reference[step]);
    ok = ok && diff < 1e-5;
  }
  // Each step sees a new batch, so compare the means of the first and last 5.
  const double first = (losses[0] + losses[1] + losses[2] + losses[3] + losses[4]) / 5;
  const double last = (losses[kSteps - 5] + losses[kSteps - 4] + losses[kSteps - 3] +
                       losses[kSteps - 2] + losses[kSteps - 1]) / 5;
  const bool falls = last < 0.5 * first;
  std::printf("mean loss of the first 5 steps %.4f, of the last 5 %.4f (%s); the pipeline %s "
              "single-process training\n", first, last, falls ? "falls" : "DOES NOT FALL by half",
              ok ? "matches" : "DIFFERS FROM");
  return ok && falls ? 0 : 1;
}

// ---- the launcher ---------------------------------------------------------------

int launch() {
  char self[4096] = {0};
  if (readlink("/proc/self/exe", self, sizeof(self) - 1) <= 0) {
    std::cerr << "train_pipeline: cannot find its own executable\n";
    return 1;
  }
  c10d::TCPStoreOptions options;
  options.port = 0;  // any free port
  options.isServer = true;
  options.waitWorkers = false;
  options.timeout = std::chrono::seconds(60);
  c10d::TCPStore server("127.0.0.1", options);
  const std::string port = std::to_string(server.getPort());
  std::map<pid_t, int> running;  // pid -> rank
  for (int rank = 0; rank < kWorld; ++rank) {
    const std::string r = std::to_string(rank);
    std::vector<const char*> args{self, "--rank", r.c_str(), "--port", port.c_str(), nullptr};
    const pid_t pid = fork();
    if (pid == 0) {
      execv(self, const_cast<char* const*>(args.data()));
      _exit(127);
    }
    running[pid] = rank;
  }
  // Wait for both; when one fails (or time runs out) stop the other.
  bool failed = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(300);
  while (!running.empty()) {
    int status = 0;
    const pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid > 0 && running.count(pid)) {
      if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        std::cerr << "train_pipeline: rank " << running[pid] << " failed\n";
        failed = true;
      }
      running.erase(pid);
    } else if (failed || std::chrono::steady_clock::now() > deadline) {
      if (!failed) std::cerr << "train_pipeline: timed out after 300 s\n";
      failed = true;
      for (const auto& [other, rank] : running) kill(other, SIGKILL);
      for (const auto& [other, rank] : running) waitpid(other, &status, 0);
      running.clear();
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  std::cout << (failed ? "train_pipeline: FAILED" : "train_pipeline: OK") << "\n";
  return failed ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  int rank = -1, port = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--rank") == 0) rank = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--port") == 0) port = std::atoi(argv[i + 1]);
  }
  if (rank < 0) return launch();
  try {
    return run_rank(rank, port);
  } catch (const std::exception& err) {
    std::cerr << "train_pipeline rank " << rank << ": " << err.what() << "\n";
    return 1;
  }
}
