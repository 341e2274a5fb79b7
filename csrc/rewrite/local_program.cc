// This file implements LocalProgram's text form and its parser:
//
//   stage 0 mesh 1x2
//   parameter %fc1.weight "fc1.weight" f32[128,32] S0R local [64,32]
//   node %linear = aten.linear.default plain
//     in %x RR grad_reduce (0)
//     in %fc1.weight S0R
//     out f32[8,128] RS0 local [8,64]
//   node %view = aten.view.default plain
//     in %linear RS0 -> RR by all_gather@0(1->-1)
//     arg size [8,4,32]
//     out f32[8,4,32] RRR local [8,4,32]
//   send %view f32[8,4,32] RRR local [8,4,32] -> S0RR by slice@0(-1->0)
//   output 0 %sum f32[] - local []
//   bucket (0) f32 fc1.weight fc2.weight
//   buffer_view bn.running_mean S0
//
// Tokens are separated by spaces; a scalar's spec is "-".
#include "rewrite/local_program.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <charconv>
#include <sstream>

namespace alpa::rewrite {

namespace {

struct KindName {
  LocalOpKind kind;
  const char* name;
};
constexpr KindName kKindNames[] = {
    {LocalOpKind::kPlain, "plain"},
    {LocalOpKind::kPartialSum, "partial_sum"},
    {LocalOpKind::kRowSplitEmbedding, "row_split_embedding"},
    {LocalOpKind::kSyncedBatchNorm, "synced_batch_norm"},
    {LocalOpKind::kExperts, "experts"},
    {LocalOpKind::kExpertRows, "expert_rows"},
    {LocalOpKind::kWholeThenSlice, "whole_then_slice"},
};

std::string spec_text(const sharding::ShardingSpec& spec) {
  std::string s = spec.to_string();
  return s.empty() ? "-" : s;
}

std::string axes_text(const sharding::MeshAxes& axes) {
  return fmt::format("({})", fmt::join(axes, ","));
}

std::string step_text(const sharding::ReshardStep& s) {
  return fmt::format("{}@{}({}->{})", sharding::reshard_op_name(s.op), s.axis, s.from_dim, s.to_dim);
}

std::string move_text(const Move& m) {
  std::string out = spec_text(m.from);
  if (m.from == m.to && m.steps.empty()) return out;
  out += " -> " + spec_text(m.to) + " by";
  for (const auto& s : m.steps) out += " " + step_text(s);
  return out;
}

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string value_text(const LocalValue& v) {
  return fmt::format("{} {} {} local {}", v.value.to_string(), v.meta.to_string(),
                     spec_text(v.spec), ir::shape_to_string(v.local_shape));
}

// ---- parsing ------------------------------------------------------------------

class Tokens {
 public:
  Tokens(std::string_view line, int64_t number) : number_(number) {
    size_t i = 0;
    while (i < line.size()) {
      if (line[i] == ' ') {
        ++i;
        continue;
      }
      std::string tok;
      if (line[i] == '"') {
        tok += '"';
        ++i;
        while (i < line.size() && line[i] != '"') {
          if (line[i] == '\\' && i + 1 < line.size()) ++i;
          tok += line[i++];
        }
        ++i;  // closing quote
      } else {
        while (i < line.size() && line[i] != ' ') tok += line[i++];
      }
      tokens_.push_back(std::move(tok));
    }
  }
  bool done() const { return pos_ >= tokens_.size(); }
  const std::string& peek() const {
    static const std::string kEnd;
    return done() ? kEnd : tokens_[pos_];
  }
  core::StatusOr<std::string> next(const char* what) {
    if (done()) return error(fmt::format("expected {} at the end of the line", what));
    return tokens_[pos_++];
  }
  core::Status expect(const char* word) {
    if (peek() != word) return error(fmt::format("expected '{}', found '{}'", word, peek()));
    ++pos_;
    return core::ok_status();
  }
  core::Status error(const std::string& why) const {
    return core::parse_error(fmt::format("local program line {}: {}", number_, why));
  }

 private:
  std::vector<std::string> tokens_;
  size_t pos_ = 0;
  int64_t number_;
};

core::StatusOr<int64_t> parse_int(Tokens& t, const std::string& text) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) {
    return t.error(fmt::format("'{}' is not an integer", text));
  }
  return v;
}

// "[8,32]", "[]", "(0,1)", "()"
core::StatusOr<std::vector<int64_t>> parse_list(Tokens& t, const std::string& text, char open,
                                                char close) {
  if (text.size() < 2 || text.front() != open || text.back() != close) {
    return t.error(fmt::format("'{}' is not a list such as {}1,2{}", text, open, close));
  }
  std::vector<int64_t> out;
  std::string_view body(text.data() + 1, text.size() - 2);
  while (!body.empty()) {
    size_t comma = body.find(',');
    std::string item(body.substr(0, comma));
    ALPA_ASSIGN_OR_RETURN(int64_t v, parse_int(t, item));
    out.push_back(v);
    if (comma == std::string_view::npos) break;
    body.remove_prefix(comma + 1);
  }
  return out;
}

core::StatusOr<sharding::MeshAxes> parse_axes(Tokens& t) {
  ALPA_ASSIGN_OR_RETURN(std::string text, t.next("mesh axes"));
  ALPA_ASSIGN_OR_RETURN(auto list, parse_list(t, text, '(', ')'));
  return sharding::MeshAxes(list.begin(), list.end());
}

core::StatusOr<sharding::ShardingSpec> parse_spec(Tokens& t) {
  ALPA_ASSIGN_OR_RETURN(std::string text, t.next("a sharding spec"));
  auto spec = sharding::ShardingSpec::parse(text == "-" ? "" : text);
  if (!spec.ok()) return t.error(spec.status().message());
  return *spec;
}

core::StatusOr<ValueName> parse_value_name(Tokens& t) {
  ALPA_ASSIGN_OR_RETURN(std::string text, t.next("a value (%name)"));
  if (text.size() < 2 || text[0] != '%') return t.error(fmt::format("'{}' is not a value (%name)", text));
  ValueName v;
  size_t hash = text.rfind('#');
  if (hash == std::string::npos) {
    v.node = text.substr(1);
  } else {
    v.node = text.substr(1, hash - 1);
    ALPA_ASSIGN_OR_RETURN(v.index, parse_int(t, text.substr(hash + 1)));
  }
  return v;
}

core::StatusOr<sharding::ReshardStep> parse_step(Tokens& t, const std::string& text) {
  // op@axis(from->to)
  size_t at = text.find('@'), open = text.find('('), arrow = text.find("->"), close = text.find(')');
  if (at == std::string::npos || open == std::string::npos || arrow == std::string::npos ||
      close != text.size() - 1 || !(at < open && open < arrow && arrow < close)) {
    return t.error(fmt::format("'{}' is not a resharding step such as slice@0(-1->0)", text));
  }
  sharding::ReshardStep s;
  std::string op = text.substr(0, at);
  bool known = false;
  for (auto k : {sharding::ReshardOp::kAllReduce, sharding::ReshardOp::kReduceScatter,
                 sharding::ReshardOp::kSlice, sharding::ReshardOp::kAllToAll,
                 sharding::ReshardOp::kAllGather}) {
    if (op == sharding::reshard_op_name(k)) {
      s.op = k;
      known = true;
    }
  }
  if (!known) return t.error(fmt::format("unknown resharding step '{}'", op));
  ALPA_ASSIGN_OR_RETURN(int64_t axis, parse_int(t, text.substr(at + 1, open - at - 1)));
  s.axis = static_cast<int>(axis);
  ALPA_ASSIGN_OR_RETURN(s.from_dim, parse_int(t, text.substr(open + 1, arrow - open - 1)));
  ALPA_ASSIGN_OR_RETURN(s.to_dim, parse_int(t, text.substr(arrow + 2, close - arrow - 2)));
  return s;
}

// -> SPEC by STEP...; steps run until a word that is not a step.
core::Status parse_target(Tokens& t, Move& m) {
  ALPA_RETURN_IF_ERROR(t.expect("->"));
  ALPA_ASSIGN_OR_RETURN(m.to, parse_spec(t));
  ALPA_RETURN_IF_ERROR(t.expect("by"));
  while (!t.done() && t.peek().find('@') != std::string::npos) {
    ALPA_ASSIGN_OR_RETURN(std::string text, t.next("a step"));
    ALPA_ASSIGN_OR_RETURN(auto step, parse_step(t, text));
    m.steps.push_back(step);
  }
  return core::ok_status();
}

// SPEC [-> SPEC by STEP...]
core::StatusOr<Move> parse_move(Tokens& t) {
  Move m;
  ALPA_ASSIGN_OR_RETURN(m.from, parse_spec(t));
  m.to = m.from;
  if (t.peek() != "->") return m;
  ALPA_RETURN_IF_ERROR(parse_target(t, m));
  return m;
}

// META SPEC local SHAPE, e.g. "f32[8,32] RS0 local [8,16]".
core::Status parse_layout(Tokens& t, LocalValue& v) {
  ALPA_ASSIGN_OR_RETURN(std::string meta, t.next("a tensor type such as f32[8,32]"));
  auto parsed = ir::TensorMeta::parse(meta);
  if (!parsed.ok()) return t.error(parsed.status().message());
  v.meta = *parsed;
  ALPA_ASSIGN_OR_RETURN(v.spec, parse_spec(t));
  ALPA_RETURN_IF_ERROR(t.expect("local"));
  ALPA_ASSIGN_OR_RETURN(std::string shape, t.next("a local shape"));
  ALPA_ASSIGN_OR_RETURN(v.local_shape, parse_list(t, shape, '[', ']'));
  return core::ok_status();
}

core::StatusOr<LocalValue> parse_value(Tokens& t) {
  LocalValue v;
  ALPA_ASSIGN_OR_RETURN(v.value, parse_value_name(t));
  ALPA_RETURN_IF_ERROR(parse_layout(t, v));
  return v;
}

core::Status finished(const Tokens& t) {
  if (!t.done()) return t.error(fmt::format("unexpected '{}'", t.peek()));
  return core::ok_status();
}

}  // namespace

std::string ValueName::to_string() const {
  return index == 0 ? "%" + node : fmt::format("%{}#{}", node, index);
}

bool operator==(const Move& a, const Move& b) {
  if (!(a.from == b.from && a.to == b.to && a.steps.size() == b.steps.size())) return false;
  for (size_t i = 0; i < a.steps.size(); ++i) {
    const auto &x = a.steps[i], &y = b.steps[i];
    if (x.op != y.op || x.axis != y.axis || x.from_dim != y.from_dim || x.to_dim != y.to_dim) return false;
  }
  return true;
}

bool operator==(const LocalNode& a, const LocalNode& b) {
  return a.name == b.name && a.op == b.op && a.kind == b.kind && a.inputs == b.inputs &&
         a.outputs == b.outputs && a.args == b.args && a.reduce_axes == b.reduce_axes &&
         a.local_op == b.local_op && a.addend == b.addend &&
         a.addend_broadcast == b.addend_broadcast && a.mean_divisor == b.mean_divisor &&
         a.rows_per_piece == b.rows_per_piece && a.statistics_count == b.statistics_count &&
         a.exchange_axes == b.exchange_axes;
}

bool operator==(const LocalProgram& a, const LocalProgram& b) {
  return a.stage == b.stage && a.mesh_shape == b.mesh_shape && a.received == b.received &&
         a.placeholders == b.placeholders && a.nodes == b.nodes && a.sends == b.sends &&
         a.graph_outputs == b.graph_outputs && a.graph_output_indices == b.graph_output_indices &&
         a.buckets == b.buckets && a.buffer_views == b.buffer_views;
}

const char* local_op_kind_name(LocalOpKind kind) {
  for (const auto& k : kKindNames) {
    if (k.kind == kind) return k.name;
  }
  return "?";
}

core::StatusOr<LocalOpKind> parse_local_op_kind(std::string_view name) {
  for (const auto& k : kKindNames) {
    if (name == k.name) return k.kind;
  }
  return core::parse_error(fmt::format("unknown local op kind '{}'", name));
}

std::string LocalProgram::to_string() const {
  std::ostringstream out;
  out << fmt::format("stage {} mesh {}x{}\n", stage, mesh_shape[0], mesh_shape[1]);
  for (const LocalValue& v : received) out << "receive " << value_text(v) << "\n";
  for (const LocalPlaceholder& p : placeholders) {
    out << fmt::format("{} {} {} {} {} local {}\n", ir::node_kind_name(p.kind), p.value.value.to_string(),
                       quoted(p.target), p.value.meta.to_string(), spec_text(p.value.spec),
                       ir::shape_to_string(p.value.local_shape));
  }
  for (const LocalNode& n : nodes) {
    out << fmt::format("node %{} = {} {}", n.name, n.op, local_op_kind_name(n.kind));
    if (!n.reduce_axes.empty()) out << " reduce " << axes_text(n.reduce_axes);
    if (!n.exchange_axes.empty()) out << " exchange " << axes_text(n.exchange_axes);
    if (!n.local_op.empty()) out << " local_op " << n.local_op;
    if (!n.addend.empty()) out << " addend " << n.addend << (n.addend_broadcast ? " broadcast" : "");
    if (n.mean_divisor != 1) out << " mean_divisor " << n.mean_divisor;
    if (n.rows_per_piece != 0) out << " rows_per_piece " << n.rows_per_piece;
    if (n.statistics_count != 0) out << " statistics_count " << n.statistics_count;
    out << "\n";
    for (const LocalInput& in : n.inputs) {
      out << "  in " << in.value.to_string() << " " << move_text(in.move);
      if (in.buffer_view) out << " view";
      if (!in.grad_reduce.empty()) out << " grad_reduce " << axes_text(in.grad_reduce);
      if (in.bucketed) out << " bucketed";
      out << "\n";
    }
    for (const LocalArg& a : n.args) out << fmt::format("  arg {} {}\n", a.name, ir::shape_to_string(a.value));
    for (const LocalValue& o : n.outputs) {
      out << fmt::format("  out {} {} local {}\n", o.meta.to_string(), spec_text(o.spec),
                         ir::shape_to_string(o.local_shape));
    }
  }
  for (const LocalOutput& s : sends) {
    out << "send " << value_text(s.value);
    if (!(s.move.from == s.move.to && s.move.steps.empty())) {
      std::string m = move_text(s.move);
      out << m.substr(m.find(" -> "));
    }
    out << "\n";
  }
  for (size_t i = 0; i < graph_outputs.size(); ++i) {
    out << fmt::format("output {} {}\n", graph_output_indices.at(i), value_text(graph_outputs[i].value));
  }
  for (const GradBucket& b : buckets) {
    out << fmt::format("bucket {} {} {}\n", axes_text(b.axes), ir::dtype_short_name(b.dtype),
                       fmt::join(b.parameters, " "));
  }
  for (const BufferView& v : buffer_views) {
    out << fmt::format("buffer_view {} {}\n", v.buffer, spec_text(v.spec));
  }
  return out.str();
}

core::StatusOr<LocalProgram> parse_local_program(std::string_view text) {
  LocalProgram p;
  LocalNode* node = nullptr;
  int64_t number = 0;
  bool header = false;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    ++number;
    if (line.find_first_not_of(' ') == std::string_view::npos) continue;
    const bool indented = line[0] == ' ';
    Tokens t(line, number);
    ALPA_ASSIGN_OR_RETURN(std::string word, t.next("a keyword"));
    if (!header) {
      if (word != "stage") return t.error("a local program starts with 'stage N mesh AxB'");
      ALPA_ASSIGN_OR_RETURN(std::string index, t.next("the stage index"));
      ALPA_ASSIGN_OR_RETURN(p.stage, parse_int(t, index));
      ALPA_RETURN_IF_ERROR(t.expect("mesh"));
      ALPA_ASSIGN_OR_RETURN(std::string mesh, t.next("the mesh shape AxB"));
      size_t x = mesh.find('x');
      if (x == std::string::npos) return t.error(fmt::format("'{}' is not a mesh shape such as 2x2", mesh));
      ALPA_ASSIGN_OR_RETURN(p.mesh_shape[0], parse_int(t, mesh.substr(0, x)));
      ALPA_ASSIGN_OR_RETURN(p.mesh_shape[1], parse_int(t, mesh.substr(x + 1)));
      ALPA_RETURN_IF_ERROR(finished(t));
      header = true;
      continue;
    }
    if (indented) {
      if (node == nullptr) return t.error(fmt::format("'{}' outside a node", word));
      if (word == "in") {
        LocalInput in;
        ALPA_ASSIGN_OR_RETURN(in.value, parse_value_name(t));
        ALPA_ASSIGN_OR_RETURN(in.move, parse_move(t));
        while (!t.done()) {
          ALPA_ASSIGN_OR_RETURN(std::string flag, t.next("a flag"));
          if (flag == "view") {
            in.buffer_view = true;
          } else if (flag == "grad_reduce") {
            ALPA_ASSIGN_OR_RETURN(in.grad_reduce, parse_axes(t));
          } else if (flag == "bucketed") {
            in.bucketed = true;
          } else {
            return t.error(fmt::format("unknown input flag '{}' (view, grad_reduce, bucketed)", flag));
          }
        }
        node->inputs.push_back(std::move(in));
      } else if (word == "arg") {
        LocalArg a;
        ALPA_ASSIGN_OR_RETURN(a.name, t.next("an argument name"));
        ALPA_ASSIGN_OR_RETURN(std::string list, t.next("an integer list"));
        ALPA_ASSIGN_OR_RETURN(a.value, parse_list(t, list, '[', ']'));
        ALPA_RETURN_IF_ERROR(finished(t));
        node->args.push_back(std::move(a));
      } else if (word == "out") {
        LocalValue o;
        o.value = ValueName{node->name, static_cast<int64_t>(node->outputs.size())};
        ALPA_RETURN_IF_ERROR(parse_layout(t, o));
        ALPA_RETURN_IF_ERROR(finished(t));
        node->outputs.push_back(std::move(o));
      } else {
        return t.error(fmt::format("unknown node line '{}' (in, arg, out)", word));
      }
      continue;
    }
    node = nullptr;
    if (word == "receive") {
      ALPA_ASSIGN_OR_RETURN(LocalValue v, parse_value(t));
      ALPA_RETURN_IF_ERROR(finished(t));
      p.received.push_back(std::move(v));
    } else if (word == "node") {
      LocalNode n;
      ALPA_ASSIGN_OR_RETURN(ValueName name, parse_value_name(t));
      n.name = name.node;
      ALPA_RETURN_IF_ERROR(t.expect("="));
      ALPA_ASSIGN_OR_RETURN(n.op, t.next("an op name"));
      ALPA_ASSIGN_OR_RETURN(std::string kind, t.next("a local op kind"));
      auto k = parse_local_op_kind(kind);
      if (!k.ok()) return t.error(k.status().message());
      n.kind = *k;
      while (!t.done()) {
        ALPA_ASSIGN_OR_RETURN(std::string key, t.next("a node option"));
        if (key == "reduce") {
          ALPA_ASSIGN_OR_RETURN(n.reduce_axes, parse_axes(t));
        } else if (key == "exchange") {
          ALPA_ASSIGN_OR_RETURN(n.exchange_axes, parse_axes(t));
        } else if (key == "local_op") {
          ALPA_ASSIGN_OR_RETURN(n.local_op, t.next("an op name"));
        } else if (key == "addend") {
          ALPA_ASSIGN_OR_RETURN(n.addend, t.next("an argument name"));
          if (t.peek() == "broadcast") {
            ALPA_RETURN_IF_ERROR(t.expect("broadcast"));
            n.addend_broadcast = true;
          }
        } else if (key == "mean_divisor" || key == "rows_per_piece" || key == "statistics_count") {
          ALPA_ASSIGN_OR_RETURN(std::string v, t.next("an integer"));
          ALPA_ASSIGN_OR_RETURN(int64_t value, parse_int(t, v));
          (key == "mean_divisor" ? n.mean_divisor
                                 : key == "rows_per_piece" ? n.rows_per_piece : n.statistics_count) = value;
        } else {
          return t.error(fmt::format("unknown node option '{}'", key));
        }
      }
      p.nodes.push_back(std::move(n));
      node = &p.nodes.back();
    } else if (word == "send") {
      LocalOutput s;
      ALPA_ASSIGN_OR_RETURN(s.value, parse_value(t));
      s.move.from = s.move.to = s.value.spec;
      if (t.peek() == "->") ALPA_RETURN_IF_ERROR(parse_target(t, s.move));
      ALPA_RETURN_IF_ERROR(finished(t));
      p.sends.push_back(std::move(s));
    } else if (word == "output") {
      ALPA_ASSIGN_OR_RETURN(std::string index, t.next("the graph output index"));
      ALPA_ASSIGN_OR_RETURN(int64_t i, parse_int(t, index));
      LocalOutput o;
      ALPA_ASSIGN_OR_RETURN(o.value, parse_value(t));
      ALPA_RETURN_IF_ERROR(finished(t));
      o.move.from = o.move.to = o.value.spec;
      p.graph_outputs.push_back(std::move(o));
      p.graph_output_indices.push_back(i);
    } else if (word == "bucket") {
      GradBucket b;
      ALPA_ASSIGN_OR_RETURN(b.axes, parse_axes(t));
      ALPA_ASSIGN_OR_RETURN(std::string dtype, t.next("a dtype"));
      auto d = ir::parse_dtype(dtype);
      if (!d.ok()) return t.error(d.status().message());
      b.dtype = *d;
      while (!t.done()) {
        ALPA_ASSIGN_OR_RETURN(std::string name, t.next("a parameter"));
        b.parameters.push_back(std::move(name));
      }
      p.buckets.push_back(std::move(b));
    } else if (word == "buffer_view") {
      BufferView v;
      ALPA_ASSIGN_OR_RETURN(v.buffer, t.next("a buffer"));
      ALPA_ASSIGN_OR_RETURN(v.spec, parse_spec(t));
      ALPA_RETURN_IF_ERROR(finished(t));
      p.buffer_views.push_back(std::move(v));
    } else {
      auto kind = ir::parse_node_kind(word);
      if (!kind.ok() || *kind == ir::NodeKind::kOp) {
        return t.error(fmt::format(
            "unknown line '{}' (receive, input, parameter, buffer, constant, node, send, output, "
            "bucket, buffer_view)", word));
      }
      LocalPlaceholder ph;
      ph.kind = *kind;
      ALPA_ASSIGN_OR_RETURN(ph.value.value, parse_value_name(t));
      ALPA_ASSIGN_OR_RETURN(ph.target, t.next("the placeholder's target"));
      if (ph.target.empty() || ph.target[0] != '"') return t.error("the target is a quoted name");
      ph.target.erase(0, 1);
      ALPA_RETURN_IF_ERROR(parse_layout(t, ph.value));
      ALPA_RETURN_IF_ERROR(finished(t));
      p.placeholders.push_back(std::move(ph));
    }
  }
  if (!header) return core::parse_error("local program: empty text (expected 'stage N mesh AxB')");
  return p;
}

}  // namespace alpa::rewrite
