// This file implements the Graph text printer and its recursive-descent
// parser.
#include "ir/text_format.h"

#include <cstdlib>
#include <map>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/json.h"
#include "ir/verifier.h"

namespace alpa::ir {
namespace {

using core::Status;
using core::StatusOr;

std::string quote(const std::string& s) { return core::dump_json(core::Json(s)); }

std::string ref_text(const Graph& g, ValueRef v) {
  std::string s = "%" + g.node(v.node).name;
  if (v.index != 0) s += fmt::format("#{}", v.index);
  return s;
}

std::string types_text(const Node& n) {
  if (n.outputs.size() == 1) return n.outputs[0].to_string();
  std::vector<std::string> parts;
  for (const auto& m : n.outputs) parts.push_back(m.to_string());
  return fmt::format("({})", fmt::join(parts, ", "));
}

std::string meta_text(const Node& n) {
  std::vector<std::string> parts;
  if (n.flops != 0) parts.push_back("flops=" + core::format_double(n.flops));
  if (!n.module.empty()) parts.push_back("module=" + quote(n.module));
  if (n.requires_grad) parts.push_back("requires_grad=true");
  if (parts.empty()) return "";
  return fmt::format(" [{}]", fmt::join(parts, ", "));
}

// ---- parser -----------------------------------------------------------------

class TextParser {
 public:
  explicit TextParser(std::string_view text) : text_(text) {}

  StatusOr<Graph> parse() {
    skip();
    ALPA_RETURN_IF_ERROR(expect_word("graph"));
    std::string name;
    ALPA_RETURN_IF_ERROR(read_string(name));
    graph_.set_name(name);
    ALPA_RETURN_IF_ERROR(expect("{"));
    while (true) {
      skip();
      if (peek() == '}') {
        ++pos_;
        break;
      }
      if (at_end()) return error("unexpected end of text: missing '}' (truncated?)");
      if (peek() == '%') {
        ALPA_RETURN_IF_ERROR(parse_node());
      } else {
        ALPA_RETURN_IF_ERROR(parse_output());
      }
    }
    skip();
    if (!at_end()) return error("text after the closing '}'");
    return std::move(graph_);
  }

 private:
  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return at_end() ? '\0' : text_[pos_]; }

  void skip() {
    while (!at_end()) {
      char c = peek();
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        ++pos_;
      } else if (c == '/' && pos_ + 1 < text_.size() && text_[pos_ + 1] == '/') {
        while (!at_end() && peek() != '\n') ++pos_;
      } else {
        break;
      }
    }
  }

  Status error(const std::string& what) const {
    auto [line, col] = core::line_and_column(text_, pos_);
    return core::parse_error(
        fmt::format("graph text line {}, column {}: {}", line, col, what));
  }

  Status expect(std::string_view token) {
    skip();
    if (text_.substr(pos_, token.size()) != token) {
      return error(fmt::format("expected '{}'", token));
    }
    pos_ += token.size();
    return core::ok_status();
  }

  bool accept(std::string_view token) {
    skip();
    if (text_.substr(pos_, token.size()) == token) {
      pos_ += token.size();
      return true;
    }
    return false;
  }

  static bool word_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_' || c == '.';
  }

  std::string read_word() {
    skip();
    size_t start = pos_;
    while (!at_end() && word_char(peek())) ++pos_;
    return std::string(text_.substr(start, pos_ - start));
  }

  Status expect_word(std::string_view w) {
    size_t start = pos_;
    if (read_word() != w) {
      pos_ = start;
      return error(fmt::format("expected '{}'", w));
    }
    return core::ok_status();
  }

  Status read_string(std::string& out) {
    skip();
    if (peek() != '"') return error("expected a quoted string");
    size_t start = pos_++;
    while (!at_end() && peek() != '"') {
      if (peek() == '\\') ++pos_;
      ++pos_;
    }
    if (at_end()) return error("unterminated string");
    ++pos_;
    auto parsed = core::parse_json(text_.substr(start, pos_ - start));
    if (!parsed.ok()) return error(parsed.status().message());
    out = parsed->get<std::string>();
    return core::ok_status();
  }

  Status read_tensor_type(TensorMeta& out) {
    skip();
    size_t start = pos_;
    while (!at_end() && peek() != ']') ++pos_;
    if (at_end()) return error("unterminated tensor type");
    ++pos_;
    auto meta = TensorMeta::parse(text_.substr(start, pos_ - start));
    if (!meta.ok()) return error(meta.status().message());
    out = *meta;
    return core::ok_status();
  }

  Status read_number_token(std::string& token) {
    skip();
    size_t start = pos_;
    while (!at_end() && (word_char(peek()) || peek() == '-' || peek() == '+')) ++pos_;
    token = std::string(text_.substr(start, pos_ - start));
    if (token.empty()) return error("expected a number");
    return core::ok_status();
  }

  Status read_int_list(std::vector<int64_t>& out) {
    ALPA_RETURN_IF_ERROR(expect("["));
    if (accept("]")) return core::ok_status();
    do {
      std::string token;
      ALPA_RETURN_IF_ERROR(read_number_token(token));
      char* end = nullptr;
      long long v = std::strtoll(token.c_str(), &end, 10);
      if (end != token.c_str() + token.size()) return error("expected an integer, got '" + token + "'");
      out.push_back(v);
    } while (accept(","));
    return expect("]");
  }

  Status read_attr_value(Attr& out) {
    skip();
    if (peek() == '"') {
      std::string s;
      ALPA_RETURN_IF_ERROR(read_string(s));
      out = s;
      return core::ok_status();
    }
    if (accept("$[")) {
      --pos_;
      InputRefs refs;
      ALPA_RETURN_IF_ERROR(read_int_list(refs.positions));
      out = refs;
      return core::ok_status();
    }
    if (accept("$")) {
      std::vector<int64_t> one;
      std::string token;
      ALPA_RETURN_IF_ERROR(read_number_token(token));
      out = InputRef{std::strtoll(token.c_str(), nullptr, 10)};
      return core::ok_status();
    }
    if (accept("f[")) {
      Floats f;
      if (!accept("]")) {
        do {
          std::string token;
          ALPA_RETURN_IF_ERROR(read_number_token(token));
          auto v = core::parse_json(token);
          if (!v.ok() || !v->is_number()) return error("expected a float, got '" + token + "'");
          f.values.push_back(v->get<double>());
        } while (accept(","));
        ALPA_RETURN_IF_ERROR(expect("]"));
      }
      out = f;
      return core::ok_status();
    }
    if (peek() == '[') {
      std::vector<int64_t> ints;
      ALPA_RETURN_IF_ERROR(read_int_list(ints));
      out = ints;
      return core::ok_status();
    }
    std::string token;
    ALPA_RETURN_IF_ERROR(read_number_token(token));
    if (token == "none") {
      out = std::monostate{};
    } else if (token == "true" || token == "false") {
      out = token == "true";
    } else {
      auto v = core::parse_json(token);
      if (!v.ok() || !v->is_number()) return error("bad attribute value '" + token + "'");
      if (core::json_is_int(*v)) out = v->get<int64_t>();
      else out = v->get<double>();
    }
    return core::ok_status();
  }

  Status read_ref(ValueRef& out) {
    ALPA_RETURN_IF_ERROR(expect("%"));
    size_t start = pos_;
    std::string name = read_word();
    auto it = names_.find(name);
    if (it == names_.end()) {
      pos_ = start;
      return error(fmt::format("'%{}' is used before it is defined (or never defined)", name));
    }
    out = ValueRef{it->second, 0};
    if (accept("#")) {
      std::string token;
      ALPA_RETURN_IF_ERROR(read_number_token(token));
      out.index = std::strtoll(token.c_str(), nullptr, 10);
    }
    return core::ok_status();
  }

  Status parse_meta(Node& n) {
    if (!accept("[")) return core::ok_status();
    do {
      std::string key = read_word();
      ALPA_RETURN_IF_ERROR(expect("="));
      if (key == "flops") {
        std::string token;
        ALPA_RETURN_IF_ERROR(read_number_token(token));
        auto v = core::parse_json(token);
        if (!v.ok() || !v->is_number()) return error("bad flops value");
        n.flops = v->get<double>();
      } else if (key == "module") {
        ALPA_RETURN_IF_ERROR(read_string(n.module));
      } else if (key == "requires_grad") {
        std::string w = read_word();
        n.requires_grad = w == "true";
      } else {
        return error(fmt::format("unknown node metadata '{}' (expected flops, module, requires_grad)", key));
      }
    } while (accept(","));
    return expect("]");
  }

  Status parse_attrs(Node& n) {
    if (!accept("{") || accept("}")) return core::ok_status();
    do {
      std::string key = read_word();
      if (key.empty()) return error("expected an attribute name");
      ALPA_RETURN_IF_ERROR(expect("="));
      Attr value;
      ALPA_RETURN_IF_ERROR(read_attr_value(value));
      n.attrs.emplace_back(key, std::move(value));
    } while (accept(","));
    return expect("}");
  }

  Status parse_node() {
    ALPA_RETURN_IF_ERROR(expect("%"));
    Node n;
    n.name = read_word();
    if (n.name.empty()) return error("expected a node name after '%'");
    ALPA_RETURN_IF_ERROR(expect(":"));
    if (accept("(")) {
      do {
        TensorMeta m;
        ALPA_RETURN_IF_ERROR(read_tensor_type(m));
        n.outputs.push_back(m);
      } while (accept(","));
      ALPA_RETURN_IF_ERROR(expect(")"));
    } else {
      TensorMeta m;
      ALPA_RETURN_IF_ERROR(read_tensor_type(m));
      n.outputs.push_back(m);
    }
    ALPA_RETURN_IF_ERROR(expect("="));
    std::string head = read_word();
    auto kind = parse_node_kind(head);
    if (kind.ok() && *kind != NodeKind::kOp) {
      n.kind = *kind;
      ALPA_RETURN_IF_ERROR(read_string(n.target));
    } else {
      n.kind = NodeKind::kOp;
      n.op = head;
      if (n.op.empty()) return error("expected an op name or a placeholder kind");
      ALPA_RETURN_IF_ERROR(expect("("));
      if (!accept(")")) {
        do {
          ValueRef v;
          ALPA_RETURN_IF_ERROR(read_ref(v));
          n.inputs.push_back(v);
        } while (accept(","));
        ALPA_RETURN_IF_ERROR(expect(")"));
      }
    }
    ALPA_RETURN_IF_ERROR(parse_attrs(n));
    ALPA_RETURN_IF_ERROR(parse_meta(n));
    if (names_.count(n.name)) return error(fmt::format("node '%{}' is defined twice", n.name));
    std::string name = n.name;
    names_[name] = graph_.add_node(std::move(n));
    return core::ok_status();
  }

  Status parse_output() {
    ALPA_RETURN_IF_ERROR(expect_word("output"));
    GraphOutput o;
    ALPA_RETURN_IF_ERROR(read_ref(o.value));
    size_t save = pos_;
    if (read_word() == "mutates") {
      o.role = OutputRole::kBufferMutation;
      ALPA_RETURN_IF_ERROR(read_string(o.target));
    } else {
      pos_ = save;
    }
    graph_.add_output(std::move(o));
    return core::ok_status();
  }

  std::string_view text_;
  size_t pos_ = 0;
  Graph graph_;
  std::map<std::string, NodeId> names_;
};

}  // namespace

std::string graph_to_text(const Graph& g) {
  std::string out = fmt::format("graph {} {{\n", quote(g.name()));
  for (const Node& n : g.nodes()) {
    out += fmt::format("  %{}: {} = ", n.name, types_text(n));
    if (n.is_placeholder()) {
      out += fmt::format("{} {}", node_kind_name(n.kind), quote(n.target));
    } else {
      std::vector<std::string> ins;
      for (ValueRef v : n.inputs) ins.push_back(ref_text(g, v));
      out += fmt::format("{}({})", n.op, fmt::join(ins, ", "));
    }
    if (!n.attrs.empty()) {
      std::vector<std::string> attrs;
      for (const auto& [k, v] : n.attrs) attrs.push_back(k + "=" + attr_to_string(v));
      out += fmt::format(" {{{}}}", fmt::join(attrs, ", "));
    }
    out += meta_text(n) + "\n";
  }
  for (const GraphOutput& o : g.outputs()) {
    out += "  output " + ref_text(g, o.value);
    if (o.role == OutputRole::kBufferMutation) out += " mutates " + quote(o.target);
    out += "\n";
  }
  out += "}\n";
  return out;
}

StatusOr<Graph> parse_graph_text(std::string_view text) {
  ALPA_ASSIGN_OR_RETURN(Graph graph, TextParser(text).parse());
  ALPA_RETURN_IF_ERROR(verify_graph(graph));
  return graph;
}

}  // namespace alpa::ir
