// Tests the versioned JSON form: exact round trip and clear decode errors.
#include "ir/json_format.h"

#include <gtest/gtest.h>

#include "ir/test_graphs.h"

namespace alpa::ir {
namespace {

Graph graph_with_every_attr_kind() {
  GraphBuilder b("attrs");
  ValueRef x = b.input("x", {{2, 3}, DType::kBFloat16}, true);
  ValueRef m = b.buffer("bn.running_mean", {{3}, DType::kFloat32});
  auto outs = b.op_with_meta(
      "aten.custom.default", {x, m},
      {{"self", InputRef{0}},
       {"list", InputRefs{{1, -1}}},
       {"none", Attr()},
       {"flag", true},
       {"count", int64_t{-7}},
       {"eps", 1e-5},
       {"third", 1.0 / 3.0},
       {"mode", std::string("tanh \"quoted\"")},
       {"dims", std::vector<int64_t>{0, -1}},
       {"empty_dims", std::vector<int64_t>{}},
       {"scales", Floats{{0.5, 2.0}}},
       {"no_scales", Floats{}}},
      {{{2, 3}, DType::kBFloat16}, {{0}, DType::kInt64}});
  b.output(outs[0]);
  b.mutate_buffer("bn.running_mean", outs[1]);
  return b.build().value();
}

TEST(GraphJsonTest, RoundTripIsExact) {
  for (const Graph& g : {testing::mlp_graph(), graph_with_every_attr_kind()}) {
    core::Json j = graph_to_json(g);
    auto back = parse_graph_json(j.dump());
    ASSERT_TRUE(back.ok()) << back.status().to_string();
    EXPECT_EQ(*back, g);
    EXPECT_EQ(graph_to_json(*back).dump(), j.dump());
    auto pretty = parse_graph_json(j.dump(2));
    ASSERT_TRUE(pretty.ok());
    EXPECT_EQ(*pretty, g);
    EXPECT_EQ(back->fingerprint(), g.fingerprint());
  }
}

TEST(GraphJsonTest, FingerprintChangesWithContent) {
  Graph a = testing::mlp_graph();
  Graph b = a;
  b.mutable_node(NodeId(0)).outputs[0].shape[0] = 9;
  EXPECT_NE(a.fingerprint(), b.fingerprint());
}

TEST(GraphJsonTest, RejectsOtherVersionsWithAdvice) {
  core::Json j = graph_to_json(testing::mlp_graph());
  j.set("version", core::Json(2));
  auto g = parse_graph_json(j.dump());
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("format version 2"), std::string::npos);
  EXPECT_NE(g.status().message().find("upgrade alpa_torch"), std::string::npos);
  j.set("format", core::Json("alpa_torch.plan"));
  EXPECT_NE(parse_graph_json(j.dump()).status().message().find("not an alpa_torch graph"),
            std::string::npos);
}

TEST(GraphJsonTest, TruncatedFileIsAParseError) {
  std::string text = graph_to_json(testing::mlp_graph()).dump(1);
  for (size_t cut : {size_t{0}, size_t{1}, text.size() / 3, text.size() / 2, text.size() - 2}) {
    auto g = parse_graph_json(text.substr(0, cut));
    ASSERT_FALSE(g.ok()) << cut;
    EXPECT_EQ(g.status().code(), core::StatusCode::kParseError) << cut;
  }
}

TEST(GraphJsonTest, WrongFieldTypesNameTheNode) {
  core::Json j = graph_to_json(testing::mlp_graph());
  auto& nodes = const_cast<core::Json::Array&>(j.find("nodes")->as_array());
  nodes[4].set("inputs", core::Json("x"));
  auto g = parse_graph_json(j.dump());
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("nodes[4] ('linear')"), std::string::npos)
      << g.status().message();
}

}  // namespace
}  // namespace alpa::ir
