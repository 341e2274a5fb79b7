// Tests core::Json (nlohmann::ordered_json) as alpa_torch reads and writes
// it: exact round trips, non-finite numbers as valid JSON, the bare tokens
// of older files, and parse errors with positions.
#include "core/json.h"

#include <cmath>
#include <cstring>
#include <limits>

#include <gtest/gtest.h>

namespace alpa::core {
namespace {

uint64_t bits(double v) {
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof b);
  return b;
}

TEST(JsonTest, RoundTripKeepsOrderAndKinds) {
  const std::string text =
      R"({"b":1,"a":[1,2.5,-3.0e-07,"x\n\"y\"",null,true,false],"c":{"z":{}, "y":[]}})";
  auto parsed = parse_json(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status().to_string();
  EXPECT_EQ(parsed->begin().key(), "b");
  EXPECT_TRUE(json_is_int(parsed->at("b")));
  EXPECT_FALSE(json_is_int(parsed->at("a")[1]));
  auto again = parse_json(dump_json(*parsed));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *parsed);
  auto pretty = parse_json(dump_json(*parsed, 2));
  ASSERT_TRUE(pretty.ok());
  EXPECT_EQ(*pretty, *parsed);
}

TEST(JsonTest, DoublesRoundTripBitExact) {
  for (double v : {0.1, 1.0 / 3.0, 1e-300, 6.02214076e23, -0.0, 1e15, 123456789.125,
                   std::numeric_limits<double>::max(),
                   std::numeric_limits<double>::infinity()}) {
    Json j = Json::array();
    j.push_back(v);
    auto back = parse_json(dump_json(j));
    ASSERT_TRUE(back.ok()) << dump_json(j);
    EXPECT_EQ(json_number((*back)[0]), v) << dump_json(j);
    EXPECT_FALSE(json_is_int((*back)[0])) << dump_json(j);
  }
  EXPECT_EQ(format_double(2.0), "2.0");
}

TEST(JsonTest, AwkwardDoublesComeBackBitIdenticalAndTextIsStable) {
  const double kDenormMin = std::numeric_limits<double>::denorm_min();
  const std::vector<double> values = {
      0.1, 0.2 + 0.1, 1e-300, kDenormMin, -kDenormMin,
      2.2250738585072009e-308,  // the largest denormal
      std::numeric_limits<double>::min(), -0.0, 0.0, 1e15, 1e16, 1e21, 1e22,
      9007199254740993.0,   // 2^53 + 1: reads as 2^53
      123456789012345678.0, // a large int held as a double
      -4.1752050594835e+78, std::numeric_limits<double>::max(),
      std::numeric_limits<double>::lowest(), std::numeric_limits<double>::infinity(),
      -std::numeric_limits<double>::infinity()};
  Json j = Json::array();
  for (double v : values) j.push_back(v);
  const std::string text = dump_json(j);
  auto back = parse_json(text);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  ASSERT_EQ(back->size(), values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    std::optional<double> v = json_number((*back)[i]);
    ASSERT_TRUE(v.has_value()) << i << ": " << (*back)[i];
    EXPECT_EQ(bits(*v), bits(values[i])) << i << ": " << text;
    EXPECT_FALSE(json_is_int((*back)[i])) << i << ": " << text;
  }
  EXPECT_EQ(dump_json(*back), text);  // write, read, write: the same bytes
  EXPECT_EQ(dump_json(*back, 1), dump_json(j, 1));
}

TEST(JsonTest, NonFiniteNumbersAreWrittenAsStringsThatReadBack) {
  const double inf = std::numeric_limits<double>::infinity();
  Json j = Json::object({{"nan", std::nan("")}, {"inf", inf}, {"minus_inf", -inf},
                         {"list", Json::array({1.5, -inf})}});
  const std::string text = dump_json(j);
  EXPECT_EQ(text,
            R"({"nan":"NaN","inf":"Infinity","minus_inf":"-Infinity","list":[1.5,"-Infinity"]})");
  EXPECT_TRUE(Json::accept(text)) << "not valid JSON: " << text;
  EXPECT_TRUE(j["inf"].is_number_float()) << "dump_json must not change its argument";
  auto back = parse_json(text);
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(std::isnan(json_get_double(*back, "nan", "doc").value()));
  EXPECT_EQ(json_get_double(*back, "inf", "doc").value(), inf);
  EXPECT_EQ(json_get_double(*back, "minus_inf", "doc").value(), -inf);
  EXPECT_EQ(json_number(back->at("list")[1]), -inf);
  EXPECT_EQ(dump_json(*back), text);
  // Only those three strings are numbers.
  EXPECT_EQ(json_number(Json("nan")), std::nullopt);
  EXPECT_EQ(json_number(Json("3")), std::nullopt);
  EXPECT_EQ(json_get_double(Json::object({{"x", "inf"}}), "x", "doc").status().message(),
            "doc: field \"x\" must be a number, got string");
}

TEST(JsonTest, BareNonFiniteTokensOfOlderFilesStillRead) {
  // What the hand-written writer and Python's json.dumps(allow_nan=True) wrote.
  auto j = parse_json(
      R"({"a": NaN, "b": [Infinity, -Infinity, -1, -2.5], "s": "NaN Infinity -Infinity",)"
      "\n"
      R"( "k\"NaN": {"NaN": [NaN]}})");
  ASSERT_TRUE(j.ok()) << j.status().to_string();
  EXPECT_TRUE(j->at("a").is_number_float());
  EXPECT_TRUE(std::isnan(j->at("a").get<double>()));
  EXPECT_EQ(j->at("b")[0].get<double>(), std::numeric_limits<double>::infinity());
  EXPECT_EQ(j->at("b")[1].get<double>(), -std::numeric_limits<double>::infinity());
  EXPECT_TRUE(json_is_int(j->at("b")[2]));
  EXPECT_EQ(j->at("b")[3].get<double>(), -2.5);
  EXPECT_EQ(j->at("s"), "NaN Infinity -Infinity");  // strings are left alone
  EXPECT_TRUE(std::isnan(j->at("k\"NaN").at("NaN")[0].get<double>()));
  EXPECT_EQ(dump_json(*j),
            R"({"a":"NaN","b":["Infinity","-Infinity",-1,-2.5],"s":"NaN Infinity -Infinity",)"
            R"("k\"NaN":{"NaN":["NaN"]}})");
}

TEST(JsonTest, ErrorsAfterBareTokensNameTheOriginalPosition) {
  // "0.0" is as long as "NaN": both texts must report the same place.
  auto legacy = parse_json("[NaN, -Infinity,\n  NaN, tru]");
  auto plain = parse_json("[0.0, -1234567.0,\n  0.0, tru]");
  ASSERT_FALSE(legacy.ok());
  ASSERT_FALSE(plain.ok());
  const std::string& m = legacy.status().message();
  EXPECT_EQ(m.substr(0, m.find(':')), plain.status().message().substr(0, m.find(':')));
  EXPECT_NE(m.find("malformed JSON at line 2, column "), std::string::npos) << m;
}

TEST(JsonTest, Int64Extremes) {
  auto j = parse_json("[9223372036854775807,-9223372036854775808,9223372036854775808]");
  ASSERT_TRUE(j.ok());
  EXPECT_EQ((*j)[0].get<int64_t>(), std::numeric_limits<int64_t>::max());
  EXPECT_EQ((*j)[1].get<int64_t>(), std::numeric_limits<int64_t>::min());
  EXPECT_TRUE(json_is_int((*j)[0]));
  EXPECT_TRUE(json_is_int((*j)[1]));
  EXPECT_FALSE(json_is_int((*j)[2]));  // beyond int64
  EXPECT_STREQ(json_kind_name((*j)[2]), "number");
  auto big = json_get_int(Json::object({{"n", (*j)[2]}}), "n", "doc");
  EXPECT_EQ(big.status().message(), "doc: field \"n\" must be an integer, got number");
}

TEST(JsonTest, UnicodeEscapes) {
  auto j = parse_json(R"("caf\u00e9 \ud83d\ude00")");
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(j->get<std::string>(), "caf\xc3\xa9 \xf0\x9f\x98\x80");
  EXPECT_EQ(parse_json(dump_json(*j)).value(), *j);
}

TEST(JsonTest, LoneSurrogatesAreRefused) {
  // Found by tests/fuzz (graph name "\ud800"): a lone UTF-16 half has no
  // UTF-8 form, so it must not become bytes that are not UTF-8.
  for (const char* text : {R"("\ud800")", R"("a\ud800b")", R"("\udc00")",
                           R"("\ud800\u0041")", R"("\ud800\ud800")"}) {
    auto j = parse_json(text);
    ASSERT_FALSE(j.ok()) << text;
    EXPECT_NE(j.status().message().find("surrogate"), std::string::npos)
        << j.status().message();
  }
}

TEST(JsonTest, StringsThatAreNotUtf8AreRefused) {
  EXPECT_FALSE(parse_json("\"caf\xe9\"").ok());  // Latin-1 bytes
  try {
    (void)dump_json(Json("caf\xe9"));
    ADD_FAILURE() << "dump_json wrote a string that is not UTF-8";
  } catch (const StatusError& e) {
    EXPECT_NE(std::string(e.what()).find("UTF-8"), std::string::npos) << e.what();
  }
}

TEST(JsonTest, ErrorsNamePosition) {
  auto truncated = parse_json("{\"nodes\": [1, 2");
  ASSERT_FALSE(truncated.ok());
  EXPECT_EQ(truncated.status().code(), StatusCode::kParseError);
  EXPECT_NE(truncated.status().message().find("truncated"), std::string::npos)
      << truncated.status().message();
  auto bad = parse_json("{\n  \"a\": tru }");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("line 2"), std::string::npos)
      << bad.status().message();
  EXPECT_FALSE(parse_json("[1,]").ok());
  EXPECT_FALSE(parse_json("{} x").ok());
  EXPECT_EQ(parse_json("{} x").status().message().find("truncated"), std::string::npos);
  EXPECT_FALSE(parse_json("").ok());
  EXPECT_FALSE(parse_json(std::string(100000, '[')).ok());  // depth bound
  auto huge = parse_json("[1,\n 1e400]");
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.status().message().substr(0, 34), "malformed JSON at line 2, column 2")
      << huge.status().message();
}

TEST(JsonTest, NestingIsBounded) {
  auto nested = [](int depth) {
    return std::string(static_cast<size_t>(depth), '[') + std::string(static_cast<size_t>(depth), ']');
  };
  EXPECT_TRUE(parse_json(nested(512)).ok());
  auto deep = parse_json(nested(513));
  ASSERT_FALSE(deep.ok());
  EXPECT_NE(deep.status().message().find("nested deeper than 512 levels"), std::string::npos)
      << deep.status().message();
  // Brackets inside strings do not count.
  EXPECT_TRUE(parse_json("[\"" + std::string(1000, '[') + "\"]").ok());
}

TEST(JsonTest, CheckedGettersNameTheField) {
  auto j = parse_json(R"({"version": "one"})");
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
