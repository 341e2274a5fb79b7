// This file implements PipelineExecutor.
#include "runtime/pipeline_executor.h"

#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/distributed/c10d/GroupRegistry.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

#include <algorithm>
#include <map>
#include <sstream>

#include "ir/dtype.h"
#include "mesh/device_mesh.h"
#include "plan/schedule_builders.h"
#include "runtime/failures.h"

namespace alpa::runtime {
namespace {

template <typename T>
T unwrap_or_throw(core::StatusOr<T> value, const std::string& what) {
  TORCH_CHECK(value.ok(), "alpa pipeline: ", what, ": ", value.status().to_string());
  return std::move(value).value();
}

at::ScalarType scalar_type(ir::DType dtype) {
  switch (dtype) {
    case ir::DType::kFloat32: return at::kFloat;
    case ir::DType::kFloat64: return at::kDouble;
    case ir::DType::kFloat16: return at::kHalf;
    case ir::DType::kBFloat16: return at::kBFloat16;
    case ir::DType::kInt64: return at::kLong;
    case ir::DType::kInt32: return at::kInt;
    case ir::DType::kInt16: return at::kShort;
    case ir::DType::kInt8: return at::kChar;
    case ir::DType::kUInt8: return at::kByte;
    case ir::DType::kBool: return at::kBool;
    default: break;
  }
  TORCH_CHECK(false, "alpa pipeline: no torch dtype for ", ir::dtype_name(dtype));
}

at::Tensor narrow_box(const at::Tensor& t, const plan::Box& box) {
  at::Tensor out = t;
  for (size_t d = 0; d < box.size(); ++d) {
    out = out.narrow(static_cast<int64_t>(d), box[d].begin, box[d].size());
  }
  return out;
}

std::vector<int64_t> box_sizes(const plan::Box& box) {
  std::vector<int64_t> sizes;
  for (const plan::Range& r : box) sizes.push_back(r.size());
  return sizes;
}

bool contains(const std::vector<int64_t>& ids, int64_t id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

}  // namespace

struct PipelineExecutor::MicroBatch {
  std::vector<at::Tensor> inputs;        ///< received values (leaves when they need grad)
  std::vector<at::Tensor> outputs;       ///< forward results, graph attached
  std::vector<at::Tensor> output_grads;  ///< received gradients of outputs
};

std::unique_ptr<PipelineExecutor> PipelineExecutor::create(const plan::Plan& plan, int64_t device,
                                                           const std::string& group_name,
                                                           ExecutorOptions options) {
  std::unique_ptr<PipelineExecutor> e(new PipelineExecutor());
  e->device_ = device;
  e->options_ = options;
  e->num_stages_ = static_cast<int64_t>(plan.stages.size());
  e->num_micro_batches_ = plan.num_micro_batches;
  e->stage_ = -1;
  for (const plan::StagePlan& s : plan.stages) {
    if (contains(s.device_ids, device)) e->stage_ = s.index;
  }
  TORCH_CHECK(e->stage_ >= 0, "alpa pipeline: device ", device,
              " belongs to no stage of the plan; launch exactly the plan's devices");
  e->schedule_ = unwrap_or_throw(
      plan::build_schedule(plan.schedule, e->num_stages_, plan.num_micro_batches), "schedule");
  const core::Status checked = plan::check_schedule(e->schedule_);
  TORCH_CHECK(checked.ok(), "alpa pipeline: the schedule is not runnable: ", checked.to_string());
  e->actions_ = e->schedule_.ranks[static_cast<size_t>(e->stage_)];
  try {
    e->group_ = c10d::resolve_process_group(group_name);
  } catch (const std::exception&) {
    e->group_.reset();
  }
  TORCH_CHECK(e->group_, "alpa pipeline: no process group named '", group_name, "'");
  TORCH_CHECK(e->group_->getSize() == plan.cluster.num_devices(), "alpa pipeline: group '",
              group_name, "' has ", e->group_->getSize(), " ranks but the plan has ",
              plan.cluster.num_devices(), " devices");
  e->group_name_ = group_name;
  std::vector<mesh::DeviceMesh> meshes;
  for (const plan::StagePlan& s : plan.stages) {
    meshes.push_back(unwrap_or_throw(mesh::DeviceMesh::create(plan.cluster, s.mesh_shape, s.device_ids),
                                     "stage mesh"));
  }
  for (int64_t b = 0; b + 1 < e->num_stages_; ++b) {
    const plan::StagePlan& from = plan.stages[static_cast<size_t>(b)];
    const plan::StagePlan& to = plan.stages[static_cast<size_t>(b + 1)];
    TORCH_CHECK(from.outputs.size() == to.inputs.size(), "alpa pipeline: stage ", b, " sends ",
                from.outputs.size(), " values but stage ", b + 1, " receives ", to.inputs.size());
    std::vector<BoundaryValuePlan> values;
    for (size_t i = 0; i < from.outputs.size(); ++i) {
      const plan::StageValue& out = from.outputs[i];
      const plan::StageValue& in = to.inputs[i];
      TORCH_CHECK(out.name == in.name, "alpa pipeline: stage ", b, " output ", i, " is '",
                  out.name, "' but stage ", b + 1, " expects '", in.name, "'");
      const auto& shape = out.meta.shape;
      const int64_t itemsize = ir::dtype_size(out.meta.dtype);
      const auto& src = meshes[static_cast<size_t>(b)];
      const auto& dst = meshes[static_cast<size_t>(b + 1)];
      BoundaryValuePlan v;
      v.value = in;
      v.value.requires_grad = out.requires_grad && in.requires_grad;
      v.forward = unwrap_or_throw(plan::plan_cross_mesh(shape, itemsize, src, out.spec, dst, in.spec),
                                  "cross-mesh plan of " + out.name);
      v.backward = unwrap_or_throw(plan::plan_cross_mesh(shape, itemsize, dst, in.spec, src, out.spec),
                                   "cross-mesh plan of the gradient of " + out.name);
      v.producer_local_shape = unwrap_or_throw(out.spec.local_shape(shape, src), "local shape");
      v.consumer_local_shape = unwrap_or_throw(in.spec.local_shape(shape, dst), "local shape");
      e->max_transfers_ = std::max<int64_t>(
          e->max_transfers_, static_cast<int64_t>(std::max(v.forward.transfers.size(),
                                                           v.backward.transfers.size())));
      values.push_back(std::move(v));
    }
    e->boundaries_.push_back(std::move(values));
  }
  return e;
}

std::string PipelineExecutor::actions_text() const {
  std::string out;
  for (const plan::Action& a : actions_) out += (out.empty() ? "" : " ") + a.to_short_string();
  return out;
}

int PipelineExecutor::tag(int64_t boundary, int64_t mb, bool grads, int64_t value,
                          int64_t transfer) const {
  // Unique per (boundary, microbatch, direction, value, transfer), so that
  // messages between the same two devices can never be confused.
  const int64_t values = static_cast<int64_t>(boundaries_[static_cast<size_t>(boundary)].size());
  int64_t t = ((boundary * num_micro_batches_ + mb) * 2 + (grads ? 1 : 0)) * values + value;
  return static_cast<int>(t * max_transfers_ + transfer);
}

void PipelineExecutor::recv_values(int64_t boundary, int64_t mb, bool grads,
                                   std::vector<at::Tensor>& out) {
  const auto& values = boundaries_[static_cast<size_t>(boundary)];
  out.assign(values.size(), at::Tensor());
  struct Pending {
    c10::intrusive_ptr<c10d::Work> work;
    at::Tensor buffer;
    size_t value;
    const plan::Transfer* transfer;
  };
  std::vector<Pending> pending;
  for (size_t vi = 0; vi < values.size(); ++vi) {
    const BoundaryValuePlan& v = values[vi];
    if (grads && !v.value.requires_grad) continue;
    const plan::CrossMeshPlan& cm = grads ? v.backward : v.forward;
    const auto& shape = grads ? v.producer_local_shape : v.consumer_local_shape;
    out[vi] = at::empty(shape, at::TensorOptions().dtype(scalar_type(v.value.meta.dtype)));
    for (size_t ti = 0; ti < cm.transfers.size(); ++ti) {
      const plan::Transfer& t = cm.transfers[ti];
      if (t.dst_device != device_) continue;
      TORCH_CHECK(t.src_device != device_, "alpa pipeline: stages share device ", device_);
      std::vector<at::Tensor> buf{at::empty(box_sizes(t.box), out[vi].options())};
      auto work = group_->recv(buf, static_cast<int>(t.src_device),
                               tag(boundary, mb, grads, static_cast<int64_t>(vi),
                                   static_cast<int64_t>(ti)));
      pending.push_back(Pending{work, buf[0], vi, &t});
    }
  }
  for (Pending& p : pending) {
    std::string error;
    try {
      p.work->wait(options_.timeout);
    } catch (const c10::Error& err) {
      error = err.what_without_backtrace();
    } catch (const std::exception& err) {
      error = err.what();
    }
    if (!error.empty()) {
      fail_transfer("recv", grads ? "RECV_B" : "RECV_F", mb, values[p.value].value.name,
                    p.transfer->src_device, error);
    }
    narrow_box(out[p.value], p.transfer->dst_local).copy_(p.buffer);
  }
}

void PipelineExecutor::fail_transfer(const char* what, const char* action, int64_t mb,
                                     const std::string& value, int64_t peer,
                                     const std::string& error) {
  CollectiveFailure failure;
  failure.collective = what;
  failure.group = group_name_;
  failure.node = "alpa pipeline stage " + std::to_string(stage_) + ", action " + action +
                 std::to_string(mb) + " (" + (action[5] == 'B' ? "the gradient of " : "") +
                 "value '" + value + "' of microbatch " + std::to_string(mb) + ", cross-mesh " +
                 (what[0] == 'r' ? "from" : "to") + " device " + std::to_string(peer) + ")";
  failure.group_rank = group_->getRank();
  failure.group_size = group_->getSize();
  failure.peers = {peer};
  failure.error = error;
  failure.timed_out = is_timeout_message(error);
  raise_failure(failure);
}

void PipelineExecutor::send_values(int64_t boundary, int64_t mb, bool grads,
                                   const std::vector<at::Tensor>& in) {
  const auto& values = boundaries_[static_cast<size_t>(boundary)];
  TORCH_CHECK(in.size() == values.size(), "alpa pipeline: stage ", stage_, " has ", in.size(),
              " values to send but the plan sends ", values.size());
  for (size_t vi = 0; vi < values.size(); ++vi) {
    const BoundaryValuePlan& v = values[vi];
    if (grads && !v.value.requires_grad) continue;
    const plan::CrossMeshPlan& cm = grads ? v.backward : v.forward;
    const auto& shape = grads ? v.consumer_local_shape : v.producer_local_shape;
    at::Tensor local = in[vi].defined() ? in[vi].detach()
                                        : at::zeros(shape, at::TensorOptions().dtype(
                                                               scalar_type(v.value.meta.dtype)));
    TORCH_CHECK(local.sizes().vec() == shape, "alpa pipeline: stage ", stage_, " value ",
                v.value.name, " has local shape ", local.sizes(), " but the plan expects ",
                c10::IntArrayRef(shape));
    for (size_t ti = 0; ti < cm.transfers.size(); ++ti) {
      const plan::Transfer& t = cm.transfers[ti];
      if (t.src_device != device_) continue;
      std::vector<at::Tensor> piece{narrow_box(local, t.src_local).contiguous()};
      auto work = group_->send(piece, static_cast<int>(t.dst_device),
                               tag(boundary, mb, grads, static_cast<int64_t>(vi),
                                   static_cast<int64_t>(ti)));
      pending_.push_back(PendingSend{work, piece[0], t.dst_device, boundary, mb, grads,
                                     v.value.name});
    }
  }
}

void PipelineExecutor::backward(int64_t mb, MicroBatch& m) {
  std::vector<at::Tensor> roots;
  std::vector<at::Tensor> grads;
  if (stage_ + 1 == num_stages_) {
    TORCH_CHECK(m.outputs.size() == 1 && m.outputs[0].numel() == 1,
                "alpa pipeline: the last stage must return one scalar loss");
    if (m.outputs[0].requires_grad()) {
      roots.push_back(m.outputs[0]);
      grads.push_back(at::full_like(m.outputs[0], options_.loss_scale));
    }
  } else {
    for (size_t i = 0; i < m.outputs.size(); ++i) {
      if (m.output_grads.size() > i && m.output_grads[i].defined() &&
          m.outputs[i].requires_grad()) {
        roots.push_back(m.outputs[i]);
        grads.push_back(m.output_grads[i]);
      }
    }
  }
  if (!roots.empty()) torch::autograd::backward(roots, grads);
  m.outputs.clear();
  m.output_grads.clear();
}

void PipelineExecutor::wait_sends() {
  for (PendingSend& p : pending_) {
    std::string error;
    try {
      p.work->wait(options_.timeout);
    } catch (const c10::Error& err) {
      error = err.what_without_backtrace();
    } catch (const std::exception& err) {
      error = err.what();
    }
    if (!error.empty()) {
      const PendingSend failed = p;
      fail_transfer("send", failed.grads ? "SEND_B" : "SEND_F", failed.mb, failed.value,
                    failed.peer, error);
    }
  }
  pending_.clear();
}

std::vector<double> PipelineExecutor::run(StageRunner& runner) {
  std::vector<MicroBatch> mbs(static_cast<size_t>(num_micro_batches_));
  std::vector<double> losses;
  const bool last = stage_ + 1 == num_stages_;
  for (const plan::Action& a : actions_) {
    MicroBatch& m = mbs[static_cast<size_t>(a.micro_batch)];
    switch (a.kind) {
      case plan::ActionKind::kRecvF: {
        recv_values(stage_ - 1, a.micro_batch, false, m.inputs);
        const auto& values = boundaries_[static_cast<size_t>(stage_ - 1)];
        for (size_t i = 0; i < m.inputs.size(); ++i) {
          if (values[i].value.requires_grad) m.inputs[i].requires_grad_(true);
        }
        break;
      }
      case plan::ActionKind::kForward: {
        at::AutoGradMode grad_mode(true);
        m.outputs = runner.forward(stage_, a.micro_batch, m.inputs);
        if (last) {
          TORCH_CHECK(m.outputs.size() == 1 && m.outputs[0].numel() == 1,
                      "alpa pipeline: the last stage returned ", m.outputs.size(),
                      " values; it must return one scalar loss");
          losses.push_back(m.outputs[0].detach().to(at::kDouble).item<double>());
        }
        break;
      }
      case plan::ActionKind::kSendF:
        send_values(stage_, a.micro_batch, false, m.outputs);
        break;
      case plan::ActionKind::kRecvB:
        recv_values(stage_, a.micro_batch, true, m.output_grads);
        break;
      case plan::ActionKind::kBackward:
        backward(a.micro_batch, m);
        break;
      case plan::ActionKind::kSendB: {
        std::vector<at::Tensor> grads;
        for (const at::Tensor& x : m.inputs) grads.push_back(x.defined() ? x.grad() : at::Tensor());
        send_values(stage_ - 1, a.micro_batch, true, grads);
        m.inputs.clear();
        break;
      }
    }
  }
  wait_sends();
  return losses;
}

}  // namespace alpa::runtime
