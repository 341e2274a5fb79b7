// Golden local programs (rewrite/build_local_program.h): the text each plan's
// stage program prints, written out here, and its parse-back.
#include "rewrite/build_local_program.h"

#include <gtest/gtest.h>

#include "ir/graph_builder.h"
#include "plan/intra_op_plan.h"
#include "plan/pipeshard_plan.h"

namespace alpa::rewrite {
namespace {

using ir::DType;
using ir::GraphBuilder;
using ir::InputRef;
using ir::ValueRef;

sharding::ShardingSpec spec(const char* text) { return sharding::ShardingSpec::parse(text).value(); }

plan::Plan plan_of(const ir::Graph& g, std::array<int64_t, 2> mesh_shape,
                   std::map<std::string, std::string> pins,
                   std::map<std::string, std::string> strategies = {}) {
  plan::IntraOpRequest req;
  req.mesh_shape = mesh_shape;
  for (auto& [name, text] : pins) req.options.pinned[name] = spec(text.c_str());
  req.options.pinned_strategies = std::move(strategies);
  mesh::Cluster cluster = mesh::cluster_preset("a100-40gb", 1, mesh_shape[0] * mesh_shape[1]).value();
  auto p = plan::make_intra_op_plan(g, cluster, req);
  EXPECT_TRUE(p.ok()) << p.status().to_string();
  return std::move(p).value();
}

LocalProgram program_of(const ir::Graph& g, const plan::Plan& p, int64_t stage = 0) {
  auto program = build_local_program(g, p, stage);
  EXPECT_TRUE(program.ok()) << program.status().to_string();
  LocalProgram out = std::move(program).value();
  auto back = parse_local_program(out.to_string());
  EXPECT_TRUE(back.ok()) << back.status().to_string();
  if (back.ok()) EXPECT_EQ(*back, out) << "parse(to_string()) differs:\n" << back->to_string();
  return out;
}

/// x[8,32] -> Linear(32,128)+b -> GELU -> Linear(128,32)+b -> sum.
ir::Graph mlp(int64_t batch) {
  GraphBuilder b("mlp");
  ValueRef x = b.input("x", {{batch, 32}, DType::kFloat32});
  ValueRef w1 = b.parameter("fc1.weight", {{128, 32}, DType::kFloat32});
  ValueRef b1 = b.parameter("fc1.bias", {{128}, DType::kFloat32});
  ValueRef w2 = b.parameter("fc2.weight", {{32, 128}, DType::kFloat32});
  ValueRef b2 = b.parameter("fc2.bias", {{32}, DType::kFloat32});
  ValueRef h = b.unary("gelu", b.linear(x, w1, b1, "fc1"), "act");
  b.output(b.op("aten.sum.default", {b.linear(h, w2, b2, "fc2")}, {{"self", InputRef{0}}}));
  return b.build().value();
}

TEST(LocalProgramTest, MegatronMlpOnTwoDevices) {
  ir::Graph g = mlp(8);
  plan::Plan p = plan_of(g, {1, 2}, {{"x", "RR"}, {"fc1.weight", "S0R"}, {"fc1.bias", "S0"},
                                     {"fc2.weight", "RS0"}, {"fc2.bias", "R"}});
  // Column-split fc1 (its input's gradient all-reduced: Megatron's f; x
  // needs none), row-split fc2 with its bias added after the sum (g).
  EXPECT_EQ(program_of(g, p).to_string(),
            "stage 0 mesh 2x1\n"
            "input %x \"x\" f32[8,32] RR local [8,32]\n"
            "parameter %fc1.weight \"fc1.weight\" f32[128,32] S0R local [64,32]\n"
            "parameter %fc1.bias \"fc1.bias\" f32[128] S0 local [64]\n"
            "parameter %fc2.weight \"fc2.weight\" f32[32,128] RS0 local [32,64]\n"
            "parameter %fc2.bias \"fc2.bias\" f32[32] R local [32]\n"
            "node %linear = aten.linear.default plain\n"
            "  in %x RR\n"
            "  in %fc1.weight S0R\n"
            "  in %fc1.bias S0\n"
            "  out f32[8,128] RS0 local [8,64]\n"
            "node %gelu = aten.gelu.default plain\n"
            "  in %linear RS0\n"
            "  out f32[8,128] RS0 local [8,64]\n"
            "node %linear_1 = aten.linear.default partial_sum reduce (0) addend bias\n"
            "  in %gelu RS0\n"
            "  in %fc2.weight RS0\n"
            "  in %fc2.bias R\n"
            "  out f32[8,32] RR local [8,32]\n"
            "node %sum = aten.sum.default plain\n"
            "  in %linear_1 RR\n"
            "  out f32[] - local []\n"
            "output 0 %sum f32[] - local []\n");
}

TEST(LocalProgramTest, DataTimesTensorOnTwoByTwo) {
  ir::Graph g = mlp(8);
  plan::Plan p = plan_of(g, {2, 2}, {{"x", "S0R"}, {"fc1.weight", "S1R"}, {"fc1.bias", "S1"},
                                     {"fc2.weight", "RS1"}, {"fc2.bias", "R"}},
                         {{"linear", "S0S1 = S0R x S1R x S1"}, {"linear_1", "S0R = S0S1 x RS1 x R"}});
  // Batch split on axis 0, Megatron on axis 1: every parameter's gradient
  // is all-reduced over axis 0, in one bucket; fc2's partial sums over 1.
  EXPECT_EQ(program_of(g, p).to_string(),
            "stage 0 mesh 2x2\n"
            "input %x \"x\" f32[8,32] S0R local [4,32]\n"
            "parameter %fc1.weight \"fc1.weight\" f32[128,32] S1R local [64,32]\n"
            "parameter %fc1.bias \"fc1.bias\" f32[128] S1 local [64]\n"
            "parameter %fc2.weight \"fc2.weight\" f32[32,128] RS1 local [32,64]\n"
            "parameter %fc2.bias \"fc2.bias\" f32[32] R local [32]\n"
            "node %linear = aten.linear.default plain\n"
            "  in %x S0R\n"
            "  in %fc1.weight S1R bucketed\n"
            "  in %fc1.bias S1 bucketed\n"
            "  out f32[8,128] S0S1 local [4,64]\n"
            "node %gelu = aten.gelu.default plain\n"
            "  in %linear S0S1\n"
            "  out f32[8,128] S0S1 local [4,64]\n"
            "node %linear_1 = aten.linear.default partial_sum reduce (1) addend bias\n"
            "  in %gelu S0S1\n"
            "  in %fc2.weight RS1 bucketed\n"
            "  in %fc2.bias R bucketed\n"
            "  out f32[8,32] S0R local [4,32]\n"
            "node %sum = aten.sum.default partial_sum reduce (0)\n"
            "  in %linear_1 S0R\n"
            "  out f32[] - local []\n"
            "output 0 %sum f32[] - local []\n"
            "bucket (0) f32 fc1.weight fc1.bias fc2.weight fc2.bias\n");
}

/// Issue 12's defect 1: a batch dim split over both axes (S01) read split
/// over axis 1 only. Gathering axis 0 alone would permute rows; the steps
/// gather axis 1, then axis 0, then slice axis 1.
TEST(LocalProgramTest, BothAxesToOneAxis) {
  GraphBuilder b("two_linears");
  ValueRef x = b.input("x", {{8, 4, 16}, DType::kFloat32});
  ValueRef w1 = b.parameter("fc1.weight", {{16, 16}, DType::kFloat32});
  ValueRef b1 = b.parameter("fc1.bias", {{16}, DType::kFloat32});
  ValueRef w2 = b.parameter("fc2.weight", {{16, 16}, DType::kFloat32});
  ValueRef b2 = b.parameter("fc2.bias", {{16}, DType::kFloat32});
  ValueRef h = b.linear(x, w1, b1, "fc1");
  b.output(b.linear(h, w2, b2, "fc2"));
  ir::Graph g = b.build().value();
  plan::Plan p = plan_of(g, {2, 2}, {}, {{"linear", "S01RR = S01RR x RR x R"},
                                         {"linear_1", "S1RS0 = S1RR x S0R x S0"}});
  // fc1 is data parallel over both axes (its gradients bucketed over both);
  // fc2 reads the batch split over axis 1 only and splits its weight's rows
  // over axis 0, so its input's gradient is all-reduced over axis 0.
  EXPECT_EQ(program_of(g, p).to_string(),
            "stage 0 mesh 2x2\n"
            "input %x \"x\" f32[8,4,16] S01RR local [2,4,16]\n"
            "parameter %fc1.weight \"fc1.weight\" f32[16,16] RR local [16,16]\n"
            "parameter %fc1.bias \"fc1.bias\" f32[16] R local [16]\n"
            "parameter %fc2.weight \"fc2.weight\" f32[16,16] S0R local [8,16]\n"
            "parameter %fc2.bias \"fc2.bias\" f32[16] S0 local [8]\n"
            "node %linear = aten.linear.default plain\n"
            "  in %x S01RR\n"
            "  in %fc1.weight RR bucketed\n"
            "  in %fc1.bias R bucketed\n"
            "  out f32[8,4,16] S01RR local [2,4,16]\n"
            "node %linear_1 = aten.linear.default plain\n"
            "  in %linear S01RR -> S1RR by all_gather@1(0->-1) all_gather@0(0->-1) slice@1(-1->0) "
            "grad_reduce (0)\n"
            "  in %fc2.weight S0R bucketed\n"
            "  in %fc2.bias S0 bucketed\n"
            "  out f32[8,4,16] S1RS0 local [4,4,8]\n"
            "output 0 %linear_1 f32[8,4,16] S1RS0 local [4,4,8]\n"
            "bucket (0,1) f32 fc1.weight fc1.bias\n"
            "bucket (1) f32 fc2.weight fc2.bias\n");
}

/// GPT-2's attention projections (Conv1D: addmm with a [in, out] weight)
/// with the fused q/k/v weight block-interleaved (RS0x3): each device holds
/// a slice of q, k and v, so the split stays local.
TEST(LocalProgramTest, FusedQkvBlockInterleavedOnFour) {
  GraphBuilder b("gpt2_attention");
  ValueRef x = b.input("x", {{16, 64}, DType::kFloat32});
  ValueRef w = b.parameter("c_attn.weight", {{64, 192}, DType::kFloat32});
  ValueRef bias = b.parameter("c_attn.bias", {{192}, DType::kFloat32});
  ValueRef w2 = b.parameter("c_proj.weight", {{64, 64}, DType::kFloat32});
  ValueRef bias2 = b.parameter("c_proj.bias", {{64}, DType::kFloat32});
  ValueRef qkv = b.op("aten.addmm.default", {bias, x, w},
                      {{"self", InputRef{0}}, {"mat1", InputRef{1}}, {"mat2", InputRef{2}},
                       {"beta", int64_t{1}}, {"alpha", int64_t{1}}}, "attn.c_attn");
  std::vector<ValueRef> parts = b.op_with_meta(
      "aten.split.Tensor", {qkv}, {{"self", InputRef{0}}, {"split_size", int64_t{64}}, {"dim", int64_t{1}}},
      {{{16, 64}, DType::kFloat32}, {{16, 64}, DType::kFloat32}, {{16, 64}, DType::kFloat32}}, "attn");
  ValueRef mixed = b.binary("add", b.binary("mul", parts[0], parts[1], "attn"),
                            parts[2], "attn");
  ValueRef out = b.op("aten.addmm.default", {bias2, mixed, w2},
                      {{"self", InputRef{0}}, {"mat1", InputRef{1}}, {"mat2", InputRef{2}},
                       {"beta", int64_t{1}}, {"alpha", int64_t{1}}}, "attn.c_proj");
  b.output(b.op("aten.sum.default", {out}, {{"self", InputRef{0}}}));
  ir::Graph g = b.build().value();
  plan::Plan p = plan_of(g, {1, 4}, {{"x", "RR"}, {"c_attn.weight", "RS0x3"}, {"c_attn.bias", "S0x3"},
                                     {"c_proj.weight", "S0R"}, {"c_proj.bias", "R"}});
  EXPECT_EQ(program_of(g, p).to_string(),
            "stage 0 mesh 4x1\n"
            "input %x \"x\" f32[16,64] RR local [16,64]\n"
            "parameter %c_attn.weight \"c_attn.weight\" f32[64,192] RS0x3 local [64,48]\n"
            "parameter %c_attn.bias \"c_attn.bias\" f32[192] S0x3 local [48]\n"
            "parameter %c_proj.weight \"c_proj.weight\" f32[64,64] S0R local [16,64]\n"
            "parameter %c_proj.bias \"c_proj.bias\" f32[64] R local [64]\n"
            "node %addmm = aten.addmm.default plain\n"
            "  in %c_attn.bias S0x3\n"
            "  in %x RR\n"
            "  in %c_attn.weight RS0x3\n"
            "  out f32[16,192] RS0x3 local [16,48]\n"
            "node %split = aten.split.Tensor plain\n"
            "  in %addmm RS0x3\n"
            "  arg split_size [16]\n"
            "  out f32[16,64] RS0 local [16,16]\n"
            "  out f32[16,64] RS0 local [16,16]\n"
            "  out f32[16,64] RS0 local [16,16]\n"
            "node %mul = aten.mul.Tensor plain\n"
            "  in %split RS0\n"
            "  in %split#1 RS0\n"
            "  out f32[16,64] RS0 local [16,16]\n"
            "node %add = aten.add.Tensor plain\n"
            "  in %mul RS0\n"
            "  in %split#2 RS0\n"
            "  out f32[16,64] RS0 local [16,16]\n"
            "node %addmm_1 = aten.addmm.default partial_sum reduce (0) local_op aten.mm.default addend self\n"
            "  in %c_proj.bias R\n"
            "  in %add RS0\n"
            "  in %c_proj.weight S0R\n"
            "  out f32[16,64] RR local [16,64]\n"
            "node %sum = aten.sum.default plain\n"
            "  in %addmm_1 RR\n"
            "  out f32[] - local []\n"
            "output 0 %sum f32[] - local []\n");
}

/// A two-stage pipeline: stage 0 sends what stage 1 receives.
TEST(LocalProgramTest, PipelineStagesSendAndReceive) {
  GraphBuilder b("chain");
  ValueRef h = b.input("x", {{64, 128}, DType::kFloat32});
  for (int i = 0; i < 2; ++i) {
    const std::string fqn = "h." + std::to_string(i) + ".fc";
    h = b.linear(h, b.parameter(fqn + ".weight", {{128, 128}, DType::kFloat32}), fqn);
  }
  b.output(b.op("aten.sum.default", {h}, {{"self", InputRef{0}}}));
  ir::Graph g = b.build().value();
  plan::PipeshardRequest r;
  r.layer_boundaries = {"h.1"};
  r.stage_meshes = {{1, 2}, {1, 2}};
  r.num_micro_batches = 2;
  mesh::Cluster cluster = mesh::cluster_preset("a100-40gb", 1, 4).value();
  plan::Plan p = plan::make_pipeshard_plan(g, cluster, r).value();
  ASSERT_EQ(p.stages.size(), 2u);
  LocalProgram first = program_of(g, p, 0), second = program_of(g, p, 1);
  EXPECT_TRUE(first.received.empty());
  ASSERT_EQ(first.sends.size(), 1u);
  EXPECT_EQ(first.sends[0].value.value.to_string(), "%linear");
  EXPECT_TRUE(first.graph_outputs.empty());
  ASSERT_EQ(second.received.size(), 1u);
  EXPECT_EQ(second.received[0].value.to_string(), "%linear");
  // Each side holds the boundary value in its own stage's layout (the
  // cross-mesh resharding between them is the runtime's, plan/cross_mesh.h).
  EXPECT_EQ(first.sends[0].move.to, p.stages[0].outputs.at(0).spec) << first.to_string();
  EXPECT_EQ(second.received[0].spec, p.stages[1].inputs.at(0).spec) << second.to_string();
  EXPECT_EQ(second.sends.size(), 0u);
  ASSERT_EQ(second.graph_output_indices, (std::vector<int64_t>{0}));
  EXPECT_EQ(second.graph_outputs[0].value.value.to_string(), "%sum");
  // Each stage runs only its own layer and holds only its own weight.
  ASSERT_EQ(first.nodes.size(), 1u);
  EXPECT_EQ(first.nodes[0].name, "linear");
  ASSERT_EQ(second.placeholders.size(), 1u);
  EXPECT_EQ(second.placeholders[0].target, "h.1.fc.weight");
}

/// A scaled addmm (beta != 1) cannot have its `self` added after the sum
/// of a split contraction; the builder says so and what to write instead.
TEST(LocalProgramTest, RefusesAScaledAddmmWithSplitContraction) {
  GraphBuilder b("scaled");
  ValueRef x = b.input("x", {{16, 64}, DType::kFloat32});
  ValueRef w = b.parameter("w", {{64, 32}, DType::kFloat32});
  ValueRef bias = b.parameter("bias", {{32}, DType::kFloat32});
  b.output(b.op("aten.addmm.default", {bias, x, w},
                {{"self", InputRef{0}}, {"mat1", InputRef{1}}, {"mat2", InputRef{2}},
                 {"beta", int64_t{2}}, {"alpha", int64_t{1}}}));
  ir::Graph g = b.build().value();
  plan::Plan p = plan_of(g, {1, 2}, {{"x", "RS0"}, {"w", "S0R"}, {"bias", "R"}});
  auto refused = build_local_program(g, p, 0);
  ASSERT_FALSE(refused.ok()) << refused->to_string();
  EXPECT_EQ(refused.status().code(), core::StatusCode::kNotImplemented);
  EXPECT_NE(refused.status().message().find(
                "node 'addmm' (aten.addmm.default) scales its terms (beta or alpha is not 1)"),
            std::string::npos) << refused.status().message();
  EXPECT_NE(refused.status().message().find("write the matmul and the addition as separate ops"),
            std::string::npos);
}

/// A row-split table: the lookup is local with the rows each piece holds;
/// scale_grad_by_freq needs every index's count, so it is refused.
TEST(LocalProgramTest, RowSplitEmbedding) {
  for (bool scale : {false, true}) {
    GraphBuilder b("embed");
    ValueRef ids = b.input("ids", {{4, 8}, DType::kInt64});
    ValueRef table = b.parameter("wte.weight", {{64, 16}, DType::kFloat32});
    b.output(b.op_with_meta("aten.embedding.default", {table, ids},
                            {{"weight", InputRef{0}}, {"indices", InputRef{1}},
                             {"padding_idx", int64_t{-1}}, {"scale_grad_by_freq", scale},
                             {"sparse", false}},
                            {{{4, 8, 16}, DType::kFloat32}})[0]);
    ir::Graph g = b.build().value();
    plan::Plan p = plan_of(g, {1, 2}, {{"ids", "RR"}, {"wte.weight", "S0R"}});
    auto program = build_local_program(g, p, 0);
    if (!scale) {
      ASSERT_TRUE(program.ok()) << program.status().to_string();
      ASSERT_EQ(program->nodes.size(), 1u);
      EXPECT_EQ(program->nodes[0].kind, LocalOpKind::kRowSplitEmbedding) << program->to_string();
      EXPECT_EQ(program->nodes[0].rows_per_piece, 32);
      continue;
    }
    ASSERT_FALSE(program.ok());
    EXPECT_EQ(program.status().code(), core::StatusCode::kNotImplemented);
    EXPECT_NE(program.status().message().find("has scale_grad_by_freq=True and the plan splits its "
                                              "table by rows"), std::string::npos);
    EXPECT_NE(program.status().message().find("build the nn.Embedding with scale_grad_by_freq=False"),
              std::string::npos);
  }
}

TEST(LocalProgramTest, ParseErrorsNameTheLine) {
  auto bad = parse_local_program("stage 0 mesh 1x2\nnode %a = aten.relu.default sideways\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "local program line 2: unknown local op kind 'sideways'");
  bad = parse_local_program("stage 0 mesh 1x2\n  in %x RR\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "local program line 2: 'in' outside a node");
  bad = parse_local_program("node %a = aten.relu.default plain\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "local program line 1: a local program starts with 'stage N mesh AxB'");
  bad = parse_local_program(
      "stage 0 mesh 2x2\nnode %a = aten.relu.default plain\n  in %x S0R -> RR by all_gather@0(0->)\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "local program line 3: '' is not an integer");
}

TEST(LocalProgramTest, RefusesAStageTheGraphCannotMatch) {
  ir::Graph g = mlp(8);
  plan::Plan p = plan_of(g, {1, 2}, {});
  auto missing = build_local_program(g, p, 3);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message(), "the plan has 1 stage(s); there is no stage 3");
}

}  // namespace
}  // namespace alpa::rewrite
