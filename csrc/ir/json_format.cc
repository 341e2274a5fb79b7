// This file implements Graph <-> JSON.
#include "ir/json_format.h"

#include <fmt/format.h>

#include "ir/verifier.h"

namespace alpa::ir {

using core::Json;

namespace {

Json value_to_json(ValueRef v) {
  return Json::array({v.node.value, v.index});
}

core::StatusOr<ValueRef> value_from_json(const Json& j, const std::string& where) {
  ALPA_ASSIGN_OR_RETURN(auto pair, core::json_int_list(j, where));
  if (pair.size() != 2) {
    return core::parse_error(fmt::format(
        "{}: a value reference is [node_id, output_index], got {}", where,
        core::dump_json(j)));
  }
  return ValueRef{NodeId(pair[0]), pair[1]};
}

Json meta_to_json(const TensorMeta& m) {
  return Json::object({{"shape", m.shape}, {"dtype", dtype_name(m.dtype)}});
}

core::StatusOr<TensorMeta> meta_from_json(const Json& j, const std::string& where) {
  TensorMeta m;
  ALPA_ASSIGN_OR_RETURN(const Json* shape, core::json_member(j, "shape", where));
  ALPA_ASSIGN_OR_RETURN(m.shape, core::json_int_list(*shape, where + ".shape"));
  ALPA_ASSIGN_OR_RETURN(std::string dtype, core::json_get_string(j, "dtype", where));
  auto parsed = parse_dtype(dtype);
  if (!parsed.ok()) return parsed.status().with_context(where);
  m.dtype = *parsed;
  return m;
}

Json node_to_json(const Node& n) {
  Json j = Json::object();
  j["id"] = n.id.value;
  j["name"] = n.name;
  j["kind"] = node_kind_name(n.kind);
  if (n.kind == NodeKind::kOp) {
    j["op"] = n.op;
  } else {
    j["target"] = n.target;
  }
  Json inputs = Json::array();
  for (const auto& v : n.inputs) inputs.push_back(value_to_json(v));
  j["inputs"] = std::move(inputs);
  Json attrs = Json::object();
  for (const auto& [k, v] : n.attrs) attrs[k] = attr_to_json(v);
  j["attrs"] = std::move(attrs);
  Json outputs = Json::array();
  for (const auto& m : n.outputs) outputs.push_back(meta_to_json(m));
  j["outputs"] = std::move(outputs);
  j["flops"] = n.flops;
  j["module"] = n.module;
  j["requires_grad"] = n.requires_grad;
  return j;
}

core::StatusOr<Node> node_from_json(const Json& j, size_t position) {
  std::string where = fmt::format("nodes[{}]", position);
  Node n;
  ALPA_ASSIGN_OR_RETURN(int64_t id, core::json_get_int(j, "id", where));
  if (id != static_cast<int64_t>(position)) {
    return core::parse_error(fmt::format(
        "{}: node id {} does not match its position {} (ids are positions "
        "in the node list)", where, id, position));
  }
  n.id = NodeId(id);
  ALPA_ASSIGN_OR_RETURN(n.name, core::json_get_string(j, "name", where));
  where += " ('" + n.name + "')";
  ALPA_ASSIGN_OR_RETURN(std::string kind, core::json_get_string(j, "kind", where));
  auto parsed_kind = parse_node_kind(kind);
  if (!parsed_kind.ok()) return parsed_kind.status().with_context(where);
  n.kind = *parsed_kind;
  if (n.kind == NodeKind::kOp) {
    ALPA_ASSIGN_OR_RETURN(n.op, core::json_get_string(j, "op", where));
  } else {
    ALPA_ASSIGN_OR_RETURN(n.target, core::json_get_string(j, "target", where));
  }
  ALPA_ASSIGN_OR_RETURN(const Json* inputs, core::json_get_array(j, "inputs", where));
  for (size_t i = 0; i < inputs->size(); ++i) {
    ALPA_ASSIGN_OR_RETURN(ValueRef v, value_from_json((*inputs)[i],
                                                      fmt::format("{}.inputs[{}]", where, i)));
    n.inputs.push_back(v);
  }
  ALPA_ASSIGN_OR_RETURN(const Json* attrs, core::json_member(j, "attrs", where));
  if (!attrs->is_object()) return core::parse_error(where + ": attrs must be an object");
  for (const auto& [k, v] : attrs->get_ref<const Json::object_t&>()) {
    auto a = attr_from_json(v);
    if (!a.ok()) return a.status().with_context(where + ".attrs." + k);
    n.attrs.emplace_back(k, std::move(a).value());
  }
  ALPA_ASSIGN_OR_RETURN(const Json* outputs, core::json_get_array(j, "outputs", where));
  for (size_t i = 0; i < outputs->size(); ++i) {
    ALPA_ASSIGN_OR_RETURN(TensorMeta m, meta_from_json((*outputs)[i],
                                                       fmt::format("{}.outputs[{}]", where, i)));
    n.outputs.push_back(std::move(m));
  }
  ALPA_ASSIGN_OR_RETURN(n.flops, core::json_get_double(j, "flops", where));
  n.flops += 0.0;  // -0.0 reads as 0.0: the text form has no sign for "no FLOPs"
  ALPA_ASSIGN_OR_RETURN(n.module, core::json_get_string(j, "module", where));
  ALPA_ASSIGN_OR_RETURN(n.requires_grad, core::json_get_bool(j, "requires_grad", where));
  return n;
}

}  // namespace

Json graph_to_json(const Graph& graph) {
  Json j = Json::object();
  j["format"] = kGraphFormatName;
  j["version"] = Graph::kFormatVersion;
  j["name"] = graph.name();
  Json nodes = Json::array();
  for (const Node& n : graph.nodes()) nodes.push_back(node_to_json(n));
  j["nodes"] = std::move(nodes);
  Json outputs = Json::array();
  for (const GraphOutput& o : graph.outputs()) {
    Json oj = Json::object();
    oj["value"] = value_to_json(o.value);
    oj["role"] = output_role_name(o.role);
    if (o.role == OutputRole::kBufferMutation) oj["target"] = o.target;
    outputs.push_back(std::move(oj));
  }
  j["outputs"] = std::move(outputs);
  return j;
}

core::StatusOr<Graph> graph_from_json(const Json& json) {
  const std::string where = "graph";
  ALPA_ASSIGN_OR_RETURN(std::string format, core::json_get_string(json, "format", where));
  if (format != kGraphFormatName) {
    return core::parse_error(fmt::format(
        "this JSON is a '{}', not an alpa_torch graph ('{}'); pass a file "
        "written by alpa_torch.capture(...).save()", format, kGraphFormatName));
  }
  ALPA_ASSIGN_OR_RETURN(int64_t version, core::json_get_int(json, "version", where));
  if (version != Graph::kFormatVersion) {
    return core::parse_error(fmt::format(
        "graph JSON has format version {}, but this alpa_torch reads version "
        "{}; {}", version, Graph::kFormatVersion,
        version > Graph::kFormatVersion
            ? "upgrade alpa_torch to read it"
            : "re-capture the model with this alpa_torch to rewrite it"));
  }
  Graph graph;
  ALPA_ASSIGN_OR_RETURN(std::string name, core::json_get_string(json, "name", where));
  graph.set_name(name);
  ALPA_ASSIGN_OR_RETURN(const Json* nodes, core::json_get_array(json, "nodes", where));
  for (size_t i = 0; i < nodes->size(); ++i) {
    ALPA_ASSIGN_OR_RETURN(Node n, node_from_json((*nodes)[i], i));
    graph.add_node(std::move(n));
  }
  ALPA_ASSIGN_OR_RETURN(const Json* outputs, core::json_get_array(json, "outputs", where));
  for (size_t i = 0; i < outputs->size(); ++i) {
    std::string ow = fmt::format("outputs[{}]", i);
    const Json& oj = (*outputs)[i];
    GraphOutput o;
    ALPA_ASSIGN_OR_RETURN(const Json* v, core::json_member(oj, "value", ow));
    ALPA_ASSIGN_OR_RETURN(o.value, value_from_json(*v, ow + ".value"));
    ALPA_ASSIGN_OR_RETURN(std::string role, core::json_get_string(oj, "role", ow));
    if (role == "user_output") {
      o.role = OutputRole::kUserOutput;
    } else if (role == "buffer_mutation") {
      o.role = OutputRole::kBufferMutation;
      ALPA_ASSIGN_OR_RETURN(o.target, core::json_get_string(oj, "target", ow));
    } else {
      return core::parse_error(fmt::format(
          "{}: unknown role '{}' (expected user_output or buffer_mutation)", ow, role));
    }
    graph.add_output(std::move(o));
  }
  return graph;
}

core::StatusOr<Graph> parse_graph_json(std::string_view text) {
  ALPA_ASSIGN_OR_RETURN(Json json, core::parse_json(text));
  ALPA_ASSIGN_OR_RETURN(Graph graph, graph_from_json(json));
  ALPA_RETURN_IF_ERROR(verify_graph(graph));
  return graph;
}

}  // namespace alpa::ir
