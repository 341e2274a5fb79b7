// This file implements the text and JSON forms of Attr.
#include "ir/attribute.h"

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
      return core::Json(s).dump();
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
    Json operator()(double v) const { return Json(v); }
    Json operator()(const std::string& s) const { return Json(s); }
    Json operator()(const std::vector<int64_t>& v) const {
      Json a = Json::array();
      for (int64_t x : v) a.push(Json(x));
      return a;
    }
    Json operator()(const Floats& f) const {
      Json a = Json::array();
      for (double x : f.values) a.push(Json(x));
      return Json(Json::Object{{"floats", a}});
    }
    Json operator()(InputRef r) const {
      return Json(Json::Object{{"input", Json(r.position)}});
    }
    Json operator()(const InputRefs& r) const {
      Json a = Json::array();
      for (int64_t x : r.positions) a.push(Json(x));
      return Json(Json::Object{{"inputs", a}});
    }
  };
  return std::visit(Visitor{}, attr);
}

core::StatusOr<Attr> attr_from_json(const core::Json& json) {
  using Kind = core::Json::Kind;
  switch (json.kind()) {
    case Kind::kNull: return Attr(std::monostate{});
    case Kind::kBool: return Attr(json.as_bool());
    case Kind::kInt: return Attr(json.as_int());
    case Kind::kDouble: return Attr(json.as_double());
    case Kind::kString: return Attr(json.as_string());
    case Kind::kArray: {
      ALPA_ASSIGN_OR_RETURN(auto ints, core::json_int_list(json, "attribute"));
      return Attr(std::move(ints));
    }
    case Kind::kObject: {
      const auto& obj = json.as_object();
      if (obj.size() == 1 && obj[0].first == "input" && obj[0].second.is_int()) {
        return Attr(InputRef{obj[0].second.as_int()});
      }
      if (obj.size() == 1 && obj[0].first == "inputs") {
        ALPA_ASSIGN_OR_RETURN(auto refs, core::json_int_list(obj[0].second, "attribute inputs"));
        return Attr(InputRefs{std::move(refs)});
      }
      if (obj.size() == 1 && obj[0].first == "floats" && obj[0].second.is_array()) {
        Floats f;
        for (const auto& v : obj[0].second.as_array()) {
          if (!v.is_number()) return core::parse_error("attribute floats: non-number item");
          f.values.push_back(v.as_double());
        }
        return Attr(std::move(f));
      }
      return core::parse_error(fmt::format(
          "unknown attribute object {} (expected {{\"input\": k}}, "
          "{{\"inputs\": [...]}} or {{\"floats\": [...]}})",
          json.dump()));
    }
  }
  return core::parse_error("unknown attribute kind");
}

}  // namespace alpa::ir
