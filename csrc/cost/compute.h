// This file implements the compute-time model: a roofline over the op's
// FLOPs and the bytes it reads and writes, on one device, for the forward
// pass and (when the op is differentiated) a backward pass of 2× the
// forward FLOPs and bytes (DESIGN §2).
#pragma once

#include "ir/dtype.h"
#include "mesh/cluster.h"

namespace alpa::cost {

/// Seconds for `flops` FLOPs touching `bytes` bytes on `device`:
/// max(flops / peak, bytes / bandwidth); half-precision dtypes use the
/// half-precision peak.
double roofline_time(double flops, double bytes, ir::DType dtype,
                     const mesh::DeviceSpec& device);

/// Forward plus backward (2×) when `with_backward`.
double train_time(double forward_seconds, bool with_backward);

}  // namespace alpa::cost
