// Tests core::Json: exact round trips and parse errors with positions.
#include "core/json.h"

#include <cmath>
#include <limits>

#include <gtest/gtest.h>

namespace alpa::core {
namespace {

TEST(JsonTest, RoundTripKeepsOrderAndKinds) {
  const std::string text =
      R"({"b":1,"a":[1,2.5,-3.0e-07,"x\n\"y\"",null,true,false],"c":{"z":{}, "y":[]}})";
  auto parsed = Json::parse(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status().to_string();
  EXPECT_EQ(parsed->as_object()[0].first, "b");
  EXPECT_TRUE(parsed->find("b")->is_int());
  EXPECT_FALSE(parsed->find("a")->as_array()[1].is_int());
  auto again = Json::parse(parsed->dump());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *parsed);
  auto pretty = Json::parse(parsed->dump(2));
  ASSERT_TRUE(pretty.ok());
  EXPECT_EQ(*pretty, *parsed);
}

TEST(JsonTest, DoublesRoundTripBitExact) {
  for (double v : {0.1, 1.0 / 3.0, 1e-300, 6.02214076e23, -0.0, 1e15, 123456789.125,
                   std::numeric_limits<double>::max(),
                   std::numeric_limits<double>::infinity()}) {
    Json j = Json::array();
    j.push(Json(v));
    auto back = Json::parse(j.dump());
    ASSERT_TRUE(back.ok()) << j.dump();
    EXPECT_EQ(back->as_array()[0].as_double(), v) << j.dump();
    EXPECT_FALSE(back->as_array()[0].is_int()) << j.dump();
  }
  EXPECT_EQ(format_double(2.0), "2.0");
}

TEST(JsonTest, Int64Extremes) {
  auto j = Json::parse("[9223372036854775807,-9223372036854775808]");
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(j->as_array()[0].as_int(), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(j->as_array()[1].as_int(), std::numeric_limits<int64_t>::min());
}

TEST(JsonTest, UnicodeEscapes) {
  auto j = Json::parse(R"("caf\u00e9 \ud83d\ude00")");
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(j->as_string(), "caf\xc3\xa9 \xf0\x9f\x98\x80");
}

TEST(JsonTest, LoneSurrogatesAreRefused) {
  // Found by tests/fuzz (graph name "\ud800"): a lone UTF-16 half has no
  // UTF-8 form, so it must not become bytes that are not UTF-8.
  for (const char* text : {R"("\ud800")", R"("a\ud800b")", R"("\udc00")",
                           R"("\ud800\u0041")", R"("\ud800\ud800")"}) {
    auto j = Json::parse(text);
    ASSERT_FALSE(j.ok()) << text;
    EXPECT_NE(j.status().message().find("surrogate"), std::string::npos)
        << j.status().message();
  }
}

TEST(JsonTest, ErrorsNamePosition) {
  auto truncated = Json::parse("{\"nodes\": [1, 2");
  ASSERT_FALSE(truncated.ok());
  EXPECT_EQ(truncated.status().code(), StatusCode::kParseError);
  EXPECT_NE(truncated.status().message().find("truncated"), std::string::npos)
      << truncated.status().message();
  auto bad = Json::parse("{\n  \"a\": tru }");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("line 2"), std::string::npos)
      << bad.status().message();
  EXPECT_FALSE(Json::parse("[1,]").ok());
  EXPECT_FALSE(Json::parse("{} x").ok());
  EXPECT_FALSE(Json::parse("").ok());
  EXPECT_FALSE(Json::parse(std::string(100000, '[')).ok());  // depth bound
}

TEST(JsonTest, CheckedGettersNameTheField) {
  auto j = Json::parse(R"({"version": "one"})");
  ASSERT_TRUE(j.ok());
  auto v = json_get_int(*j, "version", "graph");
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().message(),
            "graph: field \"version\" must be an integer, got string");
  auto missing = json_get_int(*j, "nodes", "graph");
  EXPECT_EQ(missing.status().message(), "graph: missing field \"nodes\"");
}

}  // namespace
}  // namespace alpa::core
