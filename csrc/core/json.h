// This file adapts nlohmann::ordered_json, the JSON value graphs, plans,
// clusters and ILP problems serialize through, to alpa_torch's contracts:
// parsing returns a Status naming line and column; writing keeps key order
// and prints doubles as text that reads back bit-identical; non-finite
// doubles are written as the strings "NaN", "Infinity" and "-Infinity"
// (JSON has no token for them; docs/architecture.md "Non-finite numbers"),
// and checked reads name the field path in their errors.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace alpa::core {

/// A JSON value; objects keep insertion order (so a document written, read
/// and written again gives the same bytes), integers stay 64-bit.
using Json = nlohmann::ordered_json;

/// Parses `text`. Errors are kParseError "malformed JSON at line L, column
/// C: ..." ("(truncated file?)" when the text ends early). Also reads the
/// bare tokens NaN, Infinity and -Infinity that files written before
/// non-finite numbers became strings hold (they read as doubles).
StatusOr<Json> parse_json(std::string_view text);

/// Compact text (indent < 0) or pretty text with `indent` spaces; doubles
/// that are NaN or infinite become the strings "NaN", "Infinity",
/// "-Infinity". Throws StatusError (kInvalidArgument) when a string is not
/// UTF-8. Use this, never Json::dump (which writes NaN as null).
std::string dump_json(const Json& json, int indent = -1);

/// "null", "bool", "integer", "number", "string", "array" or "object".
const char* json_kind_name(const Json& value);

/// An integer that fits int64 (JSON text without '.', 'e' or 'E').
bool json_is_int(const Json& value);

/// The number `value` holds: any JSON number, or one of the strings "NaN",
/// "Infinity", "-Infinity"; nullopt for anything else.
std::optional<double> json_number(const Json& value);

/// Object member lookup; nullptr when absent (or `obj` is not an object).
const Json* json_find(const Json& obj, std::string_view key);

// Checked reads of user-provided JSON: each error names the field path.
StatusOr<const Json*> json_member(const Json& obj, std::string_view key,
                                  std::string_view where);
StatusOr<int64_t> json_get_int(const Json& obj, std::string_view key,
                               std::string_view where);
/// A number (json_number: non-finite ones as strings).
StatusOr<double> json_get_double(const Json& obj, std::string_view key,
                                 std::string_view where);
StatusOr<std::string> json_get_string(const Json& obj, std::string_view key,
                                      std::string_view where);
StatusOr<bool> json_get_bool(const Json& obj, std::string_view key,
                             std::string_view where);
/// The member, which is an array.
StatusOr<const Json*> json_get_array(const Json& obj, std::string_view key,
                                     std::string_view where);
StatusOr<std::vector<int64_t>> json_int_list(const Json& value,
                                             std::string_view where);

/// 1-based line and column of byte offset `pos` in `text`, for parse errors.
std::pair<int, int> line_and_column(std::string_view text, size_t pos);

/// Shortest decimal text for `v` that parses back to the same double, for
/// the text forms ("2.0", "0.1", "NaN", "-Infinity").
std::string format_double(double v);

}  // namespace alpa::core
