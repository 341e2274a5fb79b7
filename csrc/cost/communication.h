// This file implements the α-β time of a collective (DESIGN §5, n devices
// on the axes, B bytes):
//   all-reduce       α + 2β(n−1)/n·B
//   all-gather       α +  β(n−1)/n·B   (B: the gathered result)
//   reduce-scatter   α +  β(n−1)/n·B   (B: the full input)
//   all-to-all       α +  β(n−1)/n²·B
// Several axes at once use n = the product and the slowest axis's α and β.
#pragma once

#include "ir/dtype.h"
#include "mesh/device_mesh.h"
#include "sharding/collective.h"

namespace alpa::cost {

/// How collectives, compute and memory are priced.
struct CostOptions {
  enum class Mode { kSeconds, kAlpa } mode = Mode::kSeconds;
  /// Optimizer state per parameter, in units of the parameter's bytes
  /// (Adam: 2, SGD with momentum: 1, plain SGD: 0).
  double optimizer_state_factor = 2;
  /// Alpa mode: constant added to each collective (Alpa's tie-breaker).
  double alpa_collective_penalty = 0.1;
  /// Alpa mode: cost per byte of a parameter left replicated on a mesh axis.
  double alpa_replicated_param_penalty = 1e-9;
  /// Seconds charged per byte of memory in the objective: a tie-breaker
  /// that prefers the plan holding less (1 GiB costs ~0.1 µs).
  double memory_tiebreak = 1e-16;
  /// Mixed precision: kBFloat16 or kFloat16 prices activations in that
  /// dtype as autocast makes them (ir/autocast.h; parameters, their
  /// gradients and optimizer state stay fp32); kFloat32: as captured.
  ir::DType compute_dtype = ir::DType::kFloat32;
};

/// Seconds (or Alpa cost units) for one collective on `mesh`.
double collective_time(const sharding::Collective& c, const mesh::DeviceMesh& mesh,
                       const CostOptions& options);

/// Number of devices on `axes`.
int64_t axes_size(const sharding::MeshAxes& axes, const mesh::DeviceMesh& mesh);

}  // namespace alpa::cost
