// This file implements a small JSON value with an exact round trip: objects
// keep key order, integers stay int64, doubles print as the shortest text
// that reads back bit-identical. Graphs and plans serialize through it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "core/status.h"

namespace alpa::core {

class Json {
 public:
  using Array = std::vector<Json>;
  using Object = std::vector<std::pair<std::string, Json>>;  // ordered

  enum class Kind { kNull, kBool, kInt, kDouble, kString, kArray, kObject };

  Json() = default;
  Json(std::nullptr_t) {}                                  // NOLINT
  Json(bool b) : value_(b) {}                              // NOLINT
  Json(int v) : value_(static_cast<int64_t>(v)) {}         // NOLINT
  Json(int64_t v) : value_(v) {}                           // NOLINT
  Json(double v) : value_(v) {}                            // NOLINT
  Json(const char* s) : value_(std::string(s)) {}          // NOLINT
  Json(std::string s) : value_(std::move(s)) {}            // NOLINT
  Json(Array a) : value_(std::move(a)) {}                  // NOLINT
  Json(Object o) : value_(std::move(o)) {}                 // NOLINT

  static Json array() { return Json(Array{}); }
  static Json object() { return Json(Object{}); }

  Kind kind() const { return static_cast<Kind>(value_.index()); }
  bool is_null() const { return kind() == Kind::kNull; }
  bool is_bool() const { return kind() == Kind::kBool; }
  bool is_int() const { return kind() == Kind::kInt; }
  bool is_number() const { return is_int() || kind() == Kind::kDouble; }
  bool is_string() const { return kind() == Kind::kString; }
  bool is_array() const { return kind() == Kind::kArray; }
  bool is_object() const { return kind() == Kind::kObject; }

  // Accessors throw InternalError on a kind mismatch; use the get_* helpers
  // below to read user-provided JSON with a Status instead.
  bool as_bool() const;
  int64_t as_int() const;
  double as_double() const;  // ints convert
  const std::string& as_string() const;
  const Array& as_array() const;
  Array& as_array();
  const Object& as_object() const;
  Object& as_object();

  /// Object member lookup; nullptr when absent (or not an object).
  const Json* find(std::string_view key) const;
  /// Appends (or replaces) an object member.
  Json& set(std::string key, Json value);
  /// Appends to an array.
  Json& push(Json value);

  /// Compact text (indent < 0) or pretty text with `indent` spaces.
  std::string dump(int indent = -1) const;
  static StatusOr<Json> parse(std::string_view text);

  friend bool operator==(const Json& a, const Json& b) {
    return a.value_ == b.value_;
  }
  friend bool operator!=(const Json& a, const Json& b) { return !(a == b); }

 private:
  void dump_to(std::string& out, int indent, int depth) const;
  std::variant<std::nullptr_t, bool, int64_t, double, std::string, Array,
               Object>
      value_;
};

const char* json_kind_name(Json::Kind kind);

// Checked reads of user-provided JSON: each error names the field path.
StatusOr<const Json*> json_member(const Json& obj, std::string_view key,
                                  std::string_view where);
StatusOr<int64_t> json_get_int(const Json& obj, std::string_view key,
                               std::string_view where);
StatusOr<double> json_get_double(const Json& obj, std::string_view key,
                                 std::string_view where);
StatusOr<std::string> json_get_string(const Json& obj, std::string_view key,
                                      std::string_view where);
StatusOr<bool> json_get_bool(const Json& obj, std::string_view key,
                             std::string_view where);
StatusOr<const Json::Array*> json_get_array(const Json& obj,
                                            std::string_view key,
                                            std::string_view where);
StatusOr<std::vector<int64_t>> json_int_list(const Json& value,
                                             std::string_view where);

/// 1-based line and column of byte offset `pos` in `text`, for parse errors.
std::pair<int, int> line_and_column(std::string_view text, size_t pos);

/// Shortest decimal text for `v` that parses back to the same double.
std::string format_double(double v);

}  // namespace alpa::core
