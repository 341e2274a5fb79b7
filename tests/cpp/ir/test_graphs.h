// Small graphs shared by the IR tests.
#pragma once

#include "ir/graph_builder.h"

namespace alpa::ir::testing {

/// x[8,16] -> Linear(16,32) -> GELU -> Linear(32,16) -> out.
inline Graph mlp_graph() {
  GraphBuilder b("mlp");
  ValueRef x = b.input("x", {{8, 16}, DType::kFloat32});
  ValueRef w1 = b.parameter("fc1.weight", {{32, 16}, DType::kFloat32});
  ValueRef b1 = b.parameter("fc1.bias", {{32}, DType::kFloat32});
  ValueRef w2 = b.parameter("fc2.weight", {{16, 32}, DType::kFloat32});
  ValueRef h = b.linear(x, w1, b1, "fc1");
  ValueRef a = b.unary("gelu", h, "act");
  ValueRef y = b.linear(a, w2, "fc2");
  b.output(y);
  return b.build().value();
}

}  // namespace alpa::ir::testing
