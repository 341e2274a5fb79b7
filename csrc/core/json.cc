// This file implements JSON parsing and printing for core::Json.
#include "core/json.h"

#include <cmath>
#include <cstdlib>

#include <fmt/format.h>

#include "core/check.h"

namespace alpa::core {
namespace {

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  StatusOr<Json> parse_document() {
    Json value;
    ALPA_RETURN_IF_ERROR(parse_value(value, 0));
    skip_ws();
    if (pos_ != text_.size()) return error("trailing characters after JSON");
    return value;
  }

 private:
  static constexpr int kMaxDepth = 512;

  Status error(const std::string& what) const {
    auto [line, col] = core::line_and_column(text_, pos_);
    return parse_error(fmt::format("malformed JSON at line {}, column {}: {}",
                                   line, col, what));
  }

  void skip_ws() {
    while (pos_ < text_.size() &&
           (text_[pos_] == ' ' || text_[pos_] == '\n' || text_[pos_] == '\t' ||
            text_[pos_] == '\r')) {
      ++pos_;
    }
  }

  bool consume(std::string_view word) {
    if (text_.substr(pos_, word.size()) == word) {
      pos_ += word.size();
      return true;
    }
    return false;
  }

  Status parse_value(Json& out, int depth) {
    if (depth > kMaxDepth) return error("nesting too deep");
    skip_ws();
    if (pos_ >= text_.size()) return error("unexpected end of input (truncated file?)");
    char c = text_[pos_];
    if (c == '{') return parse_object(out, depth);
    if (c == '[') return parse_array(out, depth);
    if (c == '"') {
      std::string s;
      ALPA_RETURN_IF_ERROR(parse_string(s));
      out = Json(std::move(s));
      return ok_status();
    }
    if (consume("true")) {
      out = Json(true);
      return ok_status();
    }
    if (consume("false")) {
      out = Json(false);
      return ok_status();
    }
    if (consume("null")) {
      out = Json(nullptr);
      return ok_status();
    }
    if (c == '-' || (c >= '0' && c <= '9')) return parse_number(out);
    if (consume("NaN")) {
      out = Json(std::nan(""));
      return ok_status();
    }
    if (consume("Infinity")) {
      out = Json(HUGE_VAL);
      return ok_status();
    }
    return error(fmt::format("unexpected character '{}'", c));
  }

  Status parse_number(Json& out) {
    size_t start = pos_;
    if (consume("-Infinity")) {
      out = Json(-HUGE_VAL);
      return ok_status();
    }
    bool is_double = false;
    if (text_[pos_] == '-') ++pos_;
    while (pos_ < text_.size()) {
      char c = text_[pos_];
      if (c >= '0' && c <= '9') {
        ++pos_;
      } else if (c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') {
        is_double = true;
        ++pos_;
      } else {
        break;
      }
    }
    std::string token(text_.substr(start, pos_ - start));
    char* end = nullptr;
    if (!is_double) {
      errno = 0;
      long long v = std::strtoll(token.c_str(), &end, 10);
      if (errno == 0 && end == token.c_str() + token.size()) {
        out = Json(static_cast<int64_t>(v));
        return ok_status();
      }
    }
    double d = std::strtod(token.c_str(), &end);
    if (token.empty() || end != token.c_str() + token.size()) {
      pos_ = start;
      return error(fmt::format("bad number '{}'", token));
    }
    out = Json(d);
    return ok_status();
  }

  Status parse_hex4(unsigned& code) {
    if (pos_ + 4 > text_.size()) return error("truncated \\u escape");
    code = 0;
    for (int i = 0; i < 4; ++i) {
      char h = text_[pos_++];
      code <<= 4;
      if (h >= '0' && h <= '9') code |= h - '0';
      else if (h >= 'a' && h <= 'f') code |= h - 'a' + 10;
      else if (h >= 'A' && h <= 'F') code |= h - 'A' + 10;
      else return error("bad \\u escape");
    }
    return ok_status();
  }

  static void append_utf8(std::string& s, unsigned cp) {
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else if (cp < 0x800) {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      s += static_cast<char>(0xE0 | (cp >> 12));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      s += static_cast<char>(0xF0 | (cp >> 18));
      s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  Status parse_string(std::string& out) {
    ++pos_;  // opening quote
    while (true) {
      if (pos_ >= text_.size()) return error("unterminated string (truncated file?)");
      char c = text_[pos_++];
      if (c == '"') return ok_status();
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= text_.size()) return error("unterminated escape");
      char e = text_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = 0;
          ALPA_RETURN_IF_ERROR(parse_hex4(cp));
          // A UTF-16 surrogate is only a character as a high-low pair; a
          // lone half has no UTF-8 form, so the file is refused here rather
          // than turned into bytes that are not UTF-8.
          if (cp >= 0xDC00 && cp < 0xE000) {
            return error(fmt::format("\\u{:04x} is a lone low surrogate (not a character)", cp));
          }
          if (cp >= 0xD800 && cp < 0xDC00) {
            unsigned lo = 0;
            if (!consume("\\u") || !parse_hex4(lo).ok() || lo < 0xDC00 || lo >= 0xE000) {
              return error(fmt::format(
                  "\\u{:04x} is a high surrogate not followed by a low one (not a character)", cp));
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          append_utf8(out, cp);
          break;
        }
        default: return error(fmt::format("bad escape '\\{}'", e));
      }
    }
  }

  Status parse_array(Json& out, int depth) {
    ++pos_;
    Json::Array items;
    skip_ws();
    if (consume("]")) {
      out = Json(std::move(items));
      return ok_status();
    }
    while (true) {
      Json item;
      ALPA_RETURN_IF_ERROR(parse_value(item, depth + 1));
      items.push_back(std::move(item));
      skip_ws();
      if (consume(",")) continue;
      if (consume("]")) break;
      return error(pos_ >= text_.size() ? "unexpected end of input in array (truncated file?)"
                                        : "expected ',' or ']' in array");
    }
    out = Json(std::move(items));
    return ok_status();
  }

  Status parse_object(Json& out, int depth) {
    ++pos_;
    Json::Object members;
    skip_ws();
    if (consume("}")) {
      out = Json(std::move(members));
      return ok_status();
    }
    while (true) {
      skip_ws();
      if (pos_ >= text_.size()) return error("unexpected end of input in object (truncated file?)");
      if (text_[pos_] != '"') return error("expected a quoted key");
      std::string key;
      ALPA_RETURN_IF_ERROR(parse_string(key));
      skip_ws();
      if (!consume(":")) return error("expected ':' after key");
      Json value;
      ALPA_RETURN_IF_ERROR(parse_value(value, depth + 1));
      members.emplace_back(std::move(key), std::move(value));
      skip_ws();
      if (consume(",")) continue;
      if (consume("}")) break;
      return error(pos_ >= text_.size() ? "unexpected end of input in object (truncated file?)"
                                        : "expected ',' or '}' in object");
    }
    out = Json(std::move(members));
    return ok_status();
  }

  std::string_view text_;
  size_t pos_ = 0;
};

void dump_string(std::string& out, const std::string& s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += fmt::format("\\u{:04x}", c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

}  // namespace

const char* json_kind_name(Json::Kind kind) {
  switch (kind) {
    case Json::Kind::kNull: return "null";
    case Json::Kind::kBool: return "bool";
    case Json::Kind::kInt: return "integer";
    case Json::Kind::kDouble: return "number";
    case Json::Kind::kString: return "string";
    case Json::Kind::kArray: return "array";
    case Json::Kind::kObject: return "object";
  }
  return "?";
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
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  std::string s = fmt::format("{}", v);
  // Keep a marker that this is a double so it reads back as one.
  if (s.find_first_of(".eE") == std::string::npos) s += ".0";
  return s;
}

bool Json::as_bool() const {
  ALPA_CHECK(is_bool(), "JSON value is {}, not bool", json_kind_name(kind()));
  return std::get<bool>(value_);
}
int64_t Json::as_int() const {
  ALPA_CHECK(is_int(), "JSON value is {}, not integer", json_kind_name(kind()));
  return std::get<int64_t>(value_);
}
double Json::as_double() const {
  if (is_int()) return static_cast<double>(std::get<int64_t>(value_));
  ALPA_CHECK(kind() == Kind::kDouble, "JSON value is {}, not number",
             json_kind_name(kind()));
  return std::get<double>(value_);
}
const std::string& Json::as_string() const {
  ALPA_CHECK(is_string(), "JSON value is {}, not string", json_kind_name(kind()));
  return std::get<std::string>(value_);
}
const Json::Array& Json::as_array() const {
  ALPA_CHECK(is_array(), "JSON value is {}, not array", json_kind_name(kind()));
  return std::get<Array>(value_);
}
Json::Array& Json::as_array() {
  ALPA_CHECK(is_array(), "JSON value is {}, not array", json_kind_name(kind()));
  return std::get<Array>(value_);
}
const Json::Object& Json::as_object() const {
  ALPA_CHECK(is_object(), "JSON value is {}, not object", json_kind_name(kind()));
  return std::get<Object>(value_);
}
Json::Object& Json::as_object() {
  ALPA_CHECK(is_object(), "JSON value is {}, not object", json_kind_name(kind()));
  return std::get<Object>(value_);
}

const Json* Json::find(std::string_view key) const {
  if (!is_object()) return nullptr;
  for (const auto& [k, v] : std::get<Object>(value_)) {
    if (k == key) return &v;
  }
  return nullptr;
}

Json& Json::set(std::string key, Json value) {
  auto& obj = as_object();
  for (auto& [k, v] : obj) {
    if (k == key) {
      v = std::move(value);
      return *this;
    }
  }
  obj.emplace_back(std::move(key), std::move(value));
  return *this;
}

Json& Json::push(Json value) {
  as_array().push_back(std::move(value));
  return *this;
}

std::string Json::dump(int indent) const {
  std::string out;
  dump_to(out, indent, 0);
  return out;
}

void Json::dump_to(std::string& out, int indent, int depth) const {
  auto newline = [&](int d) {
    if (indent < 0) return;
    out += '\n';
    out.append(static_cast<size_t>(indent * d), ' ');
  };
  switch (kind()) {
    case Kind::kNull: out += "null"; break;
    case Kind::kBool: out += std::get<bool>(value_) ? "true" : "false"; break;
    case Kind::kInt: out += fmt::format("{}", std::get<int64_t>(value_)); break;
    case Kind::kDouble: out += format_double(std::get<double>(value_)); break;
    case Kind::kString: dump_string(out, std::get<std::string>(value_)); break;
    case Kind::kArray: {
      const auto& a = std::get<Array>(value_);
      // Arrays of scalars stay on one line even when pretty-printing.
      bool flat = true;
      for (const auto& v : a) flat = flat && !v.is_array() && !v.is_object();
      out += '[';
      for (size_t i = 0; i < a.size(); ++i) {
        if (i) out += flat && indent >= 0 ? ", " : ",";
        if (!flat) newline(depth + 1);
        a[i].dump_to(out, indent, depth + 1);
      }
      if (!flat && !a.empty()) newline(depth);
      out += ']';
      break;
    }
    case Kind::kObject: {
      const auto& o = std::get<Object>(value_);
      out += '{';
      for (size_t i = 0; i < o.size(); ++i) {
        if (i) out += ',';
        newline(depth + 1);
        dump_string(out, o[i].first);
        out += indent >= 0 ? ": " : ":";
        o[i].second.dump_to(out, indent, depth + 1);
      }
      if (!o.empty()) newline(depth);
      out += '}';
      break;
    }
  }
}

StatusOr<Json> Json::parse(std::string_view text) {
  return Parser(text).parse_document();
}

StatusOr<const Json*> json_member(const Json& obj, std::string_view key,
                                  std::string_view where) {
  if (!obj.is_object()) {
    return parse_error(fmt::format("{}: expected an object, got {}", where,
                                   json_kind_name(obj.kind())));
  }
  const Json* v = obj.find(key);
  if (v == nullptr) {
    return parse_error(fmt::format("{}: missing field \"{}\"", where, key));
  }
  return v;
}

namespace {
Status kind_error(std::string_view where, std::string_view key,
                  const char* expected, const Json& got) {
  return parse_error(fmt::format("{}: field \"{}\" must be {}, got {}", where,
                                 key, expected, json_kind_name(got.kind())));
}
}  // namespace

StatusOr<int64_t> json_get_int(const Json& obj, std::string_view key,
                               std::string_view where) {
  ALPA_ASSIGN_OR_RETURN(const Json* v, json_member(obj, key, where));
  if (!v->is_int()) return kind_error(where, key, "an integer", *v);
  return v->as_int();
}

StatusOr<double> json_get_double(const Json& obj, std::string_view key,
                                 std::string_view where) {
  ALPA_ASSIGN_OR_RETURN(const Json* v, json_member(obj, key, where));
  if (!v->is_number()) return kind_error(where, key, "a number", *v);
  return v->as_double();
}

StatusOr<std::string> json_get_string(const Json& obj, std::string_view key,
                                      std::string_view where) {
  ALPA_ASSIGN_OR_RETURN(const Json* v, json_member(obj, key, where));
  if (!v->is_string()) return kind_error(where, key, "a string", *v);
  return v->as_string();
}

StatusOr<bool> json_get_bool(const Json& obj, std::string_view key,
                             std::string_view where) {
  ALPA_ASSIGN_OR_RETURN(const Json* v, json_member(obj, key, where));
  if (!v->is_bool()) return kind_error(where, key, "a bool", *v);
  return v->as_bool();
}

StatusOr<const Json::Array*> json_get_array(const Json& obj,
                                            std::string_view key,
                                            std::string_view where) {
  ALPA_ASSIGN_OR_RETURN(const Json* v, json_member(obj, key, where));
  if (!v->is_array()) return kind_error(where, key, "an array", *v);
  return &v->as_array();
}

StatusOr<std::vector<int64_t>> json_int_list(const Json& value,
                                             std::string_view where) {
  if (!value.is_array()) {
    return parse_error(fmt::format("{}: expected a list of integers, got {}",
                                   where, json_kind_name(value.kind())));
  }
  std::vector<int64_t> out;
  for (const auto& item : value.as_array()) {
    if (!item.is_int()) {
      return parse_error(fmt::format("{}: expected a list of integers, found {}",
                                     where, json_kind_name(item.kind())));
    }
    out.push_back(item.as_int());
  }
  return out;
}

}  // namespace alpa::core
