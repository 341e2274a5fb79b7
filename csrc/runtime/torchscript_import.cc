// This file implements the TorchScript importer (see torchscript_import.h):
// an interpreter over TorchScript graphs that executes every node on meta
// tensors (shapes and dtypes, no data) and writes the tensor ops it meets
// into an ir::Graph.
//
// Values are tracked two ways: `Frame::env` maps each TorchScript Value to
// the IValue it holds, and `refs_` maps each live tensor (by TensorImpl) to
// the ir value that produced it. Keying tensors by identity follows them
// through lists and tuples and gives in-place ops their meaning: after
// `aten::relu_(%x)` the tensor of %x maps to the relu node, so later reads
// of %x see the new value. Every tensor is kept alive until the import ends,
// so an address is never reused for another tensor.
//
// Shapes only: the example inputs and the module's tensors enter as meta
// tensors; Device arguments become meta, so a factory op (torch.zeros(n, n))
// allocates nothing whatever sizes it gets; a small CPU constant (a literal,
// a traced size from NumToTensor) stays on the CPU, readable as a number,
// until an op mixes it with meta tensors and it gets its one meta copy.
#include "runtime/torchscript_import.h"

#include <ATen/core/function_schema.h>
#include <ATen/core/stack.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/ir/ir.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/import.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>
#include <unordered_map>

#include "ir/dtype.h"
#include "ir/flops.h"
#include "ir/op_name.h"
#include "ir/verifier.h"
#include "runtime/pickle_framing.h"
#include "runtime/torchscript_import_support.h"

namespace alpa::runtime {
namespace {

using c10::IValue;
using torch::jit::Block;
using torch::jit::Node;
using torch::jit::Value;
using namespace ts_support;  // NOLINT: the importer's helpers

/// One method activation: the values of its graph and its module's FQN.
struct Frame {
  std::unordered_map<const Value*, IValue> env;
  std::string module;
};

class Importer {
 public:
  explicit Importer(const TorchScriptImportOptions& options) : options_(options) {}

  core::StatusOr<ir::Graph> run(const torch::jit::Module& module,
                                const std::vector<IValue>& example_inputs);

 private:
  core::StatusOr<std::vector<IValue>> call_graph(torch::jit::Graph& graph,
                                                 std::vector<IValue> inputs,
                                                 const std::string& module);
  core::Status run_block(const Block* block, Frame& f);
  core::Status run_node(const Node* node, Frame& f);
  core::Status run_get_attr(const Node* node, Frame& f);
  core::Status run_call(const Node* node, Frame& f);
  core::Status run_if(const Node* node, Frame& f);
  core::Status run_loop(const Node* node, Frame& f);
  core::Status run_op(const Node* node, Frame& f);
  /// Building and taking apart lists, tuples and dicts; nullopt for other nodes.
  core::StatusOr<std::optional<std::vector<IValue>>> run_container(const Node* node,
                                                                   std::vector<IValue>& in,
                                                                   const Frame& f);
  /// Containers, casts, exceptions: nullopt when `node` is a plain operator.
  core::StatusOr<std::optional<std::vector<IValue>>> run_structural(const Node* node,
                                                                    std::vector<IValue>& in,
                                                                    const Frame& f);
  core::Status record(const Node* node, const c10::FunctionSchema& schema,
                      const std::string& base, const std::vector<IValue>& inputs,
                      const std::vector<IValue>& outputs, const Frame& f);
  core::StatusOr<std::vector<IValue>> inputs_of(const Node* node, const Frame& f) const;
  core::StatusOr<ir::Attr> attr_of(const IValue& value, const c10::TypePtr& type,
                                   ir::Node& node);
  core::StatusOr<IValue> attribute_tensor(const c10::ivalue::Object& owner,
                                          const std::string& name, const std::string& fqn,
                                          const at::Tensor& value);
  core::StatusOr<ir::ValueRef> ref_of(const at::Tensor& t);
  /// Device arguments to meta, and every tensor argument to meta once one is.
  void move_to_meta(const c10::FunctionSchema& schema, const Node* node,
                    std::vector<IValue>& inputs);
  /// `value` with its tensors (also in a list) on the meta device; a tensor
  /// gets one meta copy, so in-place ops on it are seen by later reads.
  IValue on_meta(const IValue& value);
  /// Whether `value` is (or lists) a tensor computed from the graph's values.
  bool reads_graph_value(const IValue& value) const;
  core::StatusOr<ir::ValueRef> add_proto(ir::Node node, const at::Tensor& value);
  core::StatusOr<ir::Graph> finish(const std::string& name, const IValue& result);

  const TorchScriptImportOptions& options_;
  /// Nodes in creation order; ValueRef::node indexes this list until finish().
  std::vector<ir::Node> protos_;
  std::unordered_map<const c10::TensorImpl*, ir::ValueRef> refs_;
  std::vector<at::Tensor> keep_alive_;
  /// Module tensors by their TensorImpl: our copy and its placeholder node.
  std::unordered_map<const c10::TensorImpl*, std::pair<at::Tensor, int64_t>> attributes_;
  std::unordered_map<const c10::ivalue::Object*, std::string> paths_;
  /// Meta copies of CPU constants, by the constant's TensorImpl.
  std::unordered_map<const c10::TensorImpl*, at::Tensor> meta_copies_;
  int depth_ = 0;
  /// Work and memory bounds of one import (a hostile or huge program ends
  /// in an error, not a hang or an exhausted machine).
  int64_t nodes_run_ = 0;
  int64_t real_bytes_left_ = kRealBytesPerImport;
};

core::StatusOr<ir::Graph> Importer::run(const torch::jit::Module& module,
                                        const std::vector<IValue>& example_inputs) {
  std::optional<torch::jit::Method> method = module.find_method(options_.method);
  if (!method) {
    std::string names;
    for (const auto& m : module.get_methods()) names += (names.empty() ? "" : ", ") + m.name();
    return core::invalid_argument("the TorchScript module has no method '" + options_.method +
                                  "'; its methods: " + names);
  }
  std::shared_ptr<torch::jit::Graph> graph = method->graph();
  const size_t num_args = graph->inputs().size() - 1;  // input 0 is self
  if (example_inputs.size() != num_args) {
    return core::invalid_argument(
        "the module's " + options_.method + "() takes " + std::to_string(num_args) +
        " inputs but " + std::to_string(example_inputs.size()) + " example inputs were given");
  }
  if (!options_.input_names.empty() && options_.input_names.size() != num_args) {
    return core::invalid_argument("input_names has " + std::to_string(options_.input_names.size()) +
                                  " names for " + std::to_string(num_args) + " inputs");
  }
  paths_[module._ivalue().get()] = "";
  std::vector<IValue> inputs{IValue(module._ivalue())};
  for (size_t i = 0; i < num_args; ++i) {
    if (!example_inputs[i].isTensor()) {
      inputs.push_back(example_inputs[i]);  // specialized into the graph
      continue;
    }
    if (!example_inputs[i].toTensor().defined()) {
      return core::invalid_argument("example input " + std::to_string(i) +
                                    " is an undefined tensor");
    }
    const at::Tensor copy = meta_like(example_inputs[i].toTensor());
    ir::Node n;
    n.kind = ir::NodeKind::kInput;
    n.target = options_.input_names.empty() ? graph->inputs()[i + 1]->debugNameBase()
                                            : options_.input_names[i];
    ALPA_RETURN_IF_ERROR(add_proto(std::move(n), copy).status());
    inputs.push_back(copy);
  }
  std::vector<IValue> results;
  {
    c10::NoGradGuard no_grad;
    ALPA_ASSIGN_OR_RETURN(results, call_graph(*graph, std::move(inputs), ""));
  }
  std::string name = options_.graph_name;
  if (name.empty()) name = module.type()->name() ? module.type()->name()->name() : "module";
  return finish(name, results.size() == 1 ? results[0]
                                           : IValue(c10::ivalue::Tuple::create(results)));
}

core::StatusOr<std::vector<IValue>> Importer::call_graph(torch::jit::Graph& graph,
                                                         std::vector<IValue> inputs,
                                                         const std::string& module) {
  if (++depth_ > 256) return core::invalid_argument("TorchScript calls nest deeper than 256");
  Frame frame;
  frame.module = module;
  TORCH_INTERNAL_ASSERT(graph.inputs().size() == inputs.size(), "call arity");
  for (size_t i = 0; i < inputs.size(); ++i) frame.env[graph.inputs()[i]] = std::move(inputs[i]);
  ALPA_RETURN_IF_ERROR(run_block(graph.block(), frame));
  std::vector<IValue> outputs;
  for (const Value* v : graph.outputs()) outputs.push_back(frame.env.at(v));
  --depth_;
  return outputs;
}

core::Status Importer::run_block(const Block* block, Frame& f) {
  for (const Node* node : block->nodes()) ALPA_RETURN_IF_ERROR(run_node(node, f));
  return core::ok_status();
}

core::Status Importer::run_node(const Node* node, Frame& f) {
  if (++nodes_run_ > kMaxNodesRun) {
    return core::invalid_argument(
        "the TorchScript program ran more than " + std::to_string(kMaxNodesRun) +
        " nodes on the example inputs (the importer unrolls loops; a loop over a large size?) " +
        where(node, f.module));
  }
  const c10::Symbol kind = node->kind();
  if (kind == c10::prim::Constant) {
    // Function constants (callees of prim::CallFunction) have no IValue.
    f.env[node->output()] = torch::jit::toIValue(node->output()).value_or(IValue());
    return core::ok_status();
  }
  if (kind == c10::prim::GetAttr) return run_get_attr(node, f);
  if (kind == c10::prim::CallMethod || kind == c10::prim::CallFunction) return run_call(node, f);
  if (kind == c10::prim::If) return run_if(node, f);
  if (kind == c10::prim::Loop) return run_loop(node, f);
  if (kind.is_prim() || kind == c10::aten::format || kind == c10::aten::warn) {
    // The interpreter executes these itself; they have no operator to call.
    ALPA_ASSIGN_OR_RETURN(std::vector<IValue> in, inputs_of(node, f));
    ALPA_ASSIGN_OR_RETURN(std::optional<std::vector<IValue>> out, run_structural(node, in, f));
    if (out) {
      for (size_t i = 0; i < out->size(); ++i) f.env[node->outputs()[i]] = std::move((*out)[i]);
      return core::ok_status();
    }
  }
  return run_op(node, f);
}

core::StatusOr<std::optional<std::vector<IValue>>> Importer::run_container(
    const Node* node, std::vector<IValue>& in, const Frame& f) {
  using Out = std::optional<std::vector<IValue>>;
  const c10::Symbol kind = node->kind();
  if (kind == c10::prim::ListConstruct) {
    const auto& type = node->output()->type()->expectRef<c10::ListType>();
    c10::impl::GenericList list(type.getElementType());
    for (IValue& v : in) list.push_back(std::move(v));
    return Out(std::vector<IValue>{IValue(std::move(list))});
  }
  if (kind == c10::prim::TupleConstruct) {
    return Out(std::vector<IValue>{IValue(c10::ivalue::Tuple::create(std::move(in)))});
  }
  if (kind == c10::prim::DictConstruct) {
    const auto& type = node->output()->type()->expectRef<c10::DictType>();
    c10::impl::GenericDict dict(type.getKeyType(), type.getValueType());
    for (size_t i = 0; i + 1 < in.size(); i += 2) dict.insert_or_assign(in[i], in[i + 1]);
    return Out(std::vector<IValue>{IValue(std::move(dict))});
  }
  if (kind == c10::prim::ListUnpack || kind == c10::prim::TupleUnpack) {
    std::vector<IValue> items;
    if (in.at(0).isTuple()) {
      for (const IValue& v : in[0].toTupleRef().elements()) items.push_back(v);
    } else {
      for (const IValue& v : in.at(0).toListRef()) items.push_back(v);
    }
    if (items.size() != node->outputs().size()) {
      return core::invalid_argument("unpacking " + std::to_string(items.size()) + " values into " +
                                    std::to_string(node->outputs().size()) + " " +
                                    where(node, f.module));
    }
    return Out(std::move(items));
  }
  if (kind == c10::prim::TupleIndex) {
    const auto& items = in.at(0).toTupleRef().elements();
    int64_t i = in.at(1).toInt();
    if (i < 0) i += static_cast<int64_t>(items.size());
    return Out(std::vector<IValue>{items.at(static_cast<size_t>(i))});
  }
  return Out();
}

core::StatusOr<std::optional<std::vector<IValue>>> Importer::run_structural(
    const Node* node, std::vector<IValue>& in, const Frame& f) {
  using Out = std::optional<std::vector<IValue>>;
  ALPA_ASSIGN_OR_RETURN(Out containers, run_container(node, in, f));
  if (containers) return containers;
  const c10::Symbol kind = node->kind();
  if (kind == c10::prim::unchecked_cast) return Out(std::vector<IValue>{in.at(0)});
  if (kind == c10::prim::Uninitialized) return Out(std::vector<IValue>{IValue()});
  if (kind == c10::prim::isinstance) {
    bool match = false;
    for (const c10::TypePtr& t : node->tys(c10::attr::types)) {
      match |= in.at(0).type()->isSubtypeOf(*t);
    }
    return Out(std::vector<IValue>{IValue(match)});
  }
  if (kind == c10::aten::format) return Out(std::vector<IValue>{in.at(0)});  // messages only
  if (kind == c10::aten::warn) return Out(std::vector<IValue>{});
  if (kind == c10::prim::RaiseException) {
    return core::invalid_argument("the module raised an exception " + where(node, f.module) +
                                  " on the example inputs: " +
                                  (in.empty() || !in[0].isString() ? "" : in[0].toStringRef()));
  }
  if (kind == c10::prim::SetAttr) {
    return core::not_implemented("the module sets attribute '" + node->s(c10::attr::name) +
                                 "' in its forward " + where(node, f.module) +
                                 "; the importer does not change the module");
  }
  return Out();  // an operator with a schema (prim::NumToTensor, prim::device, ...)
}

core::StatusOr<std::vector<IValue>> Importer::inputs_of(const Node* node, const Frame& f) const {
  std::vector<IValue> out;
  for (const Value* v : node->inputs()) {
    auto it = f.env.find(v);
    if (it == f.env.end()) {
      return core::internal_error("TorchScript value %" + v->debugName() + " read by " +
                                  node->kind().toQualString() + " has no value");
    }
    out.push_back(it->second);
  }
  return out;
}

core::Status Importer::run_get_attr(const Node* node, Frame& f) {
  const IValue& owner = f.env.at(node->input());
  if (!owner.isObject()) {
    return core::not_implemented("prim::GetAttr on a " + owner.tagKind() + " " +
                                 where(node, f.module));
  }
  const auto& object = owner.toObjectRef();
  const std::string& name = node->s(c10::attr::name);
  const auto parent = paths_.find(&object);
  const std::string fqn = join_path(parent == paths_.end() ? "" : parent->second, name);
  IValue value = object.getAttr(name);
  if (value.isObject()) {
    paths_.emplace(&value.toObjectRef(), fqn);  // the first path to a shared module wins
  } else if (value.isTensor()) {
    ALPA_ASSIGN_OR_RETURN(value, attribute_tensor(object, name, fqn, value.toTensor()));
  }
  f.env[node->output()] = std::move(value);
  return core::ok_status();
}

core::StatusOr<IValue> Importer::attribute_tensor(const c10::ivalue::Object& owner,
                                                  const std::string& name,
                                                  const std::string& fqn,
                                                  const at::Tensor& value) {
  auto known = attributes_.find(value.unsafeGetTensorImpl());
  if (known != attributes_.end()) {
    ir::Node& n = protos_[static_cast<size_t>(known->second.second)];
    if (n.target != fqn && n.kind == ir::NodeKind::kParameter) {  // a tied parameter
      const ir::Attr* aliases = n.attr("aliases");
      std::string list = aliases ? std::get<std::string>(*aliases) : "";
      if (("," + list + ",").find("," + fqn + ",") == std::string::npos) {
        list += (list.empty() ? "" : ",") + fqn;
        n.attrs.erase(std::remove_if(n.attrs.begin(), n.attrs.end(),
                                     [](const auto& a) { return a.first == "aliases"; }),
                      n.attrs.end());
        n.attrs.emplace_back("aliases", list);
      }
    }
    return IValue(known->second.first);
  }
  const auto& type = owner.type();
  const std::optional<size_t> slot = type->findAttributeSlot(name);
  ir::Node n;
  n.kind = ir::NodeKind::kConstant;
  if (slot && type->is_module() && type->is_parameter(*slot)) {
    n.kind = ir::NodeKind::kParameter;
    n.requires_grad = value.requires_grad();
  } else if (slot && type->is_module() && type->is_buffer(*slot)) {
    n.kind = ir::NodeKind::kBuffer;
  }
  n.target = fqn;
  at::Tensor copy = meta_like(value);  // in-place ops must not touch the module
  ALPA_ASSIGN_OR_RETURN(const ir::ValueRef ref, add_proto(std::move(n), copy));
  attributes_[value.unsafeGetTensorImpl()] = {copy, ref.node.value};
  keep_alive_.push_back(value);
  return IValue(copy);
}

core::Status Importer::run_call(const Node* node, Frame& f) {
  ALPA_ASSIGN_OR_RETURN(std::vector<IValue> inputs, inputs_of(node, f));
  torch::jit::Function* fn = nullptr;
  std::string module = f.module;
  if (node->kind() == c10::prim::CallMethod) {
    const auto& self = inputs.at(0).toObjectRef();
    fn = &self.type()->getMethod(node->s(c10::attr::name));
    auto path = paths_.find(&self);
    if (path != paths_.end()) module = path->second;
  } else {
    fn = node->input(0)->type()->expectRef<c10::FunctionType>().function();
    inputs.erase(inputs.begin());
  }
  ALPA_ASSIGN_OR_RETURN(std::vector<IValue> outputs,
                        call_graph(*torch::jit::toGraphFunction(*fn).graph(), std::move(inputs),
                                   module));
  for (size_t i = 0; i < outputs.size(); ++i) f.env[node->outputs()[i]] = std::move(outputs[i]);
  return core::ok_status();
}

core::Status Importer::run_if(const Node* node, Frame& f) {
  const Block* block = node->blocks()[f.env.at(node->input(0)).toBool() ? 0 : 1];
  ALPA_RETURN_IF_ERROR(run_block(block, f));
  for (size_t i = 0; i < node->outputs().size(); ++i) {
    f.env[node->outputs()[i]] = f.env.at(block->outputs()[i]);
  }
  return core::ok_status();
}

core::Status Importer::run_loop(const Node* node, Frame& f) {
  // prim::Loop(max_trip_count, condition, carried...): the body's inputs are
  // (iteration, carried...), its outputs (condition, carried...).
  ALPA_ASSIGN_OR_RETURN(std::vector<IValue> in, inputs_of(node, f));
  const int64_t trips = in[0].toInt();
  bool condition = in[1].toBool();
  std::vector<IValue> carried(in.begin() + 2, in.end());
  const Block* body = node->blocks()[0];
  constexpr int64_t kMaxIterations = 1000000;
  for (int64_t i = 0; i < trips && condition; ++i) {
    if (i == kMaxIterations) {
      return core::invalid_argument("a TorchScript loop " + where(node, f.module) +
                                    " ran more than 1e6 iterations on the example inputs");
    }
    f.env[body->inputs()[0]] = i;
    for (size_t j = 0; j < carried.size(); ++j) f.env[body->inputs()[j + 1]] = carried[j];
    ALPA_RETURN_IF_ERROR(run_block(body, f));
    condition = f.env.at(body->outputs()[0]).toBool();
    for (size_t j = 0; j < carried.size(); ++j) carried[j] = f.env.at(body->outputs()[j + 1]);
  }
  for (size_t j = 0; j < carried.size(); ++j) f.env[node->outputs()[j]] = carried[j];
  return core::ok_status();
}

bool Importer::reads_graph_value(const IValue& value) const {
  if (value.isTensor()) return refs_.count(value.toTensor().unsafeGetTensorImpl()) > 0;
  if (!value.isList()) return false;
  for (const IValue& v : value.toListRef()) {
    if (v.isTensor() && refs_.count(v.toTensor().unsafeGetTensorImpl()) > 0) return true;
  }
  return false;
}

core::Status Importer::run_op(const Node* node, Frame& f) {
  ALPA_ASSIGN_OR_RETURN(std::vector<IValue> inputs, inputs_of(node, f));
  const c10::FunctionSchema* schema = node->maybeSchema();
  const std::string qualified = node->kind().toQualString();
  const std::string base = functional_name(node->kind().toUnqualString());
  // An op that reads no value of the graph (only constants and tensors made
  // from shapes, as traced modules do with NumToTensor) is folded: run, not
  // recorded; a tensor it makes becomes a constant where an op reads it.
  bool tensor_op = false;
  if (!node->kind().is_prim() && schema != nullptr) {
    const auto& args = schema->arguments();
    for (size_t i = 0; i < args.size() && i < inputs.size(); ++i) {
      tensor_op |= is_tensor_type(args[i].type()) && reads_graph_value(inputs[i]);
    }
  }
  bool returns_tensor = false;
  if (schema != nullptr) {
    for (const c10::Argument& r : schema->returns()) returns_tensor |= is_tensor_type(r.type());
  }
  const bool supported = std::binary_search(supported_ops().begin(), supported_ops().end(), base);
  if (tensor_op && !supported && !(is_metadata_op(base) && !returns_tensor)) {
    return unsupported(node, f.module, !returns_tensor);
  }
  if (schema != nullptr) move_to_meta(*schema, node, inputs);
  auto ran = run_on_shapes(node, schema, schema ? op_name(node, *schema, base) : qualified,
                           inputs, tensor_op && supported, real_bytes_left_);
  if (!ran.ok()) {
    return core::invalid_argument("running TorchScript op '" + qualified + "' " +
                                  where(node, f.module) + " on the example inputs failed: " +
                                  ran.status().message());
  }
  torch::jit::Stack stack = std::move(ran).value();
  if (stack.size() != node->outputs().size()) {
    return core::internal_error(qualified + " returned " + std::to_string(stack.size()) +
                                " values, its node has " +
                                std::to_string(node->outputs().size()));
  }
  std::vector<IValue> outputs(stack.begin(), stack.end());
  if (tensor_op && supported) {
    ALPA_RETURN_IF_ERROR(record(node, *schema, base, inputs, outputs, f));
  }
  for (size_t i = 0; i < outputs.size(); ++i) f.env[node->outputs()[i]] = std::move(outputs[i]);
  return core::ok_status();
}

void Importer::move_to_meta(const c10::FunctionSchema& schema, const Node* node,
                            std::vector<IValue>& inputs) {
  const auto& args = schema.arguments();
  const size_t n = std::min(args.size(), inputs.size());
  bool any_tensor = false, any_meta = false;
  for (size_t i = 0; i < n; ++i) {
    if (!is_tensor_type(args[i].type())) continue;
    any_tensor = true;
    any_meta |= holds_meta(inputs[i]);
  }
  // A factory op (no tensor argument) makes a meta tensor unless it is small
  // (then its data stays readable, as a mask's or a range's); an op with
  // tensor arguments follows them.
  const int64_t bytes = any_tensor ? 0 : factory_bytes(schema, inputs);
  const bool large = bytes > std::min(kMaterializeLimitBytes, real_bytes_left_);
  if (!any_meta && !any_tensor && !large) real_bytes_left_ -= bytes;
  const bool to_meta = any_meta || (!any_tensor && !is_data_literal(node) && large);
  for (size_t i = 0; i < n && to_meta; ++i) {
    if (is_device_type(args[i].type())) {
      inputs[i] = IValue(c10::Device(c10::kMeta));
    } else if (is_tensor_type(args[i].type())) {
      inputs[i] = on_meta(inputs[i]);
    }
  }
}

IValue Importer::on_meta(const IValue& value) {
  if (value.isTensor()) {
    const at::Tensor& t = value.toTensor();
    if (!t.defined() || t.is_meta()) return value;
    auto it = meta_copies_.find(t.unsafeGetTensorImpl());
    if (it == meta_copies_.end()) {
      keep_alive_.push_back(t);
      it = meta_copies_.emplace(t.unsafeGetTensorImpl(), meta_like(t)).first;
    }
    return IValue(it->second);
  }
  if (value.isTensorList()) {
    c10::List<at::Tensor> out;
    for (const at::Tensor& t : value.toTensorVector()) out.push_back(on_meta(IValue(t)).toTensor());
    return IValue(std::move(out));
  }
  if (value.isList()) {  // Tensor?[]
    c10::impl::GenericList out(value.toList().elementType());
    for (const IValue& v : value.toListRef()) out.push_back(on_meta(v));
    return IValue(std::move(out));
  }
  return value;
}

core::Status Importer::record(const Node* node, const c10::FunctionSchema& schema,
                              const std::string& base, const std::vector<IValue>& inputs,
                              const std::vector<IValue>& outputs, const Frame& f) {
  ir::Node n;
  n.kind = ir::NodeKind::kOp;
  n.module = f.module;
  n.op = op_name(node, schema, base);
  const auto& args = schema.arguments();
  for (size_t i = 0; i < args.size() && i < inputs.size(); ++i) {
    auto attr = attr_of(inputs[i], args[i].type(), n);
    if (!attr.ok()) return attr.status().with_context(op_context(node, f.module));
    n.attrs.emplace_back(args[i].name(), std::move(attr).value());
  }
  std::vector<at::Tensor> results;
  for (const IValue& v : outputs) flatten_tensors(v, results);
  if (results.empty()) return core::ok_status();  // nothing a later op can read
  for (const at::Tensor& t : results) {
    auto meta = meta_of(t);
    if (!meta.ok()) return meta.status().with_context(op_context(node, f.module));
    n.outputs.push_back(std::move(meta).value());
  }
  protos_.push_back(std::move(n));
  const int64_t id = static_cast<int64_t>(protos_.size()) - 1;
  for (size_t k = 0; k < results.size(); ++k) {
    refs_[results[k].unsafeGetTensorImpl()] = ir::ValueRef{ir::NodeId{id}, static_cast<int64_t>(k)};
    keep_alive_.push_back(results[k]);
  }
  return core::ok_status();
}

core::StatusOr<ir::Attr> Importer::attr_of(const IValue& value, const c10::TypePtr& type,
                                           ir::Node& node) {
  return ts_support::attr_of(value, type, node,
                             [this](const at::Tensor& t) { return ref_of(t); });
}

core::StatusOr<ir::ValueRef> Importer::ref_of(const at::Tensor& t) {
  auto it = refs_.find(t.unsafeGetTensorImpl());
  if (it != refs_.end()) return it->second;
  // Made by no recorded op (torch.ones(...), a literal, NumToTensor): its
  // value does not depend on the inputs, so it is a constant of the graph.
  ir::Node n;
  n.kind = ir::NodeKind::kConstant;
  n.target = "constant";
  return add_proto(std::move(n), t);
}

core::StatusOr<ir::ValueRef> Importer::add_proto(ir::Node node, const at::Tensor& value) {
  auto meta = meta_of(value);
  if (!meta.ok()) {
    return meta.status().with_context(std::string(ir::node_kind_name(node.kind)) + " '" +
                                      node.target + "'");
  }
  node.outputs = {std::move(meta).value()};
  protos_.push_back(std::move(node));
  const ir::ValueRef ref{ir::NodeId{static_cast<int64_t>(protos_.size()) - 1}, 0};
  refs_[value.unsafeGetTensorImpl()] = ref;
  keep_alive_.push_back(value);
  return ref;
}

/// Node name from a target or op base name: [A-Za-z0-9_.], unique.
std::string unique_name(std::string base, std::set<std::string>& used) {
  for (char& c : base) {
    const bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.';
    if (!ok) c = '_';
  }
  if (base.empty()) base = "value";
  std::string name = base;
  for (int i = 1; used.count(name) > 0; ++i) name = base + "_" + std::to_string(i);
  used.insert(name);
  return name;
}

core::StatusOr<ir::Graph> Importer::finish(const std::string& name, const IValue& result) {
  std::vector<at::Tensor> returned;
  flatten_tensors(result, returned);
  if (returned.empty()) {
    return core::invalid_argument("the module's " + options_.method +
                                  "() returns no tensor; return the output (or loss) tensor");
  }
  std::vector<ir::ValueRef> outputs;
  for (const at::Tensor& t : returned) {
    ALPA_ASSIGN_OR_RETURN(ir::ValueRef ref, ref_of(t));
    outputs.push_back(ref);
  }
  // Placeholders first, as alpa_torch.capture writes them: parameters and
  // buffers, then inputs, then constants; ops after, in execution order.
  std::vector<int64_t> order;
  for (ir::NodeKind kind : {ir::NodeKind::kParameter, ir::NodeKind::kInput,
                            ir::NodeKind::kConstant, ir::NodeKind::kOp}) {
    for (size_t i = 0; i < protos_.size(); ++i) {
      const ir::NodeKind k = protos_[i].kind == ir::NodeKind::kBuffer ? ir::NodeKind::kParameter
                                                                      : protos_[i].kind;
      if (k == kind) order.push_back(static_cast<int64_t>(i));
    }
  }
  std::vector<int64_t> new_id(protos_.size());
  for (size_t i = 0; i < order.size(); ++i) {
    new_id[static_cast<size_t>(order[i])] = static_cast<int64_t>(i);
  }
  ir::Graph graph(name);
  std::set<std::string> used;
  for (int64_t old : order) {
    ir::Node n = protos_[static_cast<size_t>(old)];
    for (ir::ValueRef& v : n.inputs) v.node = ir::NodeId{new_id[v.node.index()]};
    n.name = unique_name(n.is_placeholder() ? n.target : std::string(ir::op_base_name(n.op)),
                         used);
    graph.add_node(std::move(n));
  }
  for (ir::ValueRef v : outputs) {
    graph.add_output(ir::GraphOutput{ir::ValueRef{ir::NodeId{new_id[v.node.index()]}, v.index},
                                     ir::OutputRole::kUserOutput, ""});
  }
  ALPA_RETURN_IF_ERROR(ir::verify_graph(graph).with_context("the imported TorchScript graph"));
  ALPA_RETURN_IF_ERROR(ir::annotate_flops(graph));
  return graph;
}

}  // namespace

core::StatusOr<ir::Graph> import_torchscript(const torch::jit::Module& module,
                                             const std::vector<c10::IValue>& example_inputs,
                                             const TorchScriptImportOptions& options) {
  Importer importer(options);
  try {
    return importer.run(module, example_inputs);
  } catch (const std::exception& err) {  // a graph this interpreter did not expect
    return core::internal_error("importing the TorchScript module failed: " + message_of(err));
  }
}

core::StatusOr<ir::Graph> import_torchscript_file(const std::string& path,
                                                  const std::vector<c10::IValue>& example_inputs,
                                                  const TorchScriptImportOptions& options) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return core::invalid_argument("cannot open TorchScript file '" + path + "'");
  return import_torchscript_stream(file, "TorchScript file '" + path + "'", example_inputs,
                                   options);
}

namespace {

/// The framing of every pickle torch::jit::load will read from the archive
/// in `data` (pickle_framing.h), then `data` rewound. A stream that is not
/// a readable zip is left to torch::jit::load to report.
core::Status check_archive_pickles(std::istream& data, const std::string& what) {
  data.seekg(0, std::ios::end);
  const auto file_size = static_cast<uint64_t>(std::max<std::streamoff>(data.tellg(), 0));
  data.seekg(0);
  core::Status status = core::ok_status();
  try {
    caffe2::serialize::PyTorchStreamReader reader(&data);
    for (const std::string& name : reader.getAllRecords()) {
      const bool pickle = name.size() > 4 && name.compare(name.size() - 4, 4, ".pkl") == 0;
      if (!pickle) continue;  // not .debug_pkl: the importer does not load debug files
      // Deflate expands at most 1032 times; a stored record is no larger than the file.
      if (reader.getRecordSize(name) > 1100 * file_size) {
        status = core::invalid_argument(what + " is damaged: its " + name + " says it holds " +
                                        std::to_string(reader.getRecordSize(name)) +
                                        " bytes in a file of " + std::to_string(file_size));
        break;
      }
      auto [bytes, size] = reader.getRecord(name);
      status = check_pickle_framing(
          std::string_view(static_cast<const char*>(bytes.get()), size), name);
      if (!status.ok()) break;
    }
  } catch (const std::exception&) {
    // not a zip torch can read: torch::jit::load says why
  }
  data.clear();
  data.seekg(0);
  if (!status.ok()) {
    return core::invalid_argument("cannot load " + what + ": " + status.message());
  }
  return core::ok_status();
}

}  // namespace

core::StatusOr<ir::Graph> import_torchscript_stream(std::istream& data, const std::string& what,
                                                    const std::vector<c10::IValue>& example_inputs,
                                                    const TorchScriptImportOptions& options) {
  ALPA_RETURN_IF_ERROR(check_archive_pickles(data, what));
  torch::jit::Module module;
  try {
    // Without the debug files (source ranges of the original Python): a
    // damaged debug pickle would otherwise be read lazily, from inside an
    // exception's what(), and abort the process.
    module = torch::jit::load(data, c10::Device(c10::kCPU), /*load_debug_files=*/false);
  } catch (const std::exception& err) {
    return core::invalid_argument("cannot load " + what +
                                  " (write it with torch.jit.save(torch.jit.script(model), "
                                  "path)): " + message_of(err));
  }
  return import_torchscript(module, example_inputs, options);
}

const std::vector<std::string>& torchscript_supported_ops() { return supported_ops(); }

}  // namespace alpa::runtime
