// Tests cluster_layers(): hand-built graphs with known segmentations, the
// tie-breaks (FLOP balance, bytes, earliest), placeholders, error messages, the automatic layer count, the
// text form, and a brute-force cross-check on small random DAGs.
#include "inter_op/layer_clustering.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <set>
#include <utility>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "ir/graph_builder.h"

namespace alpa::inter_op {
namespace {

using ir::ValueRef;

/// Builds graphs with chosen FLOPs and byte sizes (int8 tensors of `bytes`
/// elements), bypassing shape inference.
class Sketch {
 public:
  ValueRef input(int64_t bytes) { return placeholder(ir::NodeKind::kInput, bytes); }
  ValueRef parameter(int64_t bytes) { return placeholder(ir::NodeKind::kParameter, bytes); }
  std::vector<ValueRef> op(double flops, std::vector<ValueRef> inputs,
                           std::vector<int64_t> out_bytes, const std::string& module = "") {
    ir::Node n;
    n.kind = ir::NodeKind::kOp;
    n.op = "test.op";
    n.name = fmt::format("op{}", graph.num_nodes());
    n.inputs = std::move(inputs);
    n.flops = flops;
    n.module = module;
    for (int64_t b : out_bytes) n.outputs.push_back(ir::TensorMeta{{b}, ir::DType::kInt8});
    ir::NodeId id = graph.add_node(std::move(n));
    std::vector<ValueRef> refs;
    for (size_t i = 0; i < out_bytes.size(); ++i) refs.push_back({id, static_cast<int64_t>(i)});
    return refs;
  }
  ValueRef op1(double flops, std::vector<ValueRef> inputs, int64_t bytes,
               const std::string& module = "") {
    return op(flops, std::move(inputs), {bytes}, module)[0];
  }

  ir::Graph graph{"sketch"};

 private:
  ValueRef placeholder(ir::NodeKind kind, int64_t bytes) {
    ir::Node n;
    n.kind = kind;
    n.name = fmt::format("p{}", graph.num_nodes());
    n.target = n.name;
    n.outputs = {ir::TensorMeta{{bytes}, ir::DType::kInt8}};
    return {graph.add_node(std::move(n)), 0};
  }
};

LayerClustering cluster_ok(const ir::Graph& g, int64_t layers, double eps = 0.5) {
  auto result = cluster_layers(g, LayerClusteringOptions{layers, eps, 16});
  EXPECT_TRUE(result.ok()) << result.status().to_string();
  return result.ok() ? *result : LayerClustering{};
}

/// Op node ids of each layer, in order.
std::vector<std::vector<int64_t>> layer_ops(const ir::Graph& g, const LayerClustering& c) {
  std::vector<std::vector<int64_t>> out(c.num_layers());
  for (const ir::Node& n : g.nodes()) {
    if (!n.is_placeholder()) out[c.layer_of_node[n.id.index()]].push_back(n.id.value);
  }
  return out;
}

using Ops = std::vector<std::vector<int64_t>>;

TEST(LayerClusteringTest, CutsWhereTheActivationIsSmallest) {
  Sketch s;
  ValueRef x = s.input(40);                 // node 0
  ValueRef a = s.op1(1, {x}, 100);          // node 1
  ValueRef b = s.op1(1, {a}, 10);           // node 2
  ValueRef c = s.op1(1, {b}, 100);          // node 3
  s.op1(1, {c}, 100);                       // node 4
  LayerClustering r = cluster_ok(s.graph, 2);
  EXPECT_EQ(layer_ops(s.graph, r), (Ops{{1, 2}, {3, 4}}));
  EXPECT_EQ(r.layers[0].input_bytes, 40);   // x
  EXPECT_EQ(r.layers[1].input_bytes, 10);   // b
  EXPECT_EQ(r.max_input_bytes(), 40);
  EXPECT_EQ(r.total_input_bytes(), 40 + 10);
  EXPECT_EQ(r.layer_of_node[0], 0);
}

TEST(LayerClusteringTest, SumBreaksTiesOfMaxAndBalance) {
  // Layer 0 always reads x (100 B), so every cut has max 100; the FLOP-less
  // op 2 may join either layer (1² + 1² both ways); the sum prefers cutting
  // at its 30-byte output over the 50-byte one before it.
  Sketch s;
  ValueRef x = s.input(100);
  ValueRef p0 = s.op1(1, {x}, 50);
  ValueRef p1 = s.op1(0, {p0}, 30);
  s.op1(1, {p1}, 50);
  LayerClustering r = cluster_ok(s.graph, 2);
  EXPECT_EQ(layer_ops(s.graph, r), (Ops{{1, 2}, {3}}));
  EXPECT_EQ(r.total_input_bytes(), 100 + 30);
}

TEST(LayerClusteringTest, FlopBalanceBreaksTiesOfTheMax) {
  Sketch s;
  ValueRef v = s.input(8);
  for (int i = 0; i < 4; ++i) v = s.op1(1, {v}, 8);
  // bound (1 + 0.5) * 4 / 2 = 3 FLOPs: cuts after op 1, 2 or 3 all cost 8 + 8;
  // 2² + 2² = 8 beats 1² + 3² = 10.
  EXPECT_EQ(layer_ops(s.graph, cluster_ok(s.graph, 2, 0.5)), (Ops{{1, 2}, {3, 4}}));
}

TEST(LayerClusteringTest, EarliestBoundaryBreaksFullTies) {
  Sketch s;
  ValueRef v = s.input(8);
  for (int i = 0; i < 3; ++i) v = s.op1(1, {v}, 8);
  // {1} {2, 3} and {1, 2} {3}: same bytes, same 1² + 2².
  EXPECT_EQ(layer_ops(s.graph, cluster_ok(s.graph, 2, 1.0)), (Ops{{1}, {2, 3}}));
}

/// `blocks` transformer-like blocks over a residual stream h of 64 bytes:
/// "attn" (2 FLOPs) reads h and a 4-byte mask made once up front, "mlp"
/// (2 FLOPs) reads h; each adds its result back to h (1 FLOP each).
ir::Graph masked_blocks(int blocks) {
  Sketch s;
  ValueRef x = s.input(64);
  ValueRef mask = s.op1(1, {x}, 4, "mask");
  ValueRef h = s.op1(1, {x}, 64, "embed");
  for (int b = 0; b < blocks; ++b) {
    const std::string m = fmt::format("h.{}", b);
    h = s.op1(1, {h, s.op1(2, {h, mask}, 64, m + ".attn")}, 64, m);
    h = s.op1(1, {h, s.op1(2, {h}, 64, m + ".mlp")}, 64, m);
  }
  return s.graph;
}

TEST(LayerClusteringTest, BalanceBeatsTheByteSumOfMaskReads) {
  // Cutting after an attention residual reads h (64 B) only when the layer
  // holds no attention, so the byte sum alone would favour 1.5- and
  // 0.5-block layers; balance keeps whole blocks:
  //   {mask, embed, block 0} {block 1} {block 2} {block 3}.
  ir::Graph g = masked_blocks(4);
  LayerClustering r = cluster_ok(g, 4);
  ASSERT_EQ(r.num_layers(), 4);
  for (const ir::Node& n : g.nodes()) {
    if (n.is_placeholder()) continue;
    const int64_t block = n.module.rfind("h.", 0) == 0 ? n.module[2] - '0' : 0;
    EXPECT_EQ(r.layer_of_node[n.id.index()], block) << n.name << " in " << n.module;
  }
  EXPECT_EQ(r.max_input_bytes(), 64 + 4);
  for (int64_t l = 1; l < 4; ++l) EXPECT_EQ(r.layers[l].flops, 6);
}

TEST(LayerClusteringTest, BalanceNeverRaisesTheMax) {
  // {1} {2, 3, 4} reads 8 bytes at its cut; the balanced {1, 2} {3, 4}
  // would read 100: the max wins.
  Sketch s;
  ValueRef x = s.input(8);
  ValueRef a = s.op1(1, {x}, 8);
  ValueRef b = s.op1(1, {a}, 100);
  ValueRef c = s.op1(1, {b}, 8);
  s.op1(1, {c}, 8);
  LayerClustering r = cluster_ok(s.graph, 2, 1.0);
  EXPECT_EQ(layer_ops(s.graph, r), (Ops{{1}, {2, 3, 4}}));
  EXPECT_EQ(r.max_input_bytes(), 8);
}

TEST(LayerClusteringTest, SkipConnectionCountsOncePerLayer) {
  // x -> a -> b -> c = add(b, a) -> d = add(c, a): `a` skips into layer 1,
  // read twice there but counted once.
  Sketch s;
  ValueRef x = s.input(4);
  ValueRef a = s.op1(2, {x}, 64);
  ValueRef b = s.op1(2, {a}, 16);
  ValueRef c = s.op1(2, {b, a}, 16);
  s.op1(2, {c, a}, 16);
  LayerClustering r = cluster_ok(s.graph, 2);
  // Cut after b: layer 1 reads b (16) + a (64) = 80; after a: a = 64;
  // after c: c (16) + a (64) = 80. The bound 1.5 * 8 / 2 = 6 allows all.
  EXPECT_EQ(layer_ops(s.graph, r), (Ops{{1}, {2, 3, 4}}));
  EXPECT_EQ(r.layers[1].input_bytes, 64);
}

TEST(LayerClusteringTest, UserInputsCountInEveryLayerParametersInNone) {
  Sketch s;
  ValueRef x = s.input(12);
  ValueRef w = s.parameter(1000000);
  ValueRef a = s.op1(1, {x, w}, 4);
  s.op1(1, {a, x, w}, 4);
  LayerClustering r = cluster_ok(s.graph, 2);
  EXPECT_EQ(r.layers[0].input_bytes, 12);
  EXPECT_EQ(r.layers[1].input_bytes, 4 + 12);
  // x and the weight go with their first user and are recorded as shared.
  EXPECT_EQ(r.layer_of_node[w.node.index()], 0);
  EXPECT_EQ(r.shared, (std::vector<SharedPlaceholder>{{x.node.value, {0, 1}},
                                                      {w.node.value, {0, 1}}}));
}

TEST(LayerClusteringTest, MultiOutputValuesAreCountedSeparately) {
  Sketch s;
  ValueRef x = s.input(4);
  std::vector<ValueRef> two = s.op(1, {x}, {10, 20});
  ValueRef y = s.op1(1, {two[1]}, 4);
  s.op1(1, {y, two[0], two[1]}, 4);
  LayerClustering r = cluster_ok(s.graph, 2);
  // Cut after op 1: 20 + 10 = 30; cut after op 2: 4 + 10 + 20 = 34.
  EXPECT_EQ(layer_ops(s.graph, r), (Ops{{1}, {2, 3}}));
  EXPECT_EQ(r.layers[1].input_bytes, 30);
}

TEST(LayerClusteringTest, FlopLessOpsNeverFormALayer) {
  // Without the rule, {a, b} | {c} would read only 4 bytes; but c has no
  // FLOPs, so it joins b. The FLOP-less head (an embedding lookup) joins a.
  Sketch s;
  ValueRef x = s.input(4);
  ValueRef e = s.op1(0, {x}, 8);
  ValueRef a = s.op1(1, {e}, 1000);
  ValueRef b = s.op1(1, {a}, 4);
  s.op1(0, {b}, 4);
  LayerClustering r = cluster_ok(s.graph, 2, 1.0);
  EXPECT_EQ(layer_ops(s.graph, r), (Ops{{1, 2}, {3, 4}}));
  EXPECT_EQ(r.layers[0].flops, 1);
  EXPECT_EQ(r.layers[1].num_ops, 2);
}

TEST(LayerClusteringTest, FlopBoundIsRespected) {
  // The 5-byte activation after op 2 is the cheapest cut, but layer 1 would
  // then hold 2 + 3 = 5 FLOPs > (1 + 0.2) * 7 / 2 = 4.2.
  Sketch s;
  ValueRef x = s.input(4);
  ValueRef a = s.op1(1, {x}, 100);
  ValueRef b = s.op1(1, {a}, 5);
  ValueRef c = s.op1(2, {b}, 100);
  s.op1(3, {c}, 100);
  LayerClustering loose = cluster_ok(s.graph, 2, 1.0);
  EXPECT_EQ(layer_ops(s.graph, loose), (Ops{{1, 2}, {3, 4}}));
  LayerClustering tight = cluster_ok(s.graph, 2, 0.2);
  EXPECT_EQ(layer_ops(s.graph, tight), (Ops{{1, 2, 3}, {4}}));
  EXPECT_EQ(tight.layers[0].flops, 1 + 1 + 2);
  EXPECT_EQ(tight.max_input_bytes(), 100);
}

TEST(LayerClusteringTest, ErrorNamesTheOpThatIsTooLarge) {
  Sketch s;
  ValueRef v = s.input(4);
  for (double f : {1.0, 1.0, 6.0, 1.0, 1.0}) v = s.op1(f, {v}, 4);
  auto r = cluster_layers(s.graph, LayerClusteringOptions{4, 0.5, 16});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), core::StatusCode::kInfeasible);
  // L = 2: bound 7.5 still needs 3 layers; eps: layers {1,1}{6}{1}{1} → 6 * 4 / 10 - 1.
  EXPECT_EQ(r.status().message(),
            "op 'op3' (test.op) has 6 FLOPs, 60.0% of the total 10, more than the "
            "(1 + eps) / L = (1 + 0.5) / 4 = 37.5% one layer may hold; use num_layers "
            "<= 1 or eps >= 1.4");
}

TEST(LayerClusteringTest, AutomaticLayerCountBowsToTheFlopBound) {
  // Blocks h.0..h.3 ask for 4 layers, but the 6-FLOP op allows only 1 with
  // eps = 0.5 (see above), and 3 with eps = 1: {1,1} {6} {1,1} within
  // (1 + 1) * 10 / 3 = 6.67, while L = 4 would allow only 5 per layer.
  Sketch s;
  ValueRef v = s.input(4);
  for (double f : {1.0, 1.0, 6.0, 1.0, 1.0}) {
    v = s.op1(f, {v}, 4, fmt::format("h.{}", s.graph.num_nodes() % 4));
  }
  EXPECT_EQ(auto_num_layers(s.graph, 16), 4);
  EXPECT_EQ(cluster_ok(s.graph, 0, 0.5).num_layers(), 1);
  EXPECT_EQ(cluster_ok(s.graph, 0, 1.0).num_layers(), 3);
}

TEST(LayerClusteringTest, ErrorWhenNoSplitFitsThoughEveryOpDoes) {
  Sketch s;
  ValueRef v = s.input(4);
  for (double f : {1.0, 2.0, 1.0}) v = s.op1(f, {v}, 4);
  auto r = cluster_layers(s.graph, LayerClusteringOptions{2, 0.0, 16});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "no split of the 3 op nodes into 2 contiguous layers keeps every layer "
            "within (1 + eps) / L = (1 + 0) / 2 = 50.0% of the total 4 FLOPs (the largest "
            "op, 'op2', has 50.0%); use num_layers <= 1 or eps >= 0.5");
  EXPECT_TRUE(cluster_layers(s.graph, LayerClusteringOptions{2, 0.5, 16}).ok());
}

TEST(LayerClusteringTest, InvalidArgumentsAreReported) {
  Sketch s;
  ValueRef x = s.input(4);
  ValueRef a = s.op1(1, {x}, 4);
  s.op1(0, {a}, 4);
  auto message = [&](const ir::Graph& g, LayerClusteringOptions o) {
    auto r = cluster_layers(g, o);
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), core::StatusCode::kInvalidArgument);
    return r.status().message();
  };
  EXPECT_EQ(message(s.graph, {2, 0.5, 16}),
            "num_layers = 2 but only 1 op nodes have FLOPs > 0 and every layer needs "
            "one; use num_layers <= 1");
  EXPECT_EQ(message(s.graph, {1, -0.1, 16}), "eps must be finite and >= 0, got -0.1");
  EXPECT_EQ(message(s.graph, {-1, 0.5, 16}), "num_layers must be >= 0 (0 = automatic), got -1");
  EXPECT_EQ(message(s.graph, {0, 0.5, 0}), "max_auto_layers must be >= 1, got 0");
  Sketch empty;
  empty.input(4);
  EXPECT_EQ(message(empty.graph, {1, 0.5, 16}),
            "graph 'sketch' has no op nodes to cluster into layers");
  ir::Graph bad = s.graph;
  bad.mutable_nodes()[1].flops = -3;
  EXPECT_EQ(message(bad, {1, 0.5, 16}),
            "op node 'op1' has FLOPs -3; expected a finite value >= 0");
  bad = s.graph;
  bad.mutable_nodes()[1].inputs = {ValueRef{ir::NodeId(2), 0}};
  EXPECT_EQ(message(bad, {1, 0.5, 16}),
            "node 'op1' (id 1) reads value (2, 0), which is not an output of an earlier "
            "node; layer clustering needs a graph in topological order");
}

TEST(LayerClusteringTest, GraphWithoutFlopsFormsOneLayer) {
  Sketch s;
  ValueRef x = s.input(4);
  s.op1(0, {s.op1(0, {x}, 4)}, 4);
  LayerClustering r = cluster_ok(s.graph, 0);
  EXPECT_EQ(r.num_layers(), 1);
  EXPECT_EQ(r.layer_of_node, (std::vector<int64_t>{0, 0, 0}));
}

/// x -> `blocks` residual blocks h = h + gelu(linear(h)), with modules
/// "<prefix>.<i>.fc", "<prefix>.<i>.act" and "<prefix>.<i>". Cutting inside
/// a block costs the residual too, so block boundaries are the cheapest cuts.
ir::Graph block_chain(int blocks, const std::string& prefix, int64_t width = 16) {
  ir::GraphBuilder b("blocks");
  ValueRef h = b.input("x", {{8, width}, ir::DType::kFloat32});
  std::vector<ValueRef> weights;
  for (int i = 0; i < blocks; ++i) {
    weights.push_back(b.parameter(fmt::format("{}.{}.fc.weight", prefix, i),
                                  {{width, width}, ir::DType::kFloat32}));
  }
  for (int i = 0; i < blocks; ++i) {
    ValueRef y = b.linear(h, weights[i], fmt::format("{}.{}.fc", prefix, i));
    y = b.unary("gelu", y, fmt::format("{}.{}.act", prefix, i));
    h = b.binary("add", h, y, fmt::format("{}.{}", prefix, i));
  }
  b.output(h);
  return b.build().value();
}

TEST(LayerClusteringTest, EqualBlocksBecomeOneLayerEach) {
  ir::Graph g = block_chain(4, "h");
  EXPECT_EQ(auto_num_layers(g, 16), 4);
  LayerClustering r = cluster_ok(g, 0);
  ASSERT_EQ(r.num_layers(), 4);
  for (const ir::Node& n : g.nodes()) {
    if (n.is_placeholder()) continue;
    int block = n.module[2] - '0';  // "h.<i>..."
    EXPECT_EQ(r.layer_of_node[n.id.index()], block) << n.name;
  }
  // Block i's weight (node 1 + i) goes with block i.
  for (int i = 0; i < 4; ++i) EXPECT_EQ(r.layer_of_node[1 + i], i);
  EXPECT_EQ(r.to_string(),
            "layer_clustering: 4 layers, 17 nodes\n"
            "layer 0: nodes 5..7, 3 ops, 4352 flops, 512 bytes in, also nodes 0,1\n"
            "layer 1: nodes 8..10, 3 ops, 4352 flops, 512 bytes in, also nodes 2\n"
            "layer 2: nodes 11..13, 3 ops, 4352 flops, 512 bytes in, also nodes 3\n"
            "layer 3: nodes 14..16, 3 ops, 4352 flops, 512 bytes in, also nodes 4\n");
}

TEST(LayerClusteringTest, RepeatedBlocksFromModulePaths) {
  RepeatedBlocks blocks = find_repeated_blocks(block_chain(4, "transformer.h"));
  EXPECT_EQ(blocks.prefix, "transformer.h");
  EXPECT_EQ(blocks.count, 4);
  // Experts nested inside blocks never outnumber the blocks.
  Sketch s;
  ValueRef v = s.input(4);
  for (int block = 0; block < 3; ++block) {
    for (int expert = 0; expert < 8; ++expert) {
      v = s.op1(1, {v}, 4, fmt::format("h.{}.moe.experts.{}", block, expert));
    }
  }
  EXPECT_EQ(find_repeated_blocks(s.graph).count, 3);
  EXPECT_EQ(auto_num_layers(s.graph, 16), 3);
  EXPECT_EQ(auto_num_layers(s.graph, 2), 2);  // capped
  // Root-level siblings "0", "1" have the empty prefix.
  Sketch root;
  ValueRef r = root.input(4);
  for (int i = 0; i < 5; ++i) r = root.op1(1, {r}, 4, fmt::format("{}", i));
  EXPECT_EQ(find_repeated_blocks(root.graph).prefix, "");
  EXPECT_EQ(find_repeated_blocks(root.graph).count, 5);
}

TEST(LayerClusteringTest, AutoLayersWithoutBlocks) {
  Sketch s;
  ValueRef v = s.input(4);
  for (int i = 0; i < 20; ++i) v = s.op1(1, {v}, 4, i == 0 ? "embed.0" : "head");
  EXPECT_EQ(find_repeated_blocks(s.graph).count, 0);  // a lone "embed.0"
  EXPECT_EQ(auto_num_layers(s.graph, 16), 8);
  EXPECT_EQ(auto_num_layers(s.graph, 5), 5);
  Sketch few;
  ValueRef w = few.input(4);
  for (int i = 0; i < 5; ++i) w = few.op1(i % 2, {w}, 4);  // 2 ops with FLOPs
  EXPECT_EQ(auto_num_layers(few.graph, 16), 2);
}

TEST(LayerClusteringTest, TextRoundTrip) {
  Sketch s;
  ValueRef x = s.input(12);
  ValueRef a = s.op1(1.5, {x}, 40);
  ValueRef w = s.parameter(8);  // between layer 0's ops, first read by layer 1
  ValueRef b = s.op1(2.25, {a}, 4);
  s.op1(1e12, {b, w, x}, 4);
  LayerClustering r = cluster_ok(s.graph, 2, 1e12);
  EXPECT_EQ(r.to_string(),
            "layer_clustering: 2 layers, 5 nodes\n"
            "layer 0: nodes 1..3, 2 ops, 3.75 flops, 12 bytes in, also nodes 0\n"
            "layer 1: nodes 4..4, 1 ops, 1000000000000 flops, 16 bytes in, also nodes 2\n"
            "shared node 0: layers 0,1\n");
  auto parsed = LayerClustering::parse(r.to_string());
  ASSERT_TRUE(parsed.ok()) << parsed.status().to_string();
  EXPECT_EQ(*parsed, r);
}

TEST(LayerClusteringTest, ParseErrors) {
  auto message = [](std::string_view text) {
    auto r = LayerClustering::parse(text);
    EXPECT_FALSE(r.ok());
    return r.status().message();
  };
  EXPECT_EQ(message("layers: 2"),
            "layer clustering text, line 1: expected 'layer_clustering: L layers, N nodes, "
            "then L layer lines', got 'layers: 2'");
  EXPECT_EQ(message("layer_clustering: 1 layers, 2 nodes\nlayer 0: nodes 1..1, 1 ops, x flops, "
                    "4 bytes in"),
            "layer clustering text, line 2: expected 'layer 0: nodes A..B, K ops, F flops, N "
            "bytes in[, also nodes I,J]', got 'layer 0: nodes 1..1, 1 ops, x flops, 4 bytes in'");
  EXPECT_EQ(message("layer_clustering: 1 layers, 2 nodes\nlayer 0: nodes 1..1, 1 ops, 2 flops, "
                    "4 bytes in"),
            "layer clustering text: node 0 has no layer");
  EXPECT_EQ(message("layer_clustering: 1 layers, 2 nodes\nlayer 0: nodes 1..1, 1 ops, 2 flops, "
                    "4 bytes in, also nodes 0\nshared 0"),
            "layer clustering text, line 3: expected 'shared node N: layers I,J', got "
            "'shared 0'");
}

// ---------------------------------------------------------------------------
// Brute force: every way to place L - 1 cuts among the op nodes.

struct Candidate {
  int64_t max = 0;
  double squares = 0;  // Σ layer FLOPs² (exact: small integer FLOPs)
  int64_t sum = 0;
  std::vector<int64_t> ends;  // last op position of each layer
};

std::optional<Candidate> brute_force(const ir::Graph& g, int64_t L, double eps) {
  std::vector<const ir::Node*> ops;
  for (const ir::Node& n : g.nodes()) if (!n.is_placeholder()) ops.push_back(&n);
  const int64_t n = static_cast<int64_t>(ops.size());
  const double total = g.total_flops();
  const double bound = (1 + eps) * total / static_cast<double>(L);
  std::optional<Candidate> best;
  for (int64_t mask = 0; mask < (int64_t{1} << (n - 1)); ++mask) {
    if (__builtin_popcountll(mask) != L - 1) continue;
    Candidate c;
    bool ok = true;
    int64_t start = 0;
    for (int64_t e = 0; e < n && ok; ++e) {
      if (e != n - 1 && !((mask >> e) & 1)) continue;
      double flops = 0;
      bool positive = false;
      std::set<std::pair<int64_t, int64_t>> seen;
      int64_t bytes = 0;
      for (int64_t p = start; p <= e; ++p) {
        flops += ops[p]->flops;
        positive |= ops[p]->flops > 0;
        for (const ValueRef& v : ops[p]->inputs) {
          const ir::Node& prod = g.node(v.node);
          bool outside = prod.kind == ir::NodeKind::kInput ||
                         (!prod.is_placeholder() && v.node.value < ops[start]->id.value);
          if (outside && seen.insert({v.node.value, v.index}).second) bytes += g.meta(v).bytes();
        }
      }
      ok = flops <= bound * (1 + 1e-9) && (positive || total == 0);
      c.max = std::max(c.max, bytes);
      c.squares += flops * flops;
      c.sum += bytes;
      c.ends.push_back(e);
      start = e + 1;
    }
    if (!ok) continue;
    if (!best || std::tie(c.max, c.squares, c.sum, c.ends) <
                     std::tie(best->max, best->squares, best->sum, best->ends)) {
      best = c;
    }
  }
  return best;
}

ir::Graph random_graph(std::mt19937& rng, int num_ops) {
  Sketch s;
  std::vector<ValueRef> values;
  auto pick = [&](int64_t k) { return std::uniform_int_distribution<int64_t>(0, k - 1)(rng); };
  for (int i = 0; i < 2; ++i) values.push_back(s.input(4 * (1 + pick(8))));
  ValueRef param = s.parameter(1 << 20);
  for (int i = 0; i < num_ops; ++i) {
    std::vector<ValueRef> inputs = {values.back()};  // a chain, plus skips
    for (int k = pick(3); k > 0; --k) inputs.push_back(values[pick(values.size())]);
    if (pick(3) == 0) inputs.push_back(param);
    std::vector<int64_t> outs = {4 * (1 + pick(16))};
    if (pick(4) == 0) outs.push_back(4 * (1 + pick(16)));
    double flops = pick(4) == 0 ? 0 : static_cast<double>(1 + pick(9));
    for (ValueRef v : s.op(flops, inputs, outs)) values.push_back(v);
    if (pick(5) == 0) values.push_back(s.parameter(8));  // interleaved placeholder
  }
  return s.graph;
}

TEST(LayerClusteringTest, MatchesBruteForceOnRandomDags) {
  std::mt19937 rng(20240531);
  int feasible = 0, infeasible = 0;
  for (int trial = 0; trial < 400; ++trial) {
    const int num_ops = 1 + trial % 10;
    ir::Graph g = random_graph(rng, num_ops);
    int64_t positive = 0;
    for (const ir::Node& n : g.nodes()) positive += !n.is_placeholder() && n.flops > 0;
    const int64_t L = 1 + static_cast<int64_t>(rng() % std::max<int64_t>(positive, 1));
    const double eps = std::vector<double>{0.0, 0.25, 0.5, 1.0}[rng() % 4];
    SCOPED_TRACE(fmt::format("trial {}, L {}, eps {}", trial, L, eps));
    auto dp = cluster_layers(g, LayerClusteringOptions{L, eps, 16});
    std::optional<Candidate> bf = brute_force(g, L, eps);
    ASSERT_EQ(dp.ok(), bf.has_value()) << dp.status().to_string();
    if (!bf) {
      EXPECT_EQ(dp.status().code(), core::StatusCode::kInfeasible);
      ++infeasible;
      continue;
    }
    ++feasible;
    EXPECT_EQ(dp->max_input_bytes(), bf->max);
    EXPECT_EQ(dp->total_input_bytes(), bf->sum);
    std::vector<int64_t> ends;
    int64_t pos = 0;
    double squares = 0;
    for (const Layer& layer : dp->layers) {
      pos += layer.num_ops;
      ends.push_back(pos - 1);
      squares += layer.flops * layer.flops;
      EXPECT_LE(layer.flops, (1 + eps) * g.total_flops() / static_cast<double>(L) + 1e-9);
    }
    EXPECT_EQ(squares, bf->squares);
    EXPECT_EQ(ends, bf->ends);
    EXPECT_EQ(*LayerClustering::parse(dp->to_string()), *dp);
  }
  EXPECT_GT(feasible, 200);
  EXPECT_GT(infeasible, 10);
}

// Not part of the suite: run with --gtest_also_run_disabled_tests to time
// chains of residual blocks (20 ops each, a third of them FLOP-less) with
// 2500 and 3000 op nodes cut into 16 and 64 layers.
TEST(LayerClusteringTest, DISABLED_TimeLargeChains) {
  for (auto [num_ops, layers] : {std::pair<int, int64_t>{2500, 16}, {3000, 64}}) {
    Sketch s;
    ValueRef h = s.input(4096);
    ValueRef skip = h;
    int ops = 0;
    for (int block = 0; ops < num_ops; ++block) {
      const std::string module = fmt::format("h.{}", block);
      ValueRef w = s.parameter(1 << 16);
      for (int k = 0; k < 19; ++k, ++ops) {
        h = s.op1(k % 3 == 0 ? 0 : 1e6 * (1 + k % 5), {h, w}, 4096 * (1 + k % 4), module);
      }
      h = s.op1(1e3, {h, skip}, 4096, module);
      skip = h;
      ++ops;
    }
    auto start = std::chrono::steady_clock::now();
    LayerClustering r = cluster_ok(s.graph, layers);
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("%d op nodes (%lld nodes), %lld layers: %.3f s\n", ops,
                static_cast<long long>(s.graph.num_nodes()),
                static_cast<long long>(r.num_layers()), seconds);
  }
}

}  // namespace
}  // namespace alpa::inter_op
