// This file implements parse_json and dump_json on nlohmann::ordered_json:
// Status errors with positions, non-finite doubles as strings, and the
// bare NaN/Infinity tokens of older files.
#include "core/json.h"

#include <cmath>
#include <limits>

#include <fmt/format.h>

namespace alpa::core {
namespace {

// Deeper documents are refused: printing one recurses once per level.
constexpr int kMaxDepth = 512;

constexpr std::string_view kNaN = "NaN";
constexpr std::string_view kInfinity = "Infinity";
constexpr std::string_view kMinusInfinity = "-Infinity";

std::optional<double> nonfinite_from(std::string_view s) {
  if (s == kNaN) return std::numeric_limits<double>::quiet_NaN();
  if (s == kInfinity) return std::numeric_limits<double>::infinity();
  if (s == kMinusInfinity) return -std::numeric_limits<double>::infinity();
  return std::nullopt;
}

Status malformed(std::string_view text, size_t pos, std::string_view what) {
  auto [line, col] = line_and_column(text, pos);
  return parse_error(fmt::format("malformed JSON at line {}, column {}: {}", line, col, what));
}

// Files written before non-finite numbers became strings (by alpa_torch's
// old writer, and by Python's json.dumps with allow_nan=True) hold the bare
// tokens NaN, Infinity and -Infinity, which are not JSON. They are rewritten
// as marker strings (NUL, then the token: nothing alpa_torch writes), the
// text is parsed, and the markers become doubles again.
class LegacyTokens {
 public:
  /// Scans `text` outside strings: bounds the nesting depth and rewrites
  /// each bare token. text() is then what to parse.
  Status scan(std::string_view text) {
    original_ = text;
    int depth = 0;
    size_t copied = 0;  // original_[0, copied) is already in rewritten_
    for (size_t i = 0; i < text.size(); ++i) {
      const char c = text[i];
      if (c == '"') {
        for (++i; i < text.size() && text[i] != '"'; ++i) {
          if (text[i] == '\\') ++i;
        }
      } else if (c == '[' || c == '{') {
        if (++depth > kMaxDepth) {
          return malformed(text, i, fmt::format("arrays and objects nested deeper than {} levels",
                                                kMaxDepth));
        }
      } else if (c == ']' || c == '}') {
        --depth;
      } else if (c == 'N' || c == 'I' || c == '-') {
        for (std::string_view token : {kMinusInfinity, kInfinity, kNaN}) {
          if (text.substr(i, token.size()) != token) continue;
          rewritten_.append(text.substr(copied, i - copied));
          Marker m{rewritten_.size(), 0, i, i + token.size()};
          rewritten_.append("\"\\u0000").append(token).append("\"");
          m.new_end = rewritten_.size();
          markers_.push_back(m);
          copied = m.old_end;
          i = m.old_end - 1;
          break;
        }
      }
    }
    if (!markers_.empty()) rewritten_.append(text.substr(copied));
    return ok_status();
  }

  std::string_view text() const { return markers_.empty() ? original_ : rewritten_; }
  bool rewrote() const { return !markers_.empty(); }

  /// Where position `pos` of text() is in the original text.
  size_t original_position(size_t pos) const {
    size_t old = pos;
    for (const Marker& m : markers_) {
      if (pos < m.new_begin) break;
      old = pos < m.new_end ? m.old_begin : m.old_end + (pos - m.new_end);
    }
    return old;
  }

  /// Turns the marker strings in `json` back into doubles.
  static void restore(Json& json) {
    if (json.is_string()) {
      const auto& s = json.get_ref<const std::string&>();
      if (!s.empty() && s[0] == '\0') {
        if (auto v = nonfinite_from(std::string_view(s).substr(1))) json = *v;
      }
    } else if (json.is_structured()) {
      for (Json& item : json) restore(item);
    }
  }

 private:
  struct Marker {
    size_t new_begin, new_end;  // in rewritten_
    size_t old_begin, old_end;  // in original_
  };
  std::string_view original_;
  std::string rewritten_;
  std::vector<Marker> markers_;
};

// nlohmann's what() is "[json.exception.parse_error.101] parse error at line
// L, column C: <detail>"; the position is recomputed in the original text.
std::string parse_error_detail(const std::string& what) {
  size_t column = what.find("column ");
  size_t colon = column == std::string::npos ? std::string::npos : what.find(": ", column);
  std::string detail = colon == std::string::npos ? what : what.substr(colon + 2);
  if (detail.find("unexpected end of input") != std::string::npos) detail += " (truncated file?)";
  return detail;
}

bool has_nonfinite(const Json& json) {
  if (json.is_number_float()) return !std::isfinite(json.get<double>());
  if (json.is_structured()) {
    for (const Json& item : json) {
      if (has_nonfinite(item)) return true;
    }
  }
  return false;
}

void nonfinite_to_strings(Json& json) {
  if (json.is_number_float()) {
    double v = json.get<double>();
    if (std::isnan(v)) json = std::string(kNaN);
    else if (std::isinf(v)) json = std::string(v > 0 ? kInfinity : kMinusInfinity);
  } else if (json.is_structured()) {
    for (Json& item : json) nonfinite_to_strings(item);
  }
}

}  // namespace

StatusOr<Json> parse_json(std::string_view text) {
  LegacyTokens legacy;
  ALPA_RETURN_IF_ERROR(legacy.scan(text));
  const std::string_view input = legacy.text();
  try {
    Json json = Json::parse(input.begin(), input.end());
    if (legacy.rewrote()) LegacyTokens::restore(json);
    return json;
  } catch (const Json::parse_error& e) {
    size_t pos = e.byte > 0 ? e.byte - 1 : 0;
    return malformed(text, legacy.original_position(pos), parse_error_detail(e.what()));
  } catch (const Json::exception& e) {
    // out_of_range.406 "number overflow parsing '1e400'": find the number.
    std::string what = e.what();
    size_t open = what.find('\'');
    size_t close = open == std::string::npos ? open : what.find('\'', open + 1);
    size_t pos = close == std::string::npos
                     ? 0
                     : text.find(std::string_view(what).substr(open + 1, close - open - 1));
    return malformed(text, pos == std::string_view::npos ? 0 : pos,
                     what.substr(what.find(']') + 2) + " (beyond a double's range)");
  }
}

std::string dump_json(const Json& json, int indent) {
  const Json* out = &json;
  Json copy;
  if (has_nonfinite(json)) {
    copy = json;
    nonfinite_to_strings(copy);
    out = &copy;
  }
  try {
    return out->dump(indent);
  } catch (const Json::type_error& e) {
    throw StatusError(invalid_argument(fmt::format(
        "cannot write JSON: {}; JSON text is UTF-8, so name graphs, nodes, modules and "
        "parameters with UTF-8 strings", e.what())));
  }
}

const char* json_kind_name(const Json& value) {
  using Type = Json::value_t;
  switch (value.type()) {
    case Type::null: return "null";
    case Type::boolean: return "bool";
    case Type::number_integer: return "integer";
    case Type::number_unsigned: return json_is_int(value) ? "integer" : "number";
    case Type::number_float: return "number";
    case Type::string: return "string";
    case Type::array: return "array";
    case Type::object: return "object";
    case Type::binary: return "binary";
    case Type::discarded: return "discarded";
  }
  return "?";
}

bool json_is_int(const Json& value) {
  if (value.is_number_integer() && !value.is_number_unsigned()) return true;
  return value.is_number_unsigned() &&
         value.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
}

std::optional<double> json_number(const Json& value) {
  if (value.is_number()) return value.get<double>();
  if (value.is_string()) return nonfinite_from(value.get_ref<const std::string&>());
  return std::nullopt;
}

const Json* json_find(const Json& obj, std::string_view key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

std::pair<int, int> line_and_column(std::string_view text, size_t pos) {
  int line = 1, col = 1;
  for (size_t i = 0; i < pos && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  return {line, col};
}

std::string format_double(double v) {
  if (std::isnan(v)) return std::string(kNaN);
  if (std::isinf(v)) return std::string(v > 0 ? kInfinity : kMinusInfinity);
  std::string s = fmt::format("{}", v);
  // Keep a marker that this is a double so it reads back as one.
  if (s.find_first_of(".eE") == std::string::npos) s += ".0";
  return s;
}

StatusOr<const Json*> json_member(const Json& obj, std::string_view key,
                                  std::string_view where) {
  if (!obj.is_object()) {
    return parse_error(fmt::format("{}: expected an object, got {}", where, json_kind_name(obj)));
  }
  const Json* v = json_find(obj, key);
  if (v == nullptr) return parse_error(fmt::format("{}: missing field \"{}\"", where, key));
  return v;
}

namespace {
Status kind_error(std::string_view where, std::string_view key, const char* expected,
                  const Json& got) {
  return parse_error(fmt::format("{}: field \"{}\" must be {}, got {}", where, key, expected,
                                 json_kind_name(got)));
}
}  // namespace

StatusOr<int64_t> json_get_int(const Json& obj, std::string_view key, std::string_view where) {
  ALPA_ASSIGN_OR_RETURN(const Json* v, json_member(obj, key, where));
  if (!json_is_int(*v)) return kind_error(where, key, "an integer", *v);
  return v->get<int64_t>();
}

StatusOr<double> json_get_double(const Json& obj, std::string_view key, std::string_view where) {
  ALPA_ASSIGN_OR_RETURN(const Json* v, json_member(obj, key, where));
  std::optional<double> number = json_number(*v);
  if (!number) return kind_error(where, key, "a number", *v);
  return *number;
}

StatusOr<std::string> json_get_string(const Json& obj, std::string_view key,
                                      std::string_view where) {
  ALPA_ASSIGN_OR_RETURN(const Json* v, json_member(obj, key, where));
  if (!v->is_string()) return kind_error(where, key, "a string", *v);
  return v->get<std::string>();
}

StatusOr<bool> json_get_bool(const Json& obj, std::string_view key, std::string_view where) {
  ALPA_ASSIGN_OR_RETURN(const Json* v, json_member(obj, key, where));
  if (!v->is_boolean()) return kind_error(where, key, "a bool", *v);
  return v->get<bool>();
}

StatusOr<const Json*> json_get_array(const Json& obj, std::string_view key,
                                     std::string_view where) {
  ALPA_ASSIGN_OR_RETURN(const Json* v, json_member(obj, key, where));
  if (!v->is_array()) return kind_error(where, key, "an array", *v);
  return v;
}

StatusOr<std::vector<int64_t>> json_int_list(const Json& value, std::string_view where) {
  if (!value.is_array()) {
    return parse_error(fmt::format("{}: expected a list of integers, got {}", where,
                                   json_kind_name(value)));
  }
  std::vector<int64_t> out;
  out.reserve(value.size());
  for (const Json& item : value) {
    if (!json_is_int(item)) {
      return parse_error(fmt::format("{}: expected a list of integers, found {}", where,
                                     json_kind_name(item)));
    }
    out.push_back(item.get<int64_t>());
  }
  return out;
}

}  // namespace alpa::core
