// This file implements the text and JSON forms of Attr.
#include "ir/attribute.h"

#include <cmath>
#include <optional>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace alpa::ir {

std::string attr_to_string(const Attr& attr) {
  struct Visitor {
    std::string operator()(std::monostate) const { return "none"; }
    std::string operator()(bool b) const { return b ? "true" : "false"; }
    std::string operator()(int64_t v) const { return fmt::format("{}", v); }
    std::string operator()(double v) const { return core::format_double(v); }
    std::string operator()(const std::string& s) const {
      return core::dump_json(core::Json(s));
    }
    std::string operator()(const std::vector<int64_t>& v) const {
      return fmt::format("[{}]", fmt::join(v, ","));
    }
    std::string operator()(const Floats& f) const {
      std::vector<std::string> parts;
      for (double v : f.values) parts.push_back(core::format_double(v));
      return fmt::format("f[{}]", fmt::join(parts, ","));
    }
    std::string operator()(InputRef r) const {
      return fmt::format("${}", r.position);
    }
    std::string operator()(const InputRefs& r) const {
      return fmt::format("$[{}]", fmt::join(r.positions, ","));
    }
  };
  return std::visit(Visitor{}, attr);
}

core::Json attr_to_json(const Attr& attr) {
  using core::Json;
  struct Visitor {
    Json operator()(std::monostate) const { return Json(nullptr); }
    Json operator()(bool b) const { return Json(b); }
    Json operator()(int64_t v) const { return Json(v); }
    // A bare string would read back as a string attribute, so a non-finite
    // double is tagged ({"float": "-Infinity"}); dump_json writes the string.
    Json operator()(double v) const {
      return std::isfinite(v) ? Json(v) : Json::object({{"float", v}});
    }
    Json operator()(const std::string& s) const { return Json(s); }
    Json operator()(const std::vector<int64_t>& v) const { return Json(v); }
    Json operator()(const Floats& f) const { return Json::object({{"floats", f.values}}); }
    Json operator()(InputRef r) const { return Json::object({{"input", r.position}}); }
    Json operator()(const InputRefs& r) const { return Json::object({{"inputs", r.positions}}); }
  };
  return std::visit(Visitor{}, attr);
}

core::StatusOr<Attr> attr_from_json(const core::Json& json) {
  using Type = core::Json::value_t;
  switch (json.type()) {
    case Type::null: return Attr(std::monostate{});
    case Type::boolean: return Attr(json.get<bool>());
    case Type::number_integer:
    case Type::number_unsigned:
      if (core::json_is_int(json)) return Attr(json.get<int64_t>());
      return Attr(json.get<double>());
    case Type::number_float: return Attr(json.get<double>());
    case Type::string: return Attr(json.get<std::string>());
    case Type::array: {
      ALPA_ASSIGN_OR_RETURN(auto ints, core::json_int_list(json, "attribute"));
      return Attr(std::move(ints));
    }
    case Type::object: {
      if (json.size() == 1) {
        const auto& [key, value] = *json.get_ref<const core::Json::object_t&>().begin();
        if (key == "input" && core::json_is_int(value)) return Attr(InputRef{value.get<int64_t>()});
        if (key == "inputs") {
          ALPA_ASSIGN_OR_RETURN(auto refs, core::json_int_list(value, "attribute inputs"));
          return Attr(InputRefs{std::move(refs)});
        }
        if (key == "floats" && value.is_array()) {
          Floats f;
          for (const auto& v : value) {
            std::optional<double> number = core::json_number(v);
            if (!number) return core::parse_error("attribute floats: non-number item");
            f.values.push_back(*number);
          }
          return Attr(std::move(f));
        }
        if (key == "float") {
          if (std::optional<double> number = core::json_number(value)) return Attr(*number);
        }
      }
      return core::parse_error(fmt::format(
          "unknown attribute object {} (expected {{\"input\": k}}, {{\"inputs\": [...]}}, "
          "{{\"floats\": [...]}} or {{\"float\": \"NaN\" | \"Infinity\" | \"-Infinity\"}})",
          core::dump_json(json)));
    }
    default: break;
  }
  return core::parse_error("unknown attribute kind");
}

}  // namespace alpa::ir
