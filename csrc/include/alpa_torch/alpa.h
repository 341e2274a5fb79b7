// This file implements the public umbrella header of alpa_torch's C++ API,
// for LibTorch applications (CMake: find_package(AlpaTorch), see
// docs/cpp_api.md):
//
//   target alpa_torch::planner (torch-free)     target alpa_torch::runtime
//   ─────────────────────────────────────────   ─────────────────────────────
//   graphs:  ir::GraphBuilder, load_graph_file  runtime::import_torchscript
//   cluster: mesh::cluster_preset, Cluster      runtime::PipelineExecutor +
//   plans:   plan::make_intra_op_plan,                   runtime::StageRunner
//            plan::make_pipeshard_plan,
//            plan::Plan (to_json, explain)
//
// The runtime half is included when the target links alpa_torch::runtime
// (which defines ALPA_TORCH_RUNTIME); the planner half needs no torch.
// Errors a user can cause come back as core::Status / core::StatusOr.
#pragma once

#include <fstream>
#include <sstream>
#include <string>

#include "core/json.h"
#include "core/status.h"
#include "ir/graph.h"
#include "ir/graph_builder.h"
#include "ir/json_format.h"
#include "ir/text_format.h"
#include "mesh/cluster.h"
#include "mesh/device_mesh.h"
#include "plan/intra_op_plan.h"
#include "plan/pipeshard_plan.h"
#include "plan/plan.h"
#include "plan/schedule.h"

#if defined(ALPA_TORCH_RUNTIME)
#include "runtime/pipeline_executor.h"
#include "runtime/torchscript_import.h"
#endif

namespace alpa {

/// A graph saved by alpa_torch.capture(model, args).save(path) (or written
/// with ir::graph_to_json), decoded and verified exactly as Python's
/// alpa_torch.load(path) does, so both planners see the same graph.
inline core::StatusOr<ir::Graph> load_graph_file(const std::string& path) {
  std::ifstream file(path);
  if (!file) {
    return core::not_found("no graph file at '" + path +
                           "'; write one with alpa_torch.capture(model, args).save(path)");
  }
  std::stringstream text;
  text << file.rdbuf();
  core::StatusOr<ir::Graph> graph = ir::parse_graph_json(text.str());
  if (!graph.ok()) return graph.status().with_context("graph file '" + path + "'");
  return graph;
}

/// Writes `graph` in the versioned JSON form alpa_torch.load(path) reads.
inline core::Status save_graph_file(const ir::Graph& graph, const std::string& path) {
  std::string text;
  try {
    text = core::dump_json(ir::graph_to_json(graph));
  } catch (const core::StatusError& e) {  // a name that is not UTF-8
    return e.status().with_context("graph file '" + path + "'");
  }
  std::ofstream file(path);
  if (!file) return core::invalid_argument("cannot write graph file '" + path + "'");
  file << text;
  return file ? core::ok_status()
              : core::invalid_argument("writing graph file '" + path + "' failed");
}

}  // namespace alpa
