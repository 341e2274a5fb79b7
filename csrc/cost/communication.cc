// This file implements α-β collective times.
#include "cost/communication.h"

#include <algorithm>

namespace alpa::cost {

using sharding::Collective;
using sharding::CollectiveKind;

int64_t axes_size(const sharding::MeshAxes& axes, const mesh::DeviceMesh& mesh) {
  int64_t n = 1;
  for (int a : axes) n *= mesh.axis_size(a);
  return n;
}

double collective_time(const Collective& c, const mesh::DeviceMesh& mesh,
                       const CostOptions& options) {
  double n = static_cast<double>(axes_size(c.axes, mesh));
  if (n <= 1) return 0;
  double alpha = 0, beta = 0;
  for (int a : c.axes) {
    alpha = std::max(alpha, mesh.axis_link(a).alpha);
    beta = std::max(beta, mesh.axis_link(a).beta);
  }
  if (c.fused) alpha = 0;
  double b = c.bytes;
  double t = 0;
  switch (c.kind) {
    case CollectiveKind::kAllReduce: t = alpha + 2 * beta * (n - 1) / n * b; break;
    case CollectiveKind::kAllGather:
    case CollectiveKind::kReduceScatter: t = alpha + beta * (n - 1) / n * b; break;
    // b is one device's buffer, of which it sends (n-1)/n away (and
    // receives as much); Alpa's formula, kept for its cost mode, divides
    // by n once more (it reads b as the whole tensor).
    case CollectiveKind::kAllToAll:
      t = alpha + beta * (n - 1) / n * b / (options.mode == CostOptions::Mode::kAlpa ? n : 1);
      break;
    case CollectiveKind::kSendRecv: t = alpha + beta * b; break;
  }
  if (options.mode == CostOptions::Mode::kAlpa) t += options.alpa_collective_penalty;
  return t;
}

}  // namespace alpa::cost
