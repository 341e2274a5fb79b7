// Tests the checks Plan::from_json runs on every plan it reads: each test
// takes a plan the planner made, breaks one field of its JSON the way a
// hand edit (or a fuzzer) would, and expects InvalidArgument naming the
// field, its value, what is allowed and the fix. The planner's own plans
// must all load back unchanged.
#include "plan/plan_validation.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>

#include "ir/graph_builder.h"
#include "plan/intra_op_plan.h"
#include "plan/pipeshard_plan.h"

namespace alpa::plan {
namespace {

using core::Json;
using ir::DType;
using ir::GraphBuilder;
using ir::ValueRef;

/// x[batch, width] -> `blocks` Linear(width, width) in modules h.<i>.
ir::Graph chain(int blocks, int64_t batch = 8, int64_t width = 32) {
  GraphBuilder b("chain");
  ValueRef h = b.input("x", {{batch, width}, DType::kFloat32});
  for (int i = 0; i < blocks; ++i) {
    const std::string fqn = "h." + std::to_string(i);
    h = b.linear(h, b.parameter(fqn + ".weight", {{width, width}, DType::kFloat32}), fqn);
  }
  b.output(b.op("aten.sum.default", {h}, {{"self", ir::InputRef{0}}}));
  return b.build().value();
}

mesh::Cluster a100(int64_t hosts, int64_t per_host) {
  return mesh::cluster_preset("a100-40gb", hosts, per_host).value();
}

Plan intra(std::array<int64_t, 2> mesh, int64_t hosts, int64_t per_host, int64_t width = 32) {
  IntraOpRequest r;
  r.mesh_shape = mesh;
  return make_intra_op_plan(chain(2, 8, width), a100(hosts, per_host), r).value();
}

/// Two stages of 2 devices each (blocks 0-1 | 2-3), 4 microbatches.
Plan pipeline(int64_t hosts = 1, int64_t per_host = 4) {
  PipeshardRequest r;
  r.layer_boundaries = {"h.2"};
  r.stage_meshes = {{1, 2}, {1, 2}};
  r.num_micro_batches = 4;
  return make_pipeshard_plan(chain(4), a100(hosts, per_host), r).value();
}

/// Member `key` of object `j` (which must have it).
Json& at(Json& j, const std::string& key) {
  if (!j.contains(key)) throw std::runtime_error("no member " + key);
  return j[key];
}

Json& stage(Json& j, size_t i) { return at(j, "stages").at(i); }

/// The status of parsing `plan`'s JSON after `edit`.
core::Status load_edited(const Plan& plan, const std::function<void(Json&)>& edit) {
  Json j = plan.to_json();
  edit(j);
  return Plan::parse(core::dump_json(j)).status();
}

/// Expects `status` to be InvalidArgument/ParseError containing every phrase.
void expect_error(const core::Status& status, std::initializer_list<const char*> phrases) {
  ASSERT_FALSE(status.ok()) << "the broken plan loaded";
  EXPECT_TRUE(status.code() == core::StatusCode::kInvalidArgument ||
              status.code() == core::StatusCode::kParseError)
      << status.to_string();
  for (const char* p : phrases) EXPECT_NE(status.message().find(p), std::string::npos)
      << "'" << p << "' not in: " << status.message();
}

// ---- the planner's own plans ----------------------------------------------------

TEST(PlanValidationTest, PlannerOutputsRoundTrip) {
  for (const Plan& p : {intra({1, 2}, 1, 2), intra({2, 2}, 2, 2), intra({2, 2}, 1, 4),
                        intra({1, 2}, 2, 4), pipeline(), pipeline(2, 2)}) {
    EXPECT_TRUE(validate_plan(p).ok()) << validate_plan(p).to_string() << p.explain();
    auto back = Plan::parse(core::dump_json(p.to_json()));
    ASSERT_TRUE(back.ok()) << back.status().to_string();
    EXPECT_EQ(core::dump_json(back->to_json()), core::dump_json(p.to_json()));
    EXPECT_TRUE(validate_plan_for_graph(p, chain(p.stages.size() == 1 ? 2 : 4)).ok())
        << validate_plan_for_graph(p, chain(p.stages.size() == 1 ? 2 : 4)).to_string();
  }
}

// ---- the reproductions of issue 11, defect 6 ------------------------------------

TEST(PlanValidationTest, GoldenMessageForANegativeStageIndex) {
  core::Status s = load_edited(pipeline(), [](Json& j) { at(stage(j, 0), "index") = Json(-5); });
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(),
            "invalid plan: stages[0].index: -5 but this is stage 0 of the list; stages are "
            "numbered 0, 1, ... in pipeline order");
}

TEST(PlanValidationTest, RepeatedDeviceId) {
  expect_error(load_edited(intra({1, 2}, 1, 2),
                           [](Json& j) {
                             at(stage(j, 0), "device_ids") = Json::array({Json(0), Json(0)});
                           }),
               {"stages[0].device_ids[1]", "device 0 is listed twice", "in this stage"});
}

TEST(PlanValidationTest, DeviceSharedByTwoStages) {
  expect_error(load_edited(pipeline(),
                           [](Json& j) {
                             at(stage(j, 1), "device_ids") = Json::array({Json(1), Json(3)});
                           }),
               {"stages[1].device_ids[0]", "device 1", "also in stage 0"});
}

TEST(PlanValidationTest, SpecNamingAMissingMeshAxis) {
  expect_error(load_edited(intra({1, 2}, 1, 2),
                           [](Json& j) {
                             at(at(stage(j, 0), "param_specs"), "h.0.weight") = Json("S7R");
                           }),
               {"stages[0].param_specs['h.0.weight']", "'S7R'", "mesh axis 7", "axes 0 and 1"});
}

TEST(PlanValidationTest, ZeroMicroBatches) {
  expect_error(load_edited(pipeline(), [](Json& j) { at(j, "num_micro_batches") = Json(0); }),
               {"num_micro_batches: 0 is outside the allowed range [1, 1048576]"});
}

TEST(PlanValidationTest, AnEnormousCluster) {
  expect_error(load_edited(intra({1, 2}, 1, 2),
                           [](Json& j) { at(at(j, "cluster"), "num_hosts") = Json(int64_t{1000000000}); }),
               {"cluster.num_hosts: 1000000000 is outside the allowed range [1, 65536]",
                "Cluster.preset"});
  expect_error(load_edited(intra({1, 2}, 1, 2),
                           [](Json& j) {
                             at(at(j, "cluster"), "num_hosts") = Json(int64_t{60000});
                             at(at(j, "cluster"), "devices_per_host") = Json(int64_t{4000});
                           }),
               {"60000 hosts × 4000 devices", "more than the 1048576"});
}

// ---- the cluster ------------------------------------------------------------------

TEST(PlanValidationTest, ClusterNumbers) {
  const Plan p = intra({1, 2}, 1, 2);
  expect_error(load_edited(p, [](Json& j) { at(at(j, "cluster"), "devices_per_host") = Json(0); }),
               {"invalid plan: cluster", "at least 1"});
  expect_error(load_edited(p, [](Json& j) {
                 at(at(at(j, "cluster"), "device"), "peak_flops_half") = Json(-1.0);
               }),
               {"cluster.device.peak_flops_half: -1 is not a finite number >= 0"});
  expect_error(load_edited(p, [](Json& j) {
                 at(at(at(j, "cluster"), "intra_host"), "beta") =
                     Json(std::numeric_limits<double>::infinity());
               }),
               {"invalid plan: cluster", "finite"});
}

// ---- stages and their devices ------------------------------------------------------

TEST(PlanValidationTest, DeviceOutOfRange) {
  expect_error(load_edited(intra({1, 2}, 1, 2),
                           [](Json& j) {
                             at(stage(j, 0), "device_ids") = Json::array({Json(0), Json(9)});
                           }),
               {"stages[0].device_ids[1]", "device 9 is not in the cluster", "ids 0..1"});
}

TEST(PlanValidationTest, MeshShapeDisagreesWithTheDevices) {
  expect_error(load_edited(intra({2, 2}, 1, 4),
                           [](Json& j) {
                             at(stage(j, 0), "mesh_shape") = Json::array({Json(2), Json(3)});
                           }),
               {"stages[0].mesh_shape: (2, 3) holds 6 devices but device_ids lists 4"});
  expect_error(load_edited(intra({2, 2}, 1, 4),
                           [](Json& j) {
                             at(stage(j, 0), "mesh_shape") = Json::array({Json(0), Json(4)});
                           }),
               {"stages[0].mesh_shape[0]: 0 is outside"});
}

TEST(PlanValidationTest, NoStages) {
  expect_error(load_edited(intra({1, 2}, 1, 2),
                           [](Json& j) { at(j, "stages") = Json::array({}); }),
               {"stages: the plan has no stages"});
}

TEST(PlanValidationTest, LayersMustBeContiguous) {
  const Plan p = pipeline();
  expect_error(load_edited(p, [](Json& j) {
                 at(stage(j, 1), "layers") = Json::array({Json(2), Json(2)});
               }),
               {"stages[1].layers: [2, 2] is not a layer range starting at layer 1"});
  expect_error(load_edited(p, [](Json& j) { at(j, "num_layers") = Json(5); }),
               {"stages[1].layers", "num_layers = 5"});
}

TEST(PlanValidationTest, SubmeshMustFitTheClusterAndTheDevices) {
  const Plan p = pipeline(2, 2);   // stage 0 on host 0, stage 1 on host 1
  expect_error(load_edited(p, [](Json& j) {
                 at(stage(j, 0), "submesh") = Json::array({Json(3), Json(2)});
               }),
               {"stages[0].submesh: (3, 2) is not a sub-mesh"});
  expect_error(load_edited(p, [](Json& j) {
                 at(stage(j, 0), "device_ids") = Json::array({Json(0), Json(2)});
                 at(stage(j, 1), "device_ids") = Json::array({Json(1), Json(3)});
               }),
               {"stages[0].device_ids", "lie on 2 host(s)", "sub-mesh (1, 2) needs 2 device(s) "
                "on each of 1 host(s)"});
}

// ---- specs, collectives, values -----------------------------------------------------

TEST(PlanValidationTest, PartialSumsOnlyOnNodeValues) {
  expect_error(load_edited(intra({1, 2}, 1, 2),
                           [](Json& j) {
                             at(at(stage(j, 0), "param_specs"), "h.0.weight") = Json("S0RP1");
                           }),
               {"param_specs['h.0.weight']", "'S0RP1' holds partial sums", "drop the P suffix"});
  expect_error(load_edited(intra({2, 2}, 1, 4),
                           [](Json& j) {
                             at(at(stage(j, 0), "param_specs"), "h.0.weight") = Json("S0S0");
                           }),
               {"'S0S0' uses mesh axis 0 twice"});
}

TEST(PlanValidationTest, CollectivesReferToTheirStage) {
  const Plan p = intra({1, 2}, 1, 2, 4096);   // Megatron: a forward all-reduce
  ASSERT_FALSE(p.stages[0].collectives.empty()) << p.explain();
  expect_error(load_edited(p, [](Json& j) {
                 at(at(stage(j, 0), "collectives")[0], "node") = Json("ghost");
               }),
               {"stages[0].collectives[0].node: 'ghost' is not a node of this stage"});
  expect_error(load_edited(p, [](Json& j) {
                 at(at(stage(j, 0), "collectives")[0], "input") = Json(7);
               }),
               {"stages[0].collectives[0].input: 7 is not an input of node"});
  expect_error(load_edited(p, [](Json& j) {
                 at(at(stage(j, 0), "collectives")[0], "phase") = Json("sideways");
               }),
               {"collectives[0].phase: 'sideways' is not a phase"});
  expect_error(load_edited(p, [](Json& j) {
                 at(at(stage(j, 0), "collectives")[0], "axes") =
                     Json::array({Json(int64_t{1} << 33)});
               }),
               {"collectives[0].axes: 8589934592 is not a mesh axis"});
  expect_error(load_edited(p, [](Json& j) {
                 at(at(stage(j, 0), "collectives")[0], "bytes") = Json(-4.0);
               }),
               {"collectives[0].bytes: -4 is not a finite number >= 0"});
}

TEST(PlanValidationTest, BoundaryValuesLineUp) {
  const Plan p = pipeline();
  expect_error(load_edited(p, [](Json& j) {
                 at(at(stage(j, 1), "inputs")[0], "meta") = Json("f32[8,16]");
               }),
               {"stages[1].inputs[0]", "f32[8,16]", "where stage 0 sends", "f32[8,32]"});
  expect_error(load_edited(p, [](Json& j) {
                 at(at(stage(j, 0), "outputs")[0], "spec") = Json("RS0");
                 at(at(stage(j, 0), "outputs")[0], "meta") = Json("f32[8,33]");
               }),
               {"stages[0].outputs[0].spec", "does not divide"});
  expect_error(load_edited(p, [](Json& j) {
                 at(at(stage(j, 1), "inputs")[0], "spec") = Json("S0");
               }),
               {"stages[1].inputs[0].spec", "has 1 dims but the tensor [8,32] has 2"});
  expect_error(load_edited(p, [](Json& j) { at(stage(j, 0), "outputs") = Json::array({}); }),
               {"stages[1].inputs[0]", "where stage 0 sends nothing"});
  expect_error(load_edited(p, [](Json& j) {
                 at(at(stage(j, 0), "outputs")[0], "meta") =
                     Json("f32[4294967296,4294967296]");
               }),
               {"stages[0].outputs[0].meta", "at most 281474976710656 elements"});
}

TEST(PlanValidationTest, GraphOutputsAreEachProducedOnce) {
  const Plan p = pipeline();
  expect_error(load_edited(p, [](Json& j) {
                 at(stage(j, 0), "graph_outputs") = Json::array({Json(0)});
               }),
               {"stages[1].graph_outputs[0]: 0 is listed twice"});
  expect_error(load_edited(p, [](Json& j) {
                 at(stage(j, 1), "graph_outputs") = Json::array({Json(1)});
               }),
               {"no stage produces output 0"});
}

TEST(PlanValidationTest, NumbersAreFiniteAndNonNegative) {
  const Plan p = pipeline();
  expect_error(load_edited(p, [](Json& j) {
                 at(stage(j, 1), "predicted_time") = Json(std::nan(""));
               }),
               {"stages[1].predicted_time: nan is not a finite number >= 0"});
  expect_error(load_edited(p, [](Json& j) { at(stage(j, 0), "memory_bytes") = Json(-1.0); }),
               {"stages[0].memory_bytes: -1"});
  expect_error(load_edited(p, [](Json& j) { at(j, "memory_budget") = Json(std::nan("")); }),
               {"memory_budget: nan is not a budget"});
}

TEST(PlanValidationTest, NamesAndModes) {
  const Plan p = pipeline();
  expect_error(load_edited(p, [](Json& j) { at(j, "schedule") = Json("zigzag"); }),
               {"schedule: 'zigzag' is not a pipeline schedule; use 'gpipe' or '1f1b'"});
  expect_error(load_edited(p, [](Json& j) { at(j, "cost_mode") = Json("fast"); }),
               {"cost_mode: 'fast'"});
  expect_error(load_edited(p, [](Json& j) { at(j, "warnings").push_back(Json(3)); }),
               {"plan.warnings[0]: expected a string"});
  expect_error(load_edited(p, [](Json& j) {
                 Json& nodes = at(stage(j, 0), "nodes");
                 Json first = nodes[0];
                 nodes.push_back(first);
               }),
               {"is recorded twice"});
}

// ---- against the graph ---------------------------------------------------------------

TEST(PlanValidationTest, AgainstTheGraph) {
  const Plan p = pipeline();
  expect_error(validate_plan_for_graph(p, chain(3)), {"graph_fingerprint", "plan this graph"});
  Plan renamed = p;
  renamed.stages[0].param_specs[0].first = "h.9.weight";
  expect_error(validate_plan_for_graph(renamed, chain(4)),
               {"stages[0].param_specs['h.9.weight']", "is not a parameter of graph 'chain'"});
  Plan ghost = p;
  ghost.stages[1].nodes[3].node = "ghost";
  expect_error(validate_plan_for_graph(ghost, chain(4)), {"'ghost' is no node of graph"});
  Plan wide = p;
  wide.stages[0].nodes[0].outputs[0] = sharding::ShardingSpec::parse("RRR").value();
  expect_error(validate_plan_for_graph(wide, chain(4)),
               {"stages[0].nodes[0].outputs[0]", "has 3 dims but the tensor"});
}

}  // namespace
}  // namespace alpa::plan
