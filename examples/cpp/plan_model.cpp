// This file implements plan_model: plan a model from C++ and print the plan.
//
//   plan_model                                   a built-in MLP (ir::GraphBuilder)
//   plan_model --graph g.json                    alpa_torch.capture(m, args).save("g.json")
//   plan_model --torchscript m.pt --input f32[8,16]   torch.jit.save(torch.jit.script(m))
//
// Options mirror alpa_torch.plan(...) so that both planners can be given the
// same request (the plan is the same JSON, bit for bit):
//   --method intra_op|pipeshard   --mesh 1x2   --cluster cpu-gloo
//   --memory-budget BYTES|16GiB|inf (default: the preset's device memory)
//   --optimizer-state-factor 2 (Adam)   --time-limit 60   --threads 1
//   pipeshard: --micro-batches B  --schedule 1f1b|gpipe  --num-layers L
//              --layer-eps 0.5  --boundary FQN (repeat)  --stage-mesh 1x1 (repeat)
//   --json PATH ("-": stdout)  --save-graph PATH  --quiet
// As in Python, an intra_op plan's cluster is the preset with 1 host × n0·n1
// devices; a pipeshard plan's is the preset with n0 hosts × n1 devices.
#include <alpa_torch/alpa.h>

#include <ATen/ATen.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

struct Flags {
  std::string graph_file, torchscript_file, method = "intra_op", cluster = "cpu-gloo";
  std::vector<std::string> inputs, boundaries;
  std::array<int64_t, 2> mesh{1, 2};
  std::vector<std::array<int64_t, 2>> stage_meshes;
  std::optional<double> memory_budget;
  double optimizer_state_factor = 2.0, time_limit_s = 60.0, layer_eps = 0.5;
  int threads = 1;
  int64_t micro_batches = 1, num_layers = 0;
  std::string schedule = "1f1b", json_out, graph_out;
  bool quiet = false;
};

[[noreturn]] void fail(const std::string& message, int code = 1) {
  std::cerr << "plan_model: error: " << message << "\n";
  std::exit(code);
}

template <typename T>
T unwrap(alpa::core::StatusOr<T> value) {
  if (!value.ok()) fail(value.status().to_string());
  return std::move(value).value();
}

/// The whole of `text` as an integer in [lo, hi], or nullopt.
std::optional<int64_t> parse_int(const std::string& text, int64_t lo, int64_t hi) {
  size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (used != text.size() || v < lo || v > hi) return std::nullopt;
  return v;
}

/// The whole of `text` as a finite number in [lo, hi], or nullopt.
std::optional<double> parse_number(const std::string& text, double lo, double hi) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (used != text.size() || !(v >= lo && v <= hi)) return std::nullopt;
  return v;
}

constexpr int64_t kMaxDevices = int64_t{1} << 20;

std::array<int64_t, 2> parse_mesh(const std::string& text) {
  const size_t x = text.find('x');
  auto n0 = x == std::string::npos ? std::optional<int64_t>(1)
                                   : parse_int(text.substr(0, x), 1, kMaxDevices);
  auto n1 = parse_int(x == std::string::npos ? text : text.substr(x + 1), 1, kMaxDevices);
  if (!n0 || !n1 || *n0 * *n1 > kMaxDevices) {
    fail("cannot read mesh '" + text + "'; write N0xN1 with positive ints and at most 2^20 "
         "devices, e.g. 1x2", 2);
  }
  return {*n0, *n1};
}

/// Bytes from "123", "1.5e9", "16GiB", "500MB" or "inf" (as alpa_torch.parse_bytes).
double parse_bytes(const std::string& text) {
  if (text == "inf") return INFINITY;
  static const std::map<std::string, double> units = {
      {"", 1},      {"b", 1},        {"kb", 1e3},     {"mb", 1e6},     {"gb", 1e9},
      {"tb", 1e12}, {"kib", 1024.0}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1099511627776.0}};
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  std::string unit = text.substr(used);
  for (char& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (used == 0 || !units.count(unit) || !(value > 0)) {
    fail("cannot read memory budget '" + text + "'; write bytes or e.g. 16GiB, 500MB, inf", 2);
  }
  return value * units.at(unit);
}

Flags parse_flags(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--quiet") {
      f.quiet = true;
      continue;
    }
    if (i + 1 >= argc) fail("flag " + flag + " needs a value (see plan_model.cpp's header)", 2);
    const std::string v = argv[++i];
    // Numbers must be whole and in range: "5x", "nan", "-1" are errors.
    auto number = [&](double lo, double hi, const char* what) {
      auto x = parse_number(v, lo, hi);
      if (!x) fail("cannot read the value '" + v + "' of " + flag + ": expected " + what, 2);
      return *x;
    };
    auto integer = [&](int64_t lo, int64_t hi, const char* what) {
      auto x = parse_int(v, lo, hi);
      if (!x) fail("cannot read the value '" + v + "' of " + flag + ": expected " + what, 2);
      return *x;
    };
    if (flag == "--graph") f.graph_file = v;
    else if (flag == "--torchscript") f.torchscript_file = v;
    else if (flag == "--input") f.inputs.push_back(v);
    else if (flag == "--method") f.method = v;
    else if (flag == "--mesh") f.mesh = parse_mesh(v);
    else if (flag == "--cluster") f.cluster = v;
    else if (flag == "--memory-budget") f.memory_budget = parse_bytes(v);
    else if (flag == "--optimizer-state-factor") f.optimizer_state_factor = number(0, 1e6, "0..1e6");
    else if (flag == "--time-limit") f.time_limit_s = number(1e-3, 1e7, "seconds in [0.001, 1e7]");
    else if (flag == "--threads") f.threads = static_cast<int>(integer(1, 1024, "an int 1..1024"));
    else if (flag == "--micro-batches") f.micro_batches = integer(1, 1 << 20, "an int 1..2^20");
    else if (flag == "--schedule") f.schedule = v;
    else if (flag == "--num-layers") f.num_layers = integer(0, 1 << 20, "an int in [0, 2^20]");
    else if (flag == "--layer-eps") f.layer_eps = number(0, 1e6, "a number in [0, 1e6]");
    else if (flag == "--boundary") f.boundaries.push_back(v);
    else if (flag == "--stage-mesh") f.stage_meshes.push_back(parse_mesh(v));
    else if (flag == "--json") f.json_out = v;
    else if (flag == "--save-graph") f.graph_out = v;
    else fail("unknown flag " + flag + " (see the header of plan_model.cpp)", 2);
  }
  if (f.method != "intra_op" && f.method != "pipeshard") {
    fail("--method must be intra_op or pipeshard, got '" + f.method + "'", 2);
  }
  return f;
}

/// x[8,1024] -> fc1 (4096) -> relu -> fc2 (1024): the graph written by hand.
alpa::ir::Graph builtin_mlp() {
  using alpa::ir::DType;
  alpa::ir::GraphBuilder b("mlp");
  auto x = b.input("x", {{8, 1024}, DType::kFloat32});
  auto w1 = b.parameter("fc1.weight", {{4096, 1024}, DType::kFloat32});
  auto b1 = b.parameter("fc1.bias", {{4096}, DType::kFloat32});
  auto w2 = b.parameter("fc2.weight", {{1024, 4096}, DType::kFloat32});
  auto b2 = b.parameter("fc2.bias", {{1024}, DType::kFloat32});
  auto h = b.unary("relu", b.linear(x, w1, b1, "fc1"));
  b.output(b.linear(h, w2, b2, "fc2"));
  return unwrap(b.build());
}

/// Example tensors for --input specs: meta tensors (shapes and dtypes, no
/// data: the importer computes shapes only, so no size allocates memory).
std::vector<c10::IValue> example_inputs(const std::vector<std::string>& specs) {
  auto inputs = alpa::runtime::example_inputs_from_specs(specs);
  if (!inputs.ok()) fail("--input: " + inputs.status().message(), 2);
  return std::move(inputs).value();
}

alpa::ir::Graph load_graph(const Flags& f) {
  if (!f.graph_file.empty() && !f.torchscript_file.empty()) {
    fail("pass either --graph or --torchscript, not both", 2);
  }
  if (!f.graph_file.empty()) return unwrap(alpa::load_graph_file(f.graph_file));
  if (!f.torchscript_file.empty()) {
    if (f.inputs.empty()) fail("--torchscript needs the example inputs: --input f32[8,16] ...", 2);
    return unwrap(alpa::runtime::import_torchscript_file(f.torchscript_file,
                                                         example_inputs(f.inputs)));
  }
  return builtin_mlp();
}

/// The request alpa_torch.plan(...) sends for the same arguments.
alpa::plan::Plan make_plan(const alpa::ir::Graph& graph, const Flags& f) {
  const bool pipeshard = f.method == "pipeshard";
  alpa::mesh::Cluster cluster = unwrap(alpa::mesh::cluster_preset(
      f.cluster, pipeshard ? f.mesh[0] : 1, pipeshard ? f.mesh[1] : f.mesh[0] * f.mesh[1]));
  alpa::intra_op::IntraOpOptions options;
  options.memory_budget = f.memory_budget.value_or(cluster.device.memory_bytes);
  options.cost.optimizer_state_factor = f.optimizer_state_factor;
  options.time_limit_s = f.time_limit_s;
  options.num_threads = pipeshard ? 1 : f.threads;
  if (!pipeshard) {
    alpa::plan::IntraOpRequest request;
    request.mesh_shape = f.mesh;
    request.options = options;
    return unwrap(alpa::plan::make_intra_op_plan(graph, cluster, request));
  }
  alpa::plan::PipeshardRequest request;
  request.options = options;
  request.num_threads = f.threads;
  request.num_micro_batches = f.micro_batches;
  request.schedule = f.schedule;
  request.clustering.num_layers = f.num_layers;
  request.clustering.eps = f.layer_eps;
  request.layer_boundaries = f.boundaries;
  request.stage_meshes = f.stage_meshes;
  return unwrap(alpa::plan::make_pipeshard_plan(graph, cluster, request));
}

}  // namespace

int run(int argc, char** argv) {
  const Flags flags = parse_flags(argc, argv);
  const alpa::ir::Graph graph = load_graph(flags);
  if (!flags.graph_out.empty()) {
    const alpa::core::Status saved = alpa::save_graph_file(graph, flags.graph_out);
    if (!saved.ok()) fail(saved.to_string());
  }
  const alpa::plan::Plan plan = make_plan(graph, flags);
  const std::string json = plan.to_json().dump();
  if (flags.json_out == "-") {
    std::cout << json << "\n";
  } else if (!flags.json_out.empty()) {
    std::ofstream file(flags.json_out);
    if (!(file << json)) fail("cannot write the plan to '" + flags.json_out + "'");
  }
  if (!flags.quiet) {
    std::cout << "graph '" << graph.name() << "': " << graph.num_nodes() << " nodes, "
              << graph.total_flops() << " FLOPs\n"
              << plan.explain();
  }
  return 0;
}

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& err) {  // a bug, never an abort: say what happened
    fail(std::string("unexpected error (please report it): ") + err.what());
  }
}
