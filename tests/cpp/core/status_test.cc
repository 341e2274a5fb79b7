// Tests Status, StatusOr and the propagation macros.
#include "core/status.h"

#include <gtest/gtest.h>

#include "core/check.h"

namespace alpa::core {
namespace {

StatusOr<int> half(int x) {
  if (x % 2 != 0) return invalid_argument("odd");
  return x / 2;
}

StatusOr<int> quarter(int x) {
  ALPA_ASSIGN_OR_RETURN(int h, half(x));
  ALPA_ASSIGN_OR_RETURN(int q, half(h));
  return q;
}

TEST(StatusTest, PropagatesFirstError) {
  EXPECT_EQ(*quarter(8), 2);
  auto bad = quarter(6);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().to_string(), "InvalidArgument: odd");
  EXPECT_THROW(bad.value(), StatusError);
}

TEST(StatusTest, ContextIsPrefixed) {
  Status s = parse_error("bad").with_context("nodes[3]");
  EXPECT_EQ(s.message(), "nodes[3]: bad");
  EXPECT_EQ(s.code(), StatusCode::kParseError);
}

TEST(CheckTest, ThrowsInternalErrorWithValues) {
  try {
    ALPA_CHECK(1 + 1 == 3, "expected {}, got {}", 3, 2);
    FAIL() << "no throw";
  } catch (const InternalError& e) {
    EXPECT_NE(std::string(e.what()).find("expected 3, got 2"), std::string::npos);
  }
}

}  // namespace
}  // namespace alpa::core
