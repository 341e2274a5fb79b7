// This file implements the roofline compute model.
#include "cost/compute.h"

#include <algorithm>

namespace alpa::cost {

double roofline_time(double flops, double bytes, ir::DType dtype,
                     const mesh::DeviceSpec& device) {
  bool half = dtype == ir::DType::kFloat16 || dtype == ir::DType::kBFloat16;
  double peak = half && device.peak_flops_half > 0 ? device.peak_flops_half : device.peak_flops;
  return std::max(flops / peak, bytes / device.memory_bandwidth);
}

double train_time(double forward_seconds, bool with_backward) {
  return with_backward ? 3 * forward_seconds : forward_seconds;
}

}  // namespace alpa::cost
