// This file implements the TorchScript importer: a torch::jit::Module (from
// torch.jit.script/trace + torch.jit.save, loaded with torch::jit::load)
// becomes the planner's ir::Graph, for LibTorch applications that have no
// Python to run alpa_torch.capture.
//
//   module.forward's TorchScript graph          ir::Graph
//   %w = prim::GetAttr[name="weight"](%fc)  ─▶  parameter "fc1.weight" f32[32,16]
//   %y = prim::CallMethod[name="forward"]   ─▶  (entered; ops inside get module "fc1")
//   %z = aten::linear(%x, %w, %b)           ─▶  op aten.linear.default f32[8,32]
//   %n = aten::size(%x, %0)                 ─▶  (evaluated: 8; shapes are static)
//   prim::If / prim::Loop                   ─▶  (the branch / iterations taken)
//
// The importer runs the method's graph node by node on meta tensors (shapes
// and dtypes, no data: an input of any size allocates nothing; no autograd;
// the module's tensors are replaced by meta copies, so the module is not
// changed) and records every tensor op with the shapes it produced. Only the
// ops listed by torchscript_supported_ops() are recorded; any other op that
// reads or writes a tensor is a NotImplemented error naming the op, and an
// op that needs tensor data (item(), a branch on a value) is an error too.
#pragma once

#include <ATen/core/ivalue.h>
#include <torch/csrc/jit/api/module.h>

#include <istream>
#include <string>
#include <vector>

#include "core/status.h"
#include "ir/graph.h"

namespace alpa::runtime {

struct TorchScriptImportOptions {
  std::string method = "forward";
  /// Names of the method's arguments, one per example input (the targets of
  /// the kInput nodes of tensor arguments); empty = the TorchScript
  /// method's own argument names.
  std::vector<std::string> input_names;
  /// Graph name; empty = the module's class name ("MyModel").
  std::string graph_name;
};

/// The graph of `module.<method>(example_inputs...)` with the shapes and
/// dtypes of the example inputs (pass ONE microbatch for a pipeshard plan).
/// Parameters and buffers become kParameter / kBuffer nodes named by their
/// FQN as in module.named_parameters(); every op node records its innermost
/// submodule's FQN (used by layer boundaries). The graph is verified and
/// its FLOPs annotated. Errors: NotImplemented for an unsupported op (named,
/// with its submodule and source line), InvalidArgument for wrong example
/// inputs or a method that fails on them.
core::StatusOr<ir::Graph> import_torchscript(const torch::jit::Module& module,
                                             const std::vector<c10::IValue>& example_inputs,
                                             const TorchScriptImportOptions& options = {});

/// torch::jit::load(`path`) (a file written by torch.jit.save), then
/// import_torchscript. InvalidArgument when the file cannot be loaded.
core::StatusOr<ir::Graph> import_torchscript_file(const std::string& path,
                                                  const std::vector<c10::IValue>& example_inputs,
                                                  const TorchScriptImportOptions& options = {});

/// As import_torchscript_file, from the bytes of such a file (`what` names
/// it in errors).
core::StatusOr<ir::Graph> import_torchscript_stream(std::istream& data, const std::string& what,
                                                    const std::vector<c10::IValue>& example_inputs,
                                                    const TorchScriptImportOptions& options = {});

/// Example inputs from tensor types, one per input ("f32[8,16]", "i64[2,128]",
/// "bool[4]"): meta tensors of those shapes and dtypes, so no size costs
/// memory. InvalidArgument naming the spec when one does not parse, has a
/// dtype torch cannot hold, or would exceed 2^62 bytes.
core::StatusOr<std::vector<c10::IValue>> example_inputs_from_specs(
    const std::vector<std::string>& specs);

/// Base names of the ATen ops the importer records ("linear", "layer_norm"),
/// sorted. In-place variants ("relu_") are recorded as their functional op.
const std::vector<std::string>& torchscript_supported_ops();

}  // namespace alpa::runtime
