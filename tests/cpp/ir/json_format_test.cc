// Tests the versioned JSON form: exact round trip and clear decode errors.
#include "ir/json_format.h"

#include <cmath>
#include <limits>
#include <utility>
#include <variant>
#include <vector>

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
    auto back = parse_graph_json(core::dump_json(j));
    ASSERT_TRUE(back.ok()) << back.status().to_string();
    EXPECT_EQ(*back, g);
    EXPECT_EQ(core::dump_json(graph_to_json(*back)), core::dump_json(j));
    auto pretty = parse_graph_json(core::dump_json(j, 2));
    ASSERT_TRUE(pretty.ok());
    EXPECT_EQ(*pretty, g);
    EXPECT_EQ(back->fingerprint(), g.fingerprint());
  }
}

Graph graph_with_non_finite_attrs(double scalar, std::vector<double> floats) {
  GraphBuilder b("masks");
  ValueRef x = b.input("x", {{2, 3}, DType::kFloat32});
  auto outs = b.op_with_meta("aten.custom.default", {x},
                             {{"self", InputRef{0}}, {"value", scalar}, {"bounds", Floats{floats}}},
                             {{{2, 3}, DType::kFloat32}});
  b.output(outs[0]);
  return b.build().value();
}

TEST(GraphJsonTest, NonFiniteAttributesAreValidJsonAndRoundTripExactly) {
  const double inf = std::numeric_limits<double>::infinity();
  const Graph g = graph_with_non_finite_attrs(-inf, {inf, -inf, 0.5});
  const std::string text = core::dump_json(graph_to_json(g));
  EXPECT_TRUE(core::Json::accept(text)) << text;
  EXPECT_NE(text.find(R"("value":{"float":"-Infinity"})"), std::string::npos) << text;
  EXPECT_NE(text.find(R"("bounds":{"floats":["Infinity","-Infinity",0.5]})"), std::string::npos)
      << text;
  auto back = parse_graph_json(text);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(*back, g);
  EXPECT_EQ(core::dump_json(graph_to_json(*back)), text);
  EXPECT_EQ(core::dump_json(graph_to_json(*back), 1), core::dump_json(graph_to_json(g), 1));

  // NaN != NaN, so check the values themselves.
  const Graph n = graph_with_non_finite_attrs(std::nan(""), {std::nan("")});
  auto nan_back = parse_graph_json(core::dump_json(graph_to_json(n)));
  ASSERT_TRUE(nan_back.ok()) << nan_back.status().to_string();
  const Node& op = nan_back->node(NodeId(1));
  EXPECT_TRUE(std::isnan(std::get<double>(op.attrs[1].second)));
  EXPECT_TRUE(std::isnan(std::get<Floats>(op.attrs[2].second).values[0]));
  EXPECT_EQ(core::dump_json(graph_to_json(*nan_back)), core::dump_json(graph_to_json(n)));
  // A string attribute "NaN" stays a string.
  GraphBuilder b("strings");
  ValueRef x = b.input("x", {{2}, DType::kFloat32});
  b.output(b.op_with_meta("aten.custom.default", {x}, {{"mode", std::string("NaN")}},
                          {{{2}, DType::kFloat32}})[0]);
  const Graph s = b.build().value();
  EXPECT_EQ(parse_graph_json(core::dump_json(graph_to_json(s))).value(), s);
}

TEST(GraphJsonTest, FilesWithBareNonFiniteTokensStillLoad) {
  // The hand-written writer (and capture's json.dumps(allow_nan=True)) put
  // the bare words in: "value":-Infinity, "floats":[Infinity,-Infinity,0.5].
  const double inf = std::numeric_limits<double>::infinity();
  const Graph g = graph_with_non_finite_attrs(-inf, {inf, -inf, 0.5});
  std::string text = core::dump_json(graph_to_json(g));
  for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
           {R"({"float":"-Infinity"})", "-Infinity"},
           {"\"Infinity\"", "Infinity"}, {"\"-Infinity\"", "-Infinity"}}) {
    size_t at = text.find(from);
    ASSERT_NE(at, std::string::npos) << from << " not in " << text;
    text.replace(at, from.size(), to);
  }
  ASSERT_EQ(text.find("\"Infinity\""), std::string::npos) << text;
  auto back = parse_graph_json(text);
  ASSERT_TRUE(back.ok()) << back.status().to_string() << "\n" << text;
  EXPECT_EQ(*back, g);
  EXPECT_EQ(back->fingerprint(), g.fingerprint());
}

TEST(GraphJsonTest, FingerprintChangesWithContent) {
  Graph a = testing::mlp_graph();
  Graph b = a;
  b.mutable_node(NodeId(0)).outputs[0].shape[0] = 9;
  EXPECT_NE(a.fingerprint(), b.fingerprint());
}

TEST(GraphJsonTest, RejectsOtherVersionsWithAdvice) {
  core::Json j = graph_to_json(testing::mlp_graph());
  j["version"] = core::Json(2);
  auto g = parse_graph_json(core::dump_json(j));
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("format version 2"), std::string::npos);
  EXPECT_NE(g.status().message().find("upgrade alpa_torch"), std::string::npos);
  j["format"] = core::Json("alpa_torch.plan");
  EXPECT_NE(parse_graph_json(core::dump_json(j)).status().message().find("not an alpa_torch graph"),
            std::string::npos);
}

TEST(GraphJsonTest, TruncatedFileIsAParseError) {
  std::string text = core::dump_json(graph_to_json(testing::mlp_graph()), 1);
  for (size_t cut : {size_t{0}, size_t{1}, text.size() / 3, text.size() / 2, text.size() - 2}) {
    auto g = parse_graph_json(text.substr(0, cut));
    ASSERT_FALSE(g.ok()) << cut;
    EXPECT_EQ(g.status().code(), core::StatusCode::kParseError) << cut;
  }
}

TEST(GraphJsonTest, WrongFieldTypesNameTheNode) {
  core::Json j = graph_to_json(testing::mlp_graph());
  j["nodes"][4]["inputs"] = core::Json("x");
  auto g = parse_graph_json(core::dump_json(j));
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("nodes[4] ('linear')"), std::string::npos)
      << g.status().message();
}

}  // namespace
}  // namespace alpa::ir
