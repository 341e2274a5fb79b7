// This file implements alpa's autograd-aware collectives, registered as
// torch.ops.alpa.* on c10d process groups resolved by group name (Gloo on
// CPU, NCCL on CUDA). Each pairs a forward collective with its backward
// dual under our gradient convention (a value's gradient is complete in the
// value's layout; see sharding/resharding.h):
//
//   op                      forward                     backward
//   all_reduce              sum over the group          identity      (Megatron g)
//   grad_all_reduce         identity                    all-reduce    (Megatron f)
//   grad_all_reduce_bucket  identity on a list          one all-reduce of the
//                                                       flattened gradients
//                                                       (DDP's bucket)
//   all_gather(dim)         concat along dim            local slice
//   shard(dim)              local slice                 all-gather
//   reduce_scatter(dim)     sum, keep own slice         all-gather
//   all_to_all(split, cat)  move split pieces           the reverse move
//
// The planner's collectives and resharding steps name exactly these ops.
#include <torch/torch.h>
#include <torch/library.h>

#include <torch/csrc/autograd/functions/utils.h>
#include <torch/csrc/distributed/c10d/GroupRegistry.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

#include <string>
#include <vector>

namespace alpa::runtime {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

c10::intrusive_ptr<c10d::ProcessGroup> group_of(const std::string& name) {
  auto pg = c10d::resolve_process_group(name);
  TORCH_CHECK(pg, "alpa: no process group named '", name,
              "'; create the mesh's groups with alpa_torch.distributed before running");
  return pg;
}

at::Tensor all_reduce_sum(const at::Tensor& x, const std::string& group) {
  std::vector<at::Tensor> buffer{x.contiguous().clone()};
  group_of(group)->allreduce(buffer)->wait();
  return buffer[0];
}

at::Tensor gather_along(const at::Tensor& x, int64_t dim, const std::string& group) {
  auto pg = group_of(group);
  at::Tensor input = x.contiguous();
  std::vector<at::Tensor> inputs{input};
  std::vector<std::vector<at::Tensor>> outputs(1);
  for (int r = 0; r < pg->getSize(); ++r) outputs[0].push_back(at::empty_like(input));
  pg->allgather(outputs, inputs)->wait();
  return at::cat(outputs[0], dim);
}

at::Tensor slice_of_rank(const at::Tensor& x, int64_t dim, const std::string& group) {
  auto pg = group_of(group);
  int64_t n = pg->getSize();
  TORCH_CHECK(x.size(dim) % n == 0, "alpa.shard: dim ", dim, " of size ", x.size(dim),
              " does not divide into ", n, " pieces (group '", group, "')");
  return x.chunk(n, dim)[pg->getRank()].contiguous();
}

struct AllReduce : torch::autograd::Function<AllReduce> {
  static at::Tensor forward(AutogradContext*, const at::Tensor& x, const std::string& group) {
    return all_reduce_sum(x, group);
  }
  static variable_list backward(AutogradContext*, variable_list grads) {
    return {grads[0], at::Tensor()};
  }
};

struct GradAllReduce : torch::autograd::Function<GradAllReduce> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const std::string& group) {
    ctx->saved_data["group"] = group;
    return x;  // autograd records an alias (view_as), no copy
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {all_reduce_sum(grads[0], ctx->saved_data["group"].toStringRef()), at::Tensor()};
  }
};

// Data-parallel parameter gradients, fused: the backward node runs once
// every output's gradient is known (at the end of backward, as the
// parameters are read first) and sums them all with ONE all-reduce of their
// concatenation instead of one per parameter (DDP's bucket). A hand-made
// autograd Node, because Function<> cannot take a list of inputs.
struct GradAllReduceBucketBackward : torch::autograd::Node {
  std::string group;
  std::vector<int64_t> numels;
  std::vector<at::TensorOptions> options;

  std::string name() const override { return "GradAllReduceBucketBackward"; }

  variable_list apply(variable_list&& grads) override {
    std::vector<at::Tensor> flat;
    for (size_t i = 0; i < grads.size(); ++i) {
      // every rank runs the same program, so the same outputs are unused
      flat.push_back(grads[i].defined() ? grads[i].reshape({-1})
                                        : at::zeros({numels[i]}, options[i]));
    }
    at::Tensor summed = all_reduce_sum(at::cat(flat), group);
    variable_list out;
    int64_t offset = 0;
    for (size_t i = 0; i < grads.size(); ++i) {
      out.push_back(grads[i].defined()
                        ? summed.narrow(0, offset, numels[i]).view(grads[i].sizes())
                        : at::Tensor());
      offset += numels[i];
    }
    return out;
  }
};

std::vector<at::Tensor> grad_all_reduce_bucket(at::TensorList xs, const std::string& group) {
  std::vector<at::Tensor> outs;
  bool requires_grad = false;
  for (const at::Tensor& x : xs) {
    outs.push_back(x.detach());
    requires_grad = requires_grad || (x.requires_grad() && at::GradMode::is_enabled());
  }
  if (!requires_grad) return outs;
  auto node = c10::make_intrusive<GradAllReduceBucketBackward>();
  node->group = group;
  torch::autograd::edge_list edges;
  for (const at::Tensor& x : xs) {
    node->numels.push_back(x.numel());
    node->options.push_back(x.options());
    edges.push_back(torch::autograd::impl::gradient_edge(x));
  }
  node->set_next_edges(std::move(edges));
  for (at::Tensor& o : outs) torch::autograd::set_history(o, node);
  return outs;
}

struct AllGather : torch::autograd::Function<AllGather> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, int64_t dim,
                            const std::string& group) {
    ctx->saved_data["group"] = group;
    ctx->saved_data["dim"] = dim;
    return gather_along(x, dim, group);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {slice_of_rank(grads[0], ctx->saved_data["dim"].toInt(),
                          ctx->saved_data["group"].toStringRef()),
            at::Tensor(), at::Tensor()};
  }
};

struct Shard : torch::autograd::Function<Shard> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, int64_t dim,
                            const std::string& group) {
    ctx->saved_data["group"] = group;
    ctx->saved_data["dim"] = dim;
    return slice_of_rank(x, dim, group);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {gather_along(grads[0], ctx->saved_data["dim"].toInt(),
                         ctx->saved_data["group"].toStringRef()),
            at::Tensor(), at::Tensor()};
  }
};

// Gloo has no reduce-scatter: all-reduce and keep the own slice (same
// result; NCCL groups could use reduce_scatter directly).
struct ReduceScatter : torch::autograd::Function<ReduceScatter> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, int64_t dim,
                            const std::string& group) {
    ctx->saved_data["group"] = group;
    ctx->saved_data["dim"] = dim;
    return slice_of_rank(all_reduce_sum(x, group), dim, group);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {gather_along(grads[0], ctx->saved_data["dim"].toInt(),
                         ctx->saved_data["group"].toStringRef()),
            at::Tensor(), at::Tensor()};
  }
};

// x is split along `split_dim` (each device holds all of it) and becomes
// split along `concat_dim`: device r keeps piece r of split_dim from every
// device's... (expressed as gather + slice, which every backend supports).
at::Tensor move_split(const at::Tensor& x, int64_t from_dim, int64_t to_dim, const std::string& group) {
  return slice_of_rank(gather_along(x, from_dim, group), to_dim, group);
}

struct AllToAll : torch::autograd::Function<AllToAll> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, int64_t from_dim,
                            int64_t to_dim, const std::string& group) {
    ctx->saved_data["group"] = group;
    ctx->saved_data["from"] = from_dim;
    ctx->saved_data["to"] = to_dim;
    return move_split(x, from_dim, to_dim, group);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {move_split(grads[0], ctx->saved_data["to"].toInt(), ctx->saved_data["from"].toInt(),
                       ctx->saved_data["group"].toStringRef()),
            at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

TORCH_LIBRARY(alpa, m) {
  m.def("all_reduce(Tensor x, str group) -> Tensor");
  m.def("grad_all_reduce(Tensor x, str group) -> Tensor");
  m.def("grad_all_reduce_bucket(Tensor[] xs, str group) -> Tensor[]");
  m.def("all_gather(Tensor x, int dim, str group) -> Tensor");
  m.def("shard(Tensor x, int dim, str group) -> Tensor");
  m.def("reduce_scatter(Tensor x, int dim, str group) -> Tensor");
  m.def("all_to_all(Tensor x, int from_dim, int to_dim, str group) -> Tensor");
}

TORCH_LIBRARY_IMPL(alpa, CompositeImplicitAutograd, m) {
  m.impl("all_reduce", [](const at::Tensor& x, c10::string_view g) {
    return AllReduce::apply(x, std::string(g));
  });
  m.impl("grad_all_reduce", [](const at::Tensor& x, c10::string_view g) {
    return GradAllReduce::apply(x, std::string(g));
  });
  m.impl("grad_all_reduce_bucket", [](at::TensorList xs, c10::string_view g) {
    return grad_all_reduce_bucket(xs, std::string(g));
  });
  m.impl("all_gather", [](const at::Tensor& x, int64_t dim, c10::string_view g) {
    return AllGather::apply(x, dim, std::string(g));
  });
  m.impl("shard", [](const at::Tensor& x, int64_t dim, c10::string_view g) {
    return Shard::apply(x, dim, std::string(g));
  });
  m.impl("reduce_scatter", [](const at::Tensor& x, int64_t dim, c10::string_view g) {
    return ReduceScatter::apply(x, dim, std::string(g));
  });
  m.impl("all_to_all", [](const at::Tensor& x, int64_t from, int64_t to, c10::string_view g) {
    return AllToAll::apply(x, from, to, std::string(g));
  });
}

}  // namespace alpa::runtime
