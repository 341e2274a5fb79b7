// This file implements layer clustering (Alpa §5.1): the segment oracle
// (in-bytes of every FLOP-feasible contiguous run of op nodes, computed
// incrementally), the min-max DP and the tie-break DP (FLOP balance, then
// bytes), the automatic layer count from repeated module blocks, and the
// text form.
#include "inter_op/layer_clustering.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/check.h"

namespace alpa::inter_op {
namespace {

constexpr int64_t kInfBytes = std::numeric_limits<int64_t>::max();
constexpr double kFlopTolerance = 1e-9;  // relative, on the per-layer bound
constexpr int kFlopUnitsLog2 = 29;       // the graph's FLOPs in ≤ 2^29 units (+ rounding)

using Table = std::vector<std::vector<int64_t>>;  // [layers][op position]

/// Whether `flops` fits under `bound` (with the relative tolerance).
bool fits(double flops, double bound) { return flops <= bound * (1 + kFlopTolerance); }

/// A value an op reads that may lie outside a segment: it does for the
/// segment starting at op position s iff producer_pos < s.
struct OutsideRead {
  int64_t value = 0;         // dense value id
  int64_t producer_pos = 0;  // op position of the producer; -1: user input
  int64_t bytes = 0;
};

/// The op nodes in graph order and, for any start s, the FLOP-feasible
/// segments [s, e] with their in-bytes, enumerated by extending e.
class SegmentOracle {
 public:
  SegmentOracle(const ir::Graph& graph, double bound) : bound_(bound) {
    std::vector<int64_t> value_base(graph.num_nodes() + 1, 0);
    std::vector<int64_t> pos_of_node(graph.num_nodes(), -1);
    for (const ir::Node& n : graph.nodes()) {
      value_base[n.id.index() + 1] = value_base[n.id.index()] +
                                     static_cast<int64_t>(n.outputs.size());
      if (n.is_placeholder()) continue;
      pos_of_node[n.id.index()] = static_cast<int64_t>(ops_.size());
      ops_.push_back(n.id.value);
    }
    flops_prefix_.push_back(0);
    positive_prefix_.push_back(0);
    read_begin_.push_back(0);
    for (int64_t node_id : ops_) {
      const ir::Node& n = graph.nodes()[node_id];
      flops_prefix_.push_back(flops_prefix_.back() + n.flops);
      positive_prefix_.push_back(positive_prefix_.back() + (n.flops > 0 ? 1 : 0));
      for (const ir::ValueRef& v : n.inputs) {
        const ir::Node& producer = graph.node(v.node);
        if (producer.is_placeholder() && producer.kind != ir::NodeKind::kInput) continue;
        reads_.push_back(OutsideRead{value_base[v.node.index()] + v.index,
                                     pos_of_node[v.node.index()],
                                     graph.meta(v).bytes()});
      }
      read_begin_.push_back(static_cast<int64_t>(reads_.size()));
    }
    require_positive_ = positive_prefix_.back() > 0;
    stamp_.assign(value_base.back(), -1);
    units_prefix_ = flop_units_prefix(graph);
  }

  int64_t num_ops() const { return static_cast<int64_t>(ops_.size()); }
  int64_t node_of(int64_t pos) const { return ops_[pos]; }
  /// FLOPs of op positions [s, e] in integer units of 2^-k FLOPs, k chosen
  /// so that the whole graph holds at most kFlopUnits units: sums are
  /// exact, equal blocks weigh exactly the same, and a square of a layer's
  /// units (≤ kFlopUnits²) fits in 64 bits.
  int64_t units(int64_t s, int64_t e) const { return units_prefix_[e + 1] - units_prefix_[s]; }

  /// Calls f(e, in_bytes) for each valid segment [s, e], e ascending, until
  /// f returns false. in_bytes is non-decreasing in e.
  template <typename F>
  void for_each_from(int64_t s, F&& f) {
    const int64_t epoch = ++epoch_;
    int64_t bytes = 0;
    for (int64_t e = s; e < num_ops(); ++e) {
      if (!fits(flops_prefix_[e + 1] - flops_prefix_[s], bound_)) return;
      for (int64_t r = read_begin_[e]; r < read_begin_[e + 1]; ++r) {
        const OutsideRead& read = reads_[r];
        if (read.producer_pos >= s || stamp_[read.value] == epoch) continue;
        stamp_[read.value] = epoch;
        bytes += read.bytes;
      }
      if (require_positive_ && positive_prefix_[e + 1] == positive_prefix_[s]) continue;
      if (!f(e, bytes)) return;
    }
  }

 private:
  double bound_;
  bool require_positive_ = false;
  std::vector<int64_t> ops_;              // node id per op position
  std::vector<double> flops_prefix_;      // FLOPs of op positions [0, p)
  std::vector<int64_t> positive_prefix_;  // ops with FLOPs > 0 in [0, p)
  std::vector<int64_t> read_begin_;       // CSR offsets into reads_
  std::vector<OutsideRead> reads_;
  std::vector<int64_t> stamp_;  // per value: epoch of the last enumeration that counted it
  int64_t epoch_ = 0;
  std::vector<int64_t> units_prefix_;  // FLOP units of op positions [0, p)

  /// Each op's FLOPs scaled by a power of two (exact for integer FLOPs up
  /// to 2^29 in total) and rounded, summed in op order.
  static std::vector<int64_t> flop_units_prefix(const ir::Graph& graph) {
    double total = 0;
    for (const ir::Node& n : graph.nodes()) total += n.is_placeholder() ? 0 : n.flops;
    int exponent = 0;
    std::frexp(total, &exponent);  // total < 2^exponent
    const int scale = kFlopUnitsLog2 - exponent;
    std::vector<int64_t> prefix = {0};
    for (const ir::Node& n : graph.nodes()) {
      if (n.is_placeholder()) continue;
      prefix.push_back(prefix.back() + std::llround(std::ldexp(n.flops, scale)));
    }
    return prefix;
  }
};

/// Forward DP: F[k][p] = smallest max in-bytes splitting op positions [0, p)
/// into k layers. Returns F[L][n] (kInfBytes when infeasible).
int64_t min_max_pass(SegmentOracle& oracle, int64_t num_layers) {
  const int64_t n = oracle.num_ops();
  Table f(num_layers + 1, std::vector<int64_t>(n + 1, kInfBytes));
  f[0][0] = 0;
  for (int64_t s = 0; s < n; ++s) {
    bool reachable = false;
    for (int64_t k = 0; k < num_layers; ++k) reachable |= f[k][s] < kInfBytes;
    if (!reachable) continue;
    oracle.for_each_from(s, [&](int64_t e, int64_t bytes) {
      for (int64_t k = 1; k <= num_layers; ++k) {
        if (f[k - 1][s] == kInfBytes) continue;
        f[k][e + 1] = std::min(f[k][e + 1], std::max(f[k - 1][s], bytes));
      }
      return true;
    });
  }
  return f[num_layers][n];
}

/// The tie-break objective of a split, compared lexicographically: the sum
/// over layers of squared FLOPs (in FLOP units, see SegmentOracle::units),
/// then the sum of in-bytes.
struct SplitCost {
  int64_t flops_squares = 0;
  int64_t bytes = 0;

  static SplitCost infinite() { return {kInfBytes, kInfBytes}; }
  bool is_infinite() const { return flops_squares == kInfBytes; }
  SplitCost operator+(const SplitCost& o) const {
    return {flops_squares + o.flops_squares, bytes + o.bytes};
  }
  bool operator<(const SplitCost& o) const {
    return flops_squares != o.flops_squares ? flops_squares < o.flops_squares : bytes < o.bytes;
  }
  bool operator==(const SplitCost& o) const {
    return flops_squares == o.flops_squares && bytes == o.bytes;
  }
};

using CostTable = std::vector<std::vector<SplitCost>>;  // [layers][op position]

SplitCost segment_cost(const SegmentOracle& oracle, int64_t s, int64_t e, int64_t bytes) {
  const int64_t units = oracle.units(s, e);
  return SplitCost{units * units, bytes};
}

/// Backward DP: H[k][p] = least SplitCost splitting op positions [p, n) into
/// k layers, each with in-bytes ≤ cap.
CostTable tie_break_pass(SegmentOracle& oracle, int64_t num_layers, int64_t cap) {
  const int64_t n = oracle.num_ops();
  CostTable h(num_layers + 1, std::vector<SplitCost>(n + 1, SplitCost::infinite()));
  h[0][n] = SplitCost{};
  for (int64_t s = n - 1; s >= 0; --s) {
    oracle.for_each_from(s, [&](int64_t e, int64_t bytes) {
      if (bytes > cap) return false;  // in-bytes only grow with e
      const SplitCost here = segment_cost(oracle, s, e, bytes);
      for (int64_t k = 1; k <= num_layers; ++k) {
        if (h[k - 1][e + 1].is_infinite()) continue;
        const SplitCost total = here + h[k - 1][e + 1];
        if (total < h[k][s]) h[k][s] = total;
      }
      return true;
    });
  }
  return h;
}

struct Segment {
  int64_t first = 0;  // op positions, inclusive
  int64_t last = 0;
  int64_t bytes = 0;
};

/// Walks H forward taking the earliest end that keeps the optimum.
std::vector<Segment> reconstruct(SegmentOracle& oracle, const CostTable& h,
                                 int64_t num_layers, int64_t cap) {
  std::vector<Segment> segments;
  int64_t s = 0;
  for (int64_t k = num_layers; k >= 1; --k) {
    bool found = false;
    oracle.for_each_from(s, [&](int64_t e, int64_t bytes) {
      if (bytes > cap) return false;
      if (h[k - 1][e + 1].is_infinite() ||
          !(segment_cost(oracle, s, e, bytes) + h[k - 1][e + 1] == h[k][s])) {
        return true;
      }
      segments.push_back(Segment{s, e, bytes});
      found = true;
      return false;
    });
    ALPA_CHECK(found, "layer clustering: no segment from op position {} reproduces "
               "the optimum ({}, {}) with {} layers left", s, h[k][s].flops_squares,
               h[k][s].bytes, k);
    s = segments.back().last + 1;
  }
  ALPA_CHECK(s == oracle.num_ops(), "layer clustering covered {} of {} ops", s,
             oracle.num_ops());
  return segments;
}

core::Status validate_inputs(const ir::Graph& graph, const LayerClusteringOptions& options) {
  if (options.num_layers < 0) {
    return core::invalid_argument(fmt::format(
        "num_layers must be >= 0 (0 = automatic), got {}", options.num_layers));
  }
  if (!std::isfinite(options.eps) || options.eps < 0) {
    return core::invalid_argument(fmt::format("eps must be finite and >= 0, got {}", options.eps));
  }
  if (options.max_auto_layers < 1) {
    return core::invalid_argument(fmt::format(
        "max_auto_layers must be >= 1, got {}", options.max_auto_layers));
  }
  bool any_op = false;
  for (int64_t i = 0; i < graph.num_nodes(); ++i) {
    const ir::Node& n = graph.nodes()[i];
    if (n.id.value != i) {
      return core::invalid_argument(fmt::format(
          "node '{}' at position {} has id {}; ids must equal positions", n.name, i,
          n.id.value));
    }
    for (const ir::ValueRef& v : n.inputs) {
      if (v.node.value < 0 || v.node.value >= i || v.index < 0 ||
          v.index >= static_cast<int64_t>(graph.node(v.node).outputs.size())) {
        return core::invalid_argument(fmt::format(
            "node '{}' (id {}) reads value ({}, {}), which is not an output of an "
            "earlier node; layer clustering needs a graph in topological order",
            n.name, n.id.value, v.node.value, v.index));
      }
    }
    if (n.is_placeholder()) continue;
    any_op = true;
    if (!std::isfinite(n.flops) || n.flops < 0) {
      return core::invalid_argument(fmt::format(
          "op node '{}' has FLOPs {}; expected a finite value >= 0", n.name, n.flops));
    }
  }
  if (!any_op) {
    return core::invalid_argument(fmt::format(
        "graph '{}' has no op nodes to cluster into layers", graph.name()));
  }
  return core::ok_status();
}

int64_t count_positive_ops(const ir::Graph& graph) {
  int64_t count = 0;
  for (const ir::Node& n : graph.nodes()) count += !n.is_placeholder() && n.flops > 0;
  return count;
}

core::StatusOr<int64_t> resolve_num_layers(const ir::Graph& graph,
                                           const LayerClusteringOptions& options) {
  if (options.num_layers == 0) return auto_num_layers(graph, options.max_auto_layers);
  const int64_t positive = count_positive_ops(graph);
  if (positive == 0 && options.num_layers > 1) {
    return core::invalid_argument(fmt::format(
        "num_layers = {} but no op node has FLOPs > 0 (annotate them with "
        "ir::annotate_flops), so the graph forms 1 layer", options.num_layers));
  }
  if (positive > 0 && options.num_layers > positive) {
    return core::invalid_argument(fmt::format(
        "num_layers = {} but only {} op nodes have FLOPs > 0 and every layer needs "
        "one; use num_layers <= {}", options.num_layers, positive, positive));
  }
  return options.num_layers;
}

/// Fewest contiguous layers with FLOPs ≤ bound each (greedy; FLOP-less ops
/// attach anywhere); kInfBytes when one op alone exceeds the bound.
int64_t greedy_layer_count(const std::vector<double>& op_flops, double bound) {
  int64_t count = 0;
  double current = 0;
  for (double f : op_flops) {
    if (f <= 0) continue;
    if (!fits(f, bound)) return kInfBytes;
    if (count == 0 || !fits(current + f, bound)) {
      ++count;
      current = f;
    } else {
      current += f;
    }
  }
  return count;
}

/// The smallest eps (rounded up to 0.001) that admits `num_layers` layers.
double smallest_feasible_eps(const std::vector<double>& op_flops, int64_t num_layers,
                             double total) {
  double lo = *std::max_element(op_flops.begin(), op_flops.end()), hi = total;
  for (int i = 0; i < 100 && lo < hi; ++i) {
    double mid = lo + (hi - lo) / 2;
    if (mid <= lo || mid >= hi) break;
    (greedy_layer_count(op_flops, mid) <= num_layers ? hi : lo) = mid;
  }
  double eps = std::max(0.0, hi * static_cast<double>(num_layers) / total - 1);
  return std::ceil(eps * 1000 - 1e-7) / 1000;
}

std::vector<double> op_flops_of(const ir::Graph& graph) {
  std::vector<double> op_flops;
  for (const ir::Node& n : graph.nodes()) {
    if (!n.is_placeholder()) op_flops.push_back(n.flops);
  }
  return op_flops;
}

/// The largest L' in [1, upto] whose FLOP bound (1 + eps) · total / L' some
/// split into L' layers meets (1 when none does, or when total is 0).
int64_t largest_feasible_layers(const std::vector<double>& op_flops, int64_t upto,
                                double eps, double total) {
  for (int64_t l = upto; l > 1 && total > 0; --l) {
    if (greedy_layer_count(op_flops, (1 + eps) * total / static_cast<double>(l)) <= l) {
      return l;
    }
  }
  return 1;
}

/// Infeasible status explaining why no split meets the FLOP bound.
core::Status flop_bound_error(const ir::Graph& graph, int64_t num_layers, double eps,
                              double total) {
  const std::vector<double> op_flops = op_flops_of(graph);
  const ir::Node* largest = nullptr;
  for (const ir::Node& n : graph.nodes()) {
    if (!n.is_placeholder() && (largest == nullptr || n.flops > largest->flops)) largest = &n;
  }
  const int64_t max_layers = largest_feasible_layers(op_flops, num_layers - 1, eps, total);
  const double share = 100.0 * (1 + eps) / static_cast<double>(num_layers);
  const double op_share = 100.0 * largest->flops / total;
  const std::string advice = fmt::format(
      "use num_layers <= {} or eps >= {}", max_layers,
      smallest_feasible_eps(op_flops, num_layers, total));
  if (!fits(largest->flops, (1 + eps) * total / static_cast<double>(num_layers))) {
    return core::infeasible(fmt::format(
        "op '{}' ({}) has {} FLOPs, {:.1f}% of the total {}, more than the "
        "(1 + eps) / L = (1 + {}) / {} = {:.1f}% one layer may hold; {}",
        largest->name, largest->op, largest->flops, op_share, total, eps, num_layers,
        share, advice));
  }
  return core::infeasible(fmt::format(
      "no split of the {} op nodes into {} contiguous layers keeps every layer "
      "within (1 + eps) / L = (1 + {}) / {} = {:.1f}% of the total {} FLOPs (the "
      "largest op, '{}', has {:.1f}%); {}",
      op_flops.size(), num_layers, eps, num_layers, share, total, largest->name,
      op_share, advice));
}

/// Fills layer_of_node for placeholders and the shared list.
void assign_placeholders(const ir::Graph& graph, LayerClustering& result) {
  std::vector<std::vector<int64_t>> readers(graph.num_nodes());
  for (const ir::Node& n : graph.nodes()) {
    if (n.is_placeholder()) continue;
    const int64_t layer = result.layer_of_node[n.id.index()];
    for (const ir::ValueRef& v : n.inputs) {
      if (!graph.node(v.node).is_placeholder()) continue;
      std::vector<int64_t>& r = readers[v.node.index()];
      if (r.empty() || r.back() != layer) r.push_back(layer);  // layers ascend
    }
  }
  for (const ir::Node& n : graph.nodes()) {
    if (!n.is_placeholder()) continue;
    const std::vector<int64_t>& r = readers[n.id.index()];
    result.layer_of_node[n.id.index()] = r.empty() ? 0 : r.front();
    if (r.size() >= 2) result.shared.push_back(SharedPlaceholder{n.id.value, r});
  }
}

LayerClustering assemble(const ir::Graph& graph, const SegmentOracle& oracle,
                         const std::vector<Segment>& segments) {
  LayerClustering result;
  result.layer_of_node.assign(graph.num_nodes(), -1);
  for (size_t l = 0; l < segments.size(); ++l) {
    const Segment& seg = segments[l];
    Layer layer;
    layer.first_node = oracle.node_of(seg.first);
    layer.last_node = oracle.node_of(seg.last);
    layer.num_ops = seg.last - seg.first + 1;
    layer.input_bytes = seg.bytes;
    for (int64_t p = seg.first; p <= seg.last; ++p) {
      const int64_t node = oracle.node_of(p);
      layer.flops += graph.nodes()[node].flops;
      result.layer_of_node[node] = static_cast<int64_t>(l);
    }
    result.layers.push_back(layer);
  }
  assign_placeholders(graph, result);
  return result;
}

/// Reads the fixed grammar of LayerClustering::to_string(), one line.
class LineReader {
 public:
  explicit LineReader(std::string_view line) : rest_(line) {}
  bool literal(std::string_view word) {
    if (rest_.substr(0, word.size()) != word) return false;
    rest_.remove_prefix(word.size());
    return true;
  }
  bool integer(int64_t& out) {
    const char* end = rest_.data() + rest_.size();
    auto [ptr, ec] = std::from_chars(rest_.data(), end, out);
    if (ec != std::errc() || ptr == rest_.data()) return false;
    rest_.remove_prefix(static_cast<size_t>(ptr - rest_.data()));
    return true;
  }
  bool number(double& out) {
    size_t len = std::min(rest_.find(' '), rest_.size());
    std::string token(rest_.substr(0, len));
    char* end = nullptr;
    out = std::strtod(token.c_str(), &end);
    if (token.empty() || end != token.c_str() + token.size()) return false;
    rest_.remove_prefix(len);
    return true;
  }
  bool integer_list(std::vector<int64_t>& out) {
    int64_t v = 0;
    if (!integer(v)) return false;
    out.push_back(v);
    while (literal(",")) {
      if (!integer(v)) return false;
      out.push_back(v);
    }
    return true;
  }
  bool done() const { return rest_.empty(); }

 private:
  std::string_view rest_;
};

std::string join_ints(const std::vector<int64_t>& values) {
  return fmt::format("{}", fmt::join(values, ","));
}

core::Status line_error(size_t line_no, std::string_view line, std::string_view expected) {
  return core::parse_error(fmt::format("layer clustering text, line {}: expected '{}', got '{}'",
                                       line_no + 1, expected, line));
}

/// "layer 3: nodes 10..20, 9 ops, 1200 flops, 4096 bytes in[, also nodes 1,2]".
core::Status parse_layer_line(std::string_view line, size_t line_no, int64_t index,
                              Layer& layer, std::vector<int64_t>& also) {
  LineReader r(line);
  int64_t read_index = -1;
  bool ok = r.literal("layer ") && r.integer(read_index) && read_index == index &&
            r.literal(": nodes ") && r.integer(layer.first_node) && r.literal("..") &&
            r.integer(layer.last_node) && r.literal(", ") && r.integer(layer.num_ops) &&
            r.literal(" ops, ") && r.number(layer.flops) && r.literal(" flops, ") &&
            r.integer(layer.input_bytes) && r.literal(" bytes in");
  if (ok && r.literal(", also nodes ")) ok = r.integer_list(also);
  if (!ok || !r.done()) {
    return line_error(line_no, line, fmt::format(
        "layer {}: nodes A..B, K ops, F flops, N bytes in[, also nodes I,J]", index));
  }
  return core::ok_status();
}

/// "shared node 7: layers 0,3".
core::Status parse_shared_line(std::string_view line, size_t line_no,
                               SharedPlaceholder& shared) {
  LineReader r(line);
  bool ok = r.literal("shared node ") && r.integer(shared.node) && r.literal(": layers ") &&
            r.integer_list(shared.layers) && r.done();
  if (!ok) return line_error(line_no, line, "shared node N: layers I,J");
  return core::ok_status();
}

/// Node ranges first, then the "also" lists; every node must get a layer.
core::Status fill_layer_of_node(LayerClustering& c,
                                const std::vector<std::vector<int64_t>>& also) {
  const int64_t num_nodes = static_cast<int64_t>(c.layer_of_node.size());
  int64_t previous_last = -1;
  for (int64_t l = 0; l < c.num_layers(); ++l) {
    const Layer& layer = c.layers[l];
    if (layer.first_node <= previous_last || layer.last_node < layer.first_node ||
        layer.last_node >= num_nodes || layer.num_ops < 1 ||
        layer.num_ops > layer.last_node - layer.first_node + 1) {
      return core::parse_error(fmt::format(
          "layer clustering text: layer {} has nodes {}..{} and {} ops; expected "
          "ascending disjoint ranges within {} nodes", l, layer.first_node,
          layer.last_node, layer.num_ops, num_nodes));
    }
    previous_last = layer.last_node;
    for (int64_t n = layer.first_node; n <= layer.last_node; ++n) c.layer_of_node[n] = l;
  }
  for (int64_t l = 0; l < c.num_layers(); ++l) {
    for (int64_t n : also[l]) {
      if (n < 0 || n >= num_nodes) {
        return core::parse_error(fmt::format(
            "layer clustering text: layer {} lists node {}, expected 0..{}", l, n,
            num_nodes - 1));
      }
      c.layer_of_node[n] = l;
    }
  }
  for (int64_t n = 0; n < num_nodes; ++n) {
    if (c.layer_of_node[n] < 0) {
      return core::parse_error(fmt::format("layer clustering text: node {} has no layer", n));
    }
  }
  return core::ok_status();
}

}  // namespace

std::string LayerClustering::to_string() const {
  std::string out = fmt::format("layer_clustering: {} layers, {} nodes\n", layers.size(),
                                layer_of_node.size());
  std::vector<std::vector<int64_t>> also(layers.size());
  for (int64_t n = 0; n < static_cast<int64_t>(layer_of_node.size()); ++n) {
    const int64_t l = layer_of_node[n];
    if (l < 0 || l >= num_layers()) continue;
    auto in_range = [&](const Layer& layer) {
      return n >= layer.first_node && n <= layer.last_node;
    };
    auto home = std::find_if(layers.begin(), layers.end(), in_range);
    if (home == layers.end() || home - layers.begin() != l) also[l].push_back(n);
  }
  for (size_t l = 0; l < layers.size(); ++l) {
    const Layer& layer = layers[l];
    out += fmt::format("layer {}: nodes {}..{}, {} ops, {} flops, {} bytes in", l,
                       layer.first_node, layer.last_node, layer.num_ops, layer.flops,
                       layer.input_bytes);
    if (!also[l].empty()) out += ", also nodes " + join_ints(also[l]);
    out += "\n";
  }
  for (const SharedPlaceholder& s : shared) {
    out += fmt::format("shared node {}: layers {}\n", s.node, join_ints(s.layers));
  }
  return out;
}

core::StatusOr<LayerClustering> LayerClustering::parse(std::string_view text) {
  std::vector<std::string_view> lines;
  for (size_t begin = 0; begin < text.size();) {
    size_t end = std::min(text.find('\n', begin), text.size());
    if (end > begin) lines.push_back(text.substr(begin, end - begin));
    begin = end + 1;
  }
  LineReader header(lines.empty() ? std::string_view() : lines[0]);
  int64_t num_layers = 0, num_nodes = 0;
  if (!(header.literal("layer_clustering: ") && header.integer(num_layers) &&
        header.literal(" layers, ") && header.integer(num_nodes) &&
        header.literal(" nodes") && header.done()) ||
      num_layers < 0 || num_nodes < 0 ||
      static_cast<int64_t>(lines.size()) < 1 + num_layers) {
    return line_error(0, lines.empty() ? std::string_view() : lines[0],
                      "layer_clustering: L layers, N nodes, then L layer lines");
  }
  LayerClustering result;
  result.layer_of_node.assign(num_nodes, -1);
  result.layers.resize(num_layers);
  std::vector<std::vector<int64_t>> also(num_layers);
  for (int64_t l = 0; l < num_layers; ++l) {
    ALPA_RETURN_IF_ERROR(parse_layer_line(lines[1 + l], 1 + l, l, result.layers[l], also[l]));
  }
  for (size_t i = 1 + num_layers; i < lines.size(); ++i) {
    SharedPlaceholder s;
    ALPA_RETURN_IF_ERROR(parse_shared_line(lines[i], i, s));
    result.shared.push_back(std::move(s));
  }
  ALPA_RETURN_IF_ERROR(fill_layer_of_node(result, also));
  return result;
}

int64_t LayerClustering::max_input_bytes() const {
  int64_t best = 0;
  for (const Layer& l : layers) best = std::max(best, l.input_bytes);
  return best;
}

int64_t LayerClustering::total_input_bytes() const {
  int64_t sum = 0;
  for (const Layer& l : layers) sum += l.input_bytes;
  return sum;
}

// Alpa §5.1: min over segmentations of max_l in_bytes(l), s.t. FLOPs(l) ≤
// (1 + eps) · total / L; then min Σ FLOPs(l)²; then min Σ in_bytes; then
// earliest boundaries.
core::StatusOr<LayerClustering> cluster_layers(const ir::Graph& graph,
                                               const LayerClusteringOptions& options) {
  ALPA_RETURN_IF_ERROR(validate_inputs(graph, options));
  ALPA_ASSIGN_OR_RETURN(int64_t num_layers, resolve_num_layers(graph, options));
  const double total = graph.total_flops();
  if (options.num_layers == 0) {  // an automatic L never exceeds what eps allows
    num_layers = largest_feasible_layers(op_flops_of(graph), num_layers, options.eps, total);
  }
  const double bound = (1 + options.eps) * total / static_cast<double>(num_layers);
  SegmentOracle oracle(graph, bound);
  const int64_t best_max = min_max_pass(oracle, num_layers);
  if (best_max == kInfBytes) return flop_bound_error(graph, num_layers, options.eps, total);
  const CostTable h = tie_break_pass(oracle, num_layers, best_max);
  return assemble(graph, oracle, reconstruct(oracle, h, num_layers, best_max));
}

RepeatedBlocks find_repeated_blocks(const ir::Graph& graph) {
  std::map<std::string, std::set<std::string>> children;  // prefix -> indices
  for (const ir::Node& n : graph.nodes()) {
    if (n.is_placeholder() || n.module.empty()) continue;
    size_t begin = 0;
    while (begin <= n.module.size()) {
      size_t end = std::min(n.module.find('.', begin), n.module.size());
      std::string_view part(n.module.data() + begin, end - begin);
      bool integer = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) {
        return c >= '0' && c <= '9';
      });
      if (integer) {
        children[n.module.substr(0, begin == 0 ? 0 : begin - 1)].insert(std::string(part));
        break;  // only the outermost container counts
      }
      begin = end + 1;
    }
  }
  RepeatedBlocks best;
  for (const auto& [prefix, indices] : children) {  // ascending prefix
    const int64_t count = static_cast<int64_t>(indices.size());
    if (count < 2) continue;
    if (count > best.count || (count == best.count && prefix.size() < best.prefix.size())) {
      best = RepeatedBlocks{prefix, count};
    }
  }
  return best;
}

int64_t auto_num_layers(const ir::Graph& graph, int64_t max_layers) {
  const RepeatedBlocks blocks = find_repeated_blocks(graph);
  int64_t layers = blocks.count >= 2 ? blocks.count : 8;
  layers = std::min(layers, std::max<int64_t>(max_layers, 1));
  layers = std::min(layers, count_positive_ops(graph));
  return std::max<int64_t>(layers, 1);
}

}  // namespace alpa::inter_op
