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
//   all_to_all_rows         send send_counts[r] rows to  the reverse move
//     (send, recv)          rank r, receive recv_counts  (counts swapped)
//                           (mixture-of-experts tokens)
//
// The planner's collectives and resharding steps name exactly these ops.
// Each takes the name of the graph node it serves (`node`, "" if none), so
// that a failure names it; a failed or timed-out wait is raised through
// runtime/failures.h, which names the group, this rank and its peers.
#include <torch/torch.h>
#include <torch/library.h>

#include <torch/csrc/autograd/functions/utils.h>
#include <torch/csrc/distributed/c10d/GroupRegistry.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

#include <string>
#include <vector>

#include "runtime/failures.h"

namespace alpa::runtime {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

/// Where a collective runs: for error messages only.
struct Site {
  const char* op;
  std::string group;
  std::string node;
};

c10::intrusive_ptr<c10d::ProcessGroup> group_of(const Site& site) {
  c10::intrusive_ptr<c10d::ProcessGroup> pg;
  try {
    pg = c10d::resolve_process_group(site.group);
  } catch (const std::exception&) {
    pg.reset();
  }
  TORCH_CHECK(pg, "alpa.", site.op, ": no process group named '", site.group,
              "' exists (any more): torch.distributed.destroy_process_group() was called, or the "
              "groups were never created. A parallelized model runs only while the process groups "
              "it was parallelized on live: run it before destroy_process_group(), or "
              "init_process_group() again and parallelize a fresh model");
  return pg;
}

/// Starts a collective with `start()` and waits for it; a failure of
/// either goes to raise_failure with the site's context.
template <typename Start>
void run(const c10::intrusive_ptr<c10d::ProcessGroup>& pg, const Site& site, Start start) {
  std::string error;
  try {
    start()->wait();
    return;
  } catch (const c10::Error& e) {
    error = e.what_without_backtrace();
  } catch (const std::exception& e) {
    error = e.what();
  }
  CollectiveFailure failure;
  failure.collective = site.op;
  failure.group = site.group;
  failure.node = site.node;
  failure.group_rank = pg->getRank();
  failure.group_size = pg->getSize();
  failure.error = error;
  failure.timed_out = is_timeout_message(error);
  raise_failure(failure);
}

at::Tensor all_reduce_sum(const at::Tensor& x, const Site& site) {
  auto pg = group_of(site);
  std::vector<at::Tensor> buffer{x.contiguous().clone()};
  run(pg, site, [&] { return pg->allreduce(buffer); });
  return buffer[0];
}

at::Tensor gather_along(const at::Tensor& x, int64_t dim, const Site& site) {
  auto pg = group_of(site);
  at::Tensor input = x.contiguous();
  std::vector<at::Tensor> inputs{input};
  std::vector<std::vector<at::Tensor>> outputs(1);
  for (int r = 0; r < pg->getSize(); ++r) outputs[0].push_back(at::empty_like(input));
  run(pg, site, [&] { return pg->allgather(outputs, inputs); });
  return at::cat(outputs[0], dim);
}

at::Tensor slice_of_rank(const at::Tensor& x, int64_t dim, const Site& site) {
  auto pg = group_of(site);
  int64_t n = pg->getSize();
  TORCH_CHECK(x.size(dim) % n == 0, "alpa.", site.op, ": dim ", dim, " of size ", x.size(dim),
              " does not divide into ", n, " pieces (group '", site.group, "')");
  return x.chunk(n, dim)[pg->getRank()].contiguous();
}

void save_site(AutogradContext* ctx, const Site& site) {
  ctx->saved_data["group"] = site.group;
  ctx->saved_data["node"] = site.node;
}

/// The site of a backward collective: the forward's group and node.
Site backward_site(AutogradContext* ctx, const char* op) {
  return Site{op, ctx->saved_data["group"].toStringRef(), ctx->saved_data["node"].toStringRef()};
}

struct AllReduce : torch::autograd::Function<AllReduce> {
  static at::Tensor forward(AutogradContext*, const at::Tensor& x, const std::string& group,
                            const std::string& node) {
    return all_reduce_sum(x, Site{"all_reduce", group, node});
  }
  static variable_list backward(AutogradContext*, variable_list grads) {
    return {grads[0], at::Tensor(), at::Tensor()};
  }
};

struct GradAllReduce : torch::autograd::Function<GradAllReduce> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const std::string& group,
                            const std::string& node) {
    save_site(ctx, Site{"grad_all_reduce", group, node});
    return x;  // autograd records an alias (view_as), no copy
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const Site site = backward_site(ctx, "all_reduce (backward of grad_all_reduce)");
    return {all_reduce_sum(grads[0], site), at::Tensor(), at::Tensor()};
  }
};

// Data-parallel parameter gradients, fused: the backward node runs once
// every output's gradient is known (at the end of backward, as the
// parameters are read first) and sums them all with ONE all-reduce of their
// concatenation instead of one per parameter (DDP's bucket). A hand-made
// autograd Node, because Function<> cannot take a list of inputs.
struct GradAllReduceBucketBackward : torch::autograd::Node {
  std::string group;
  std::string node;
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
    at::Tensor summed = all_reduce_sum(
        at::cat(flat), Site{"all_reduce (backward of grad_all_reduce_bucket)", group, node});
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

std::vector<at::Tensor> grad_all_reduce_bucket(at::TensorList xs, const std::string& group,
                                               const std::string& node_name) {
  std::vector<at::Tensor> outs;
  bool requires_grad = false;
  for (const at::Tensor& x : xs) {
    outs.push_back(x.detach());
    requires_grad = requires_grad || (x.requires_grad() && at::GradMode::is_enabled());
  }
  if (!requires_grad) return outs;
  auto node = c10::make_intrusive<GradAllReduceBucketBackward>();
  node->group = group;
  node->node = node_name;
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
                            const std::string& group, const std::string& node) {
    save_site(ctx, Site{"all_gather", group, node});
    ctx->saved_data["dim"] = dim;
    return gather_along(x, dim, Site{"all_gather", group, node});
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {slice_of_rank(grads[0], ctx->saved_data["dim"].toInt(),
                          backward_site(ctx, "shard (backward of all_gather)")),
            at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

struct Shard : torch::autograd::Function<Shard> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, int64_t dim,
                            const std::string& group, const std::string& node) {
    save_site(ctx, Site{"shard", group, node});
    ctx->saved_data["dim"] = dim;
    return slice_of_rank(x, dim, Site{"shard", group, node});
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {gather_along(grads[0], ctx->saved_data["dim"].toInt(),
                         backward_site(ctx, "all_gather (backward of shard)")),
            at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// Gloo has no reduce-scatter: all-reduce and keep the own slice (same
// result; NCCL groups could use reduce_scatter directly).
struct ReduceScatter : torch::autograd::Function<ReduceScatter> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, int64_t dim,
                            const std::string& group, const std::string& node) {
    const Site site{"reduce_scatter", group, node};
    save_site(ctx, site);
    ctx->saved_data["dim"] = dim;
    return slice_of_rank(all_reduce_sum(x, site), dim, site);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {gather_along(grads[0], ctx->saved_data["dim"].toInt(),
                         backward_site(ctx, "all_gather (backward of reduce_scatter)")),
            at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// x is split along `split_dim` (each device holds all of it) and becomes
// split along `concat_dim`: device r keeps piece r of split_dim from every
// device's... (expressed as gather + slice, which every backend supports).
at::Tensor move_split(const at::Tensor& x, int64_t from_dim, int64_t to_dim, const Site& site) {
  return slice_of_rank(gather_along(x, from_dim, site), to_dim, site);
}

struct AllToAll : torch::autograd::Function<AllToAll> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, int64_t from_dim,
                            int64_t to_dim, const std::string& group, const std::string& node) {
    const Site site{"all_to_all", group, node};
    save_site(ctx, site);
    ctx->saved_data["from"] = from_dim;
    ctx->saved_data["to"] = to_dim;
    return move_split(x, from_dim, to_dim, site);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {move_split(grads[0], ctx->saved_data["to"].toInt(), ctx->saved_data["from"].toInt(),
                       backward_site(ctx, "all_to_all (backward)")),
            at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// Rows of x, in rank order: the first send[0] to rank 0, the next send[1]
// to rank 1...; the result holds recv[r] rows from each rank r, in rank
// order. Every rank's send[r'] must equal rank r''s recv[this rank].
at::Tensor exchange_rows(const at::Tensor& x, std::vector<int64_t> send, std::vector<int64_t> recv,
                         const Site& site) {
  auto pg = group_of(site);
  auto n = static_cast<size_t>(pg->getSize());
  TORCH_CHECK(x.dim() >= 1 && send.size() == n && recv.size() == n, "alpa.", site.op,
              ": needs a tensor with rows and one send and one receive count per rank of group '",
              site.group, "' (", n, " ranks), got ", send.size(), " and ", recv.size());
  int64_t sent = 0, received = 0;
  for (size_t r = 0; r < n; ++r) {
    TORCH_CHECK(send[r] >= 0 && recv[r] >= 0, "alpa.", site.op, ": negative row count");
    sent += send[r];
    received += recv[r];
  }
  TORCH_CHECK(sent == x.size(0), "alpa.", site.op, ": the send counts add up to ", sent,
              " rows but the tensor has ", x.size(0));
  std::vector<int64_t> sizes = x.sizes().vec();
  sizes[0] = received;
  at::Tensor output = at::empty(sizes, x.options());
  at::Tensor input = x.contiguous();
  run(pg, site, [&] { return pg->alltoall_base(output, input, recv, send); });
  return output;
}

struct AllToAllRows : torch::autograd::Function<AllToAllRows> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, std::vector<int64_t> send,
                            std::vector<int64_t> recv, const std::string& group,
                            const std::string& node) {
    const Site site{"all_to_all_rows", group, node};
    save_site(ctx, site);
    ctx->saved_data["send"] = send;
    ctx->saved_data["recv"] = recv;
    return exchange_rows(x, send, recv, site);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {exchange_rows(grads[0], ctx->saved_data["recv"].toIntVector(),
                          ctx->saved_data["send"].toIntVector(),
                          backward_site(ctx, "all_to_all_rows (backward)")),
            at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

TORCH_LIBRARY(alpa, m) {
  m.def("all_reduce(Tensor x, str group, str node=\"\") -> Tensor");
  m.def("grad_all_reduce(Tensor x, str group, str node=\"\") -> Tensor");
  m.def("grad_all_reduce_bucket(Tensor[] xs, str group, str node=\"\") -> Tensor[]");
  m.def("all_gather(Tensor x, int dim, str group, str node=\"\") -> Tensor");
  m.def("shard(Tensor x, int dim, str group, str node=\"\") -> Tensor");
  m.def("reduce_scatter(Tensor x, int dim, str group, str node=\"\") -> Tensor");
  m.def("all_to_all(Tensor x, int from_dim, int to_dim, str group, str node=\"\") -> Tensor");
  m.def("all_to_all_rows(Tensor x, int[] send_counts, int[] recv_counts, str group, "
        "str node=\"\") -> Tensor");
}

TORCH_LIBRARY_IMPL(alpa, CompositeImplicitAutograd, m) {
  using S = c10::string_view;
  m.impl("all_reduce", [](const at::Tensor& x, S g, S node) {
    return AllReduce::apply(x, std::string(g), std::string(node));
  });
  m.impl("grad_all_reduce", [](const at::Tensor& x, S g, S node) {
    return GradAllReduce::apply(x, std::string(g), std::string(node));
  });
  m.impl("grad_all_reduce_bucket", [](at::TensorList xs, S g, S node) {
    return grad_all_reduce_bucket(xs, std::string(g), std::string(node));
  });
  m.impl("all_gather", [](const at::Tensor& x, int64_t dim, S g, S node) {
    return AllGather::apply(x, dim, std::string(g), std::string(node));
  });
  m.impl("shard", [](const at::Tensor& x, int64_t dim, S g, S node) {
    return Shard::apply(x, dim, std::string(g), std::string(node));
  });
  m.impl("reduce_scatter", [](const at::Tensor& x, int64_t dim, S g, S node) {
    return ReduceScatter::apply(x, dim, std::string(g), std::string(node));
  });
  m.impl("all_to_all", [](const at::Tensor& x, int64_t from, int64_t to, S g, S node) {
    return AllToAll::apply(x, from, to, std::string(g), std::string(node));
  });
  m.impl("all_to_all_rows", [](const at::Tensor& x, c10::IntArrayRef send, c10::IntArrayRef recv,
                               S g, S node) {
    return AllToAllRows::apply(x, send.vec(), recv.vec(), std::string(g), std::string(node));
  });
}

}  // namespace alpa::runtime
