// This file implements cross-mesh resharding plans (Alpa §6): per tensor
// dim, the common refinement of the source and destination cuts; per box of
// the product of those refinements, one transfer to each destination
// device that holds it, from a chosen source replica; the text form; and
// the α-β time estimate.
#include "plan/cross_mesh.h"

#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "core/check.h"

namespace alpa::plan {
namespace {

using sharding::ShardingSpec;

// How one tensor dim of `size` elements is cut on a mesh (sharding_spec.h):
// `count` pieces; with block factor `block` the dim is read as
// [block, size/block] and the inner part is split, so piece i is the union
// of `block` runs of `run` elements: its k-th run starts at
// k·(size/block) + i·run globally and sits at k·run in the local shard.
struct DimLayout {
  int64_t size = 0;
  int64_t count = 1;
  int64_t block = 1;
  int64_t run = 0;  ///< size / (count · block)
};

DimLayout dim_layout(const ShardingSpec& spec, int64_t d, const mesh::DeviceMesh& mesh,
                     int64_t size) {
  DimLayout l;
  l.size = size;
  l.count = spec.shards(d, mesh);
  l.block = spec.block(d);
  l.run = size / (l.count * l.block);
  return l;
}

// Piece holding global element `x` of a dim, and x's offset in that piece.
struct DimPlace {
  int64_t piece = 0;
  int64_t local = 0;
};

DimPlace place(const DimLayout& l, int64_t x) {
  int64_t block_len = l.size / l.block;
  int64_t k = x / block_len;
  int64_t r = x % block_len;
  return {r / l.run, k * l.run + r % l.run};
}

// A maximal range of one dim held by one source piece and one destination
// piece, contiguous in both local shards (so each side is one narrow).
struct DimSegment {
  Range global;
  int64_t src_piece = 0;
  int64_t src_local = 0;
  int64_t dst_piece = 0;
  int64_t dst_local = 0;
};

std::vector<DimSegment> dim_segments(const DimLayout& src, const DimLayout& dst) {
  std::vector<int64_t> cuts;
  for (int64_t x = 0; x < src.size; x += src.run) cuts.push_back(x);
  for (int64_t x = 0; x < dst.size; x += dst.run) cuts.push_back(x);
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  cuts.push_back(src.size);
  std::vector<DimSegment> out;
  for (size_t i = 0; i + 1 < cuts.size(); ++i) {
    DimPlace s = place(src, cuts[i]);
    DimPlace t = place(dst, cuts[i]);
    if (!out.empty()) {
      DimSegment& last = out.back();
      int64_t len = last.global.size();
      if (last.src_piece == s.piece && last.dst_piece == t.piece &&
          last.src_local + len == s.local && last.dst_local + len == t.local) {
        last.global.end = cuts[i + 1];
        continue;
      }
    }
    out.push_back(DimSegment{Range{cuts[i], cuts[i + 1]}, s.piece, s.local, t.piece, t.local});
  }
  return out;
}

// Per dim, the piece index of the device at mesh coordinate `c`: mixed
// radix over the dim's mesh axes in spec order (S01: c0·n1 + c1).
std::vector<int64_t> piece_indices(const ShardingSpec& spec, const mesh::DeviceMesh& mesh,
                                   const std::array<int64_t, 2>& c) {
  std::vector<int64_t> out;
  for (const sharding::MeshAxes& axes : spec.dims) {
    int64_t index = 0;
    for (int a : axes) index = index * mesh.axis_size(a) + c[static_cast<size_t>(a)];
    out.push_back(index);
  }
  return out;
}

// Piece tuple -> the devices holding it, ascending ids.
using Holders = std::map<std::vector<int64_t>, std::vector<int64_t>>;

Holders holders_of(const ShardingSpec& spec, const mesh::DeviceMesh& mesh) {
  Holders out;
  for (int64_t k = 0; k < mesh.num_devices(); ++k) {
    out[piece_indices(spec, mesh, mesh.coordinate(k))].push_back(
        mesh.device_ids()[static_cast<size_t>(k)]);
  }
  for (auto& entry : out) std::sort(entry.second.begin(), entry.second.end());
  return out;
}

double link_seconds(const mesh::Cluster& cluster, int64_t src, int64_t dst, int64_t bytes) {
  if (src == dst) return 0;
  const mesh::LinkSpec& link =
      cluster.host_of(src) == cluster.host_of(dst) ? cluster.intra_host : cluster.inter_host;
  return link.alpha + link.beta * static_cast<double>(bytes);
}

// The destination itself when it holds the box; else the holder whose send
// queue would finish this transfer first (ties: lowest id). Charges it.
int64_t choose_sender(const std::vector<int64_t>& holders, int64_t dst, int64_t bytes,
                      const mesh::Cluster& cluster, std::map<int64_t, double>& queue) {
  if (std::binary_search(holders.begin(), holders.end(), dst)) return dst;
  int64_t best = -1;
  double best_finish = 0;
  for (int64_t h : holders) {
    double finish = queue[h] + link_seconds(cluster, h, dst, bytes);
    if (best < 0 || finish < best_finish) {
      best = h;
      best_finish = finish;
    }
  }
  ALPA_CHECK(best >= 0, "no source device holds a piece needed by device {}", dst);
  queue[best] = best_finish;
  return best;
}

core::Status check_side(const char* side, const ir::Shape& shape, const mesh::DeviceMesh& mesh,
                        const ShardingSpec& spec) {
  if (!spec.partial.empty()) {
    return core::invalid_argument(fmt::format(
        "cross-mesh resharding: the {} spec '{}' holds partial sums (P); the sender must "
        "reduce first (all-reduce or reduce-scatter on its own mesh), then reshard a spec "
        "without P", side, spec.to_string()));
  }
  return spec.check(shape, mesh).with_context(fmt::format("cross-mesh resharding {}", side));
}

// Builds the transfers of one box (one segment per dim) for all its receivers.
void add_box_transfers(const std::vector<const DimSegment*>& segs, int64_t itemsize,
                       const Holders& src_holders, const Holders& dst_holders,
                       const mesh::Cluster& cluster, std::map<int64_t, double>& queue,
                       std::vector<Transfer>& out) {
  std::vector<int64_t> src_key, dst_key;
  Transfer t;
  for (const DimSegment* s : segs) {
    src_key.push_back(s->src_piece);
    dst_key.push_back(s->dst_piece);
    t.box.push_back(s->global);
    t.src_local.push_back(Range{s->src_local, s->src_local + s->global.size()});
    t.dst_local.push_back(Range{s->dst_local, s->dst_local + s->global.size()});
  }
  t.bytes = box_numel(t.box) * itemsize;
  auto senders = src_holders.find(src_key);
  auto receivers = dst_holders.find(dst_key);
  ALPA_CHECK(senders != src_holders.end() && receivers != dst_holders.end(),
             "piece tuple missing from a mesh");
  for (int64_t dst : receivers->second) {
    t.dst_device = dst;
    t.src_device = choose_sender(senders->second, dst, t.bytes, cluster, queue);
    out.push_back(t);
  }
}

}  // namespace

int64_t box_numel(const Box& box) {
  int64_t n = 1;
  for (const Range& r : box) n *= r.size();
  return n;
}

std::string box_to_string(const Box& box) {
  std::string s = "[";
  for (size_t d = 0; d < box.size(); ++d) {
    s += fmt::format("{}{}:{}", d ? ", " : "", box[d].begin, box[d].end);
  }
  return s + "]";
}

core::StatusOr<CrossMeshPlan> plan_cross_mesh(const ir::Shape& shape, int64_t itemsize,
                                              const mesh::DeviceMesh& src_mesh,
                                              const ShardingSpec& src_spec,
                                              const mesh::DeviceMesh& dst_mesh,
                                              const ShardingSpec& dst_spec) {
  if (itemsize < 1) {
    return core::invalid_argument(fmt::format(
        "cross-mesh resharding: itemsize must be at least 1 byte, got {}", itemsize));
  }
  ALPA_RETURN_IF_ERROR(check_side("source", shape, src_mesh, src_spec));
  ALPA_RETURN_IF_ERROR(check_side("destination", shape, dst_mesh, dst_spec));
  CrossMeshPlan plan;
  plan.shape = shape;
  plan.itemsize = itemsize;
  if (std::any_of(shape.begin(), shape.end(), [](int64_t n) { return n == 0; })) return plan;

  std::vector<std::vector<DimSegment>> segments;
  for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d) {
    int64_t size = shape[static_cast<size_t>(d)];
    segments.push_back(dim_segments(dim_layout(src_spec, d, src_mesh, size),
                                    dim_layout(dst_spec, d, dst_mesh, size)));
  }
  Holders src_holders = holders_of(src_spec, src_mesh);
  Holders dst_holders = holders_of(dst_spec, dst_mesh);
  std::map<int64_t, double> queue;  // sender -> seconds of sends so far
  // Odometer over the product of the per-dim segments, last dim fastest.
  std::vector<size_t> at(shape.size(), 0);
  while (true) {
    std::vector<const DimSegment*> box;
    for (size_t d = 0; d < at.size(); ++d) box.push_back(&segments[d][at[d]]);
    add_box_transfers(box, itemsize, src_holders, dst_holders, src_mesh.cluster(), queue,
                      plan.transfers);
    size_t d = at.size();
    while (d > 0 && ++at[d - 1] == segments[d - 1].size()) at[--d] = 0;
    if (d == 0) break;
  }
  std::sort(plan.transfers.begin(), plan.transfers.end(), [](const Transfer& a, const Transfer& b) {
    if (a.dst_device != b.dst_device) return a.dst_device < b.dst_device;
    if (a.src_device != b.src_device) return a.src_device < b.src_device;
    return a.box < b.box;
  });
  return plan;
}

int64_t CrossMeshPlan::network_bytes() const {
  int64_t total = 0;
  for (const Transfer& t : transfers) {
    if (!t.is_local_copy()) total += t.bytes;
  }
  return total;
}

std::vector<LinkBytes> CrossMeshPlan::link_bytes() const {
  std::map<std::pair<int64_t, int64_t>, int64_t> links;
  for (const Transfer& t : transfers) {
    if (!t.is_local_copy()) links[{t.src_device, t.dst_device}] += t.bytes;
  }
  std::vector<LinkBytes> out;
  for (const auto& [pair, bytes] : links) out.push_back(LinkBytes{pair.first, pair.second, bytes});
  return out;
}

DeviceSchedule CrossMeshPlan::schedule_of(int64_t device) const {
  DeviceSchedule s;
  for (size_t i = 0; i < transfers.size(); ++i) {
    const Transfer& t = transfers[i];
    int64_t index = static_cast<int64_t>(i);
    if (t.is_local_copy()) {
      if (t.src_device == device) s.local_copies.push_back(index);
    } else if (t.src_device == device) {
      s.sends.push_back(index);
    } else if (t.dst_device == device) {
      s.receives.push_back(index);
    }
  }
  return s;
}

double cross_mesh_seconds(const CrossMeshPlan& plan, const mesh::Cluster& cluster) {
  std::map<int64_t, double> send, recv;
  for (const Transfer& t : plan.transfers) {
    double s = link_seconds(cluster, t.src_device, t.dst_device, t.bytes);
    send[t.src_device] += s;
    recv[t.dst_device] += s;
  }
  double worst = 0;
  for (const auto& entry : send) worst = std::max(worst, entry.second);
  for (const auto& entry : recv) worst = std::max(worst, entry.second);
  return worst;
}

// ---- text form ----------------------------------------------------------------

std::string Transfer::to_string() const {
  return fmt::format("dev {} -> dev {}: {} {} B; local {} -> {}", src_device, dst_device,
                     box_to_string(box), bytes, box_to_string(src_local),
                     box_to_string(dst_local));
}

std::string CrossMeshPlan::to_string() const {
  std::string s = fmt::format("cross-mesh plan for {} x {} B: {} transfers\n",
                              ir::shape_to_string(shape), itemsize, transfers.size());
  for (const Transfer& t : transfers) s += t.to_string() + "\n";
  return s;
}

namespace {

// A cursor over text being parsed; every read reports success.
struct Cursor {
  std::string_view text;
  size_t pos = 0;

  bool literal(std::string_view s) {
    if (text.substr(pos, s.size()) != s) return false;
    pos += s.size();
    return true;
  }
  bool integer(int64_t& out) {
    size_t start = pos;
    bool negative = pos < text.size() && text[pos] == '-';
    if (negative) ++pos;
    out = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      out = out * 10 + (text[pos++] - '0');
    }
    if (negative) out = -out;
    return pos > start + (negative ? 1 : 0);
  }
  bool box(Box& out) {
    out.clear();
    if (!literal("[")) return false;
    if (literal("]")) return true;
    do {
      Range r;
      if (!integer(r.begin) || !literal(":") || !integer(r.end)) return false;
      out.push_back(r);
    } while (literal(", "));
    return literal("]");
  }
  bool shape(ir::Shape& out) {
    out.clear();
    if (!literal("[")) return false;
    if (literal("]")) return true;
    do {
      int64_t n = 0;
      if (!integer(n)) return false;
      out.push_back(n);
    } while (literal(","));
    return literal("]");
  }
  bool done() const { return pos == text.size(); }
};

bool parse_transfer(std::string_view line, Transfer& t) {
  Cursor c{line};
  return c.literal("dev ") && c.integer(t.src_device) && c.literal(" -> dev ") &&
         c.integer(t.dst_device) && c.literal(": ") && c.box(t.box) && c.literal(" ") &&
         c.integer(t.bytes) && c.literal(" B; local ") && c.box(t.src_local) &&
         c.literal(" -> ") && c.box(t.dst_local) && c.done();
}

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    size_t end = text.find('\n');
    lines.push_back(text.substr(0, end));
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return lines;
}

}  // namespace

core::StatusOr<Box> parse_box(std::string_view text) {
  Cursor c{text};
  Box box;
  if (!c.box(box) || !c.done()) {
    return core::parse_error(fmt::format(
        "bad box '{}': expected '[begin:end, ...]' with one range per dim, e.g. '[0:4, 0:8]'",
        text));
  }
  return box;
}

core::StatusOr<CrossMeshPlan> CrossMeshPlan::parse(std::string_view text) {
  std::vector<std::string_view> lines = split_lines(text);
  CrossMeshPlan plan;
  int64_t count = 0;
  Cursor header{lines.empty() ? std::string_view() : lines[0]};
  if (!(header.literal("cross-mesh plan for ") && header.shape(plan.shape) &&
        header.literal(" x ") && header.integer(plan.itemsize) && header.literal(" B: ") &&
        header.integer(count) && header.literal(" transfers") && header.done())) {
    return core::parse_error(fmt::format(
        "bad cross-mesh plan header '{}': expected 'cross-mesh plan for [4,4] x 4 B: 2 "
        "transfers'", lines.empty() ? "" : lines[0]));
  }
  for (size_t i = 1; i < lines.size(); ++i) {
    Transfer t;
    if (!parse_transfer(lines[i], t)) {
      return core::parse_error(fmt::format(
          "bad transfer on line {} '{}': expected 'dev 0 -> dev 2: [0:2, 0:4] 32 B; local "
          "[0:2, 0:4] -> [0:2, 0:4]'", i + 1, lines[i]));
    }
    plan.transfers.push_back(std::move(t));
  }
  if (static_cast<int64_t>(plan.transfers.size()) != count) {
    return core::parse_error(fmt::format("cross-mesh plan header announces {} transfers, got {}",
                                         count, plan.transfers.size()));
  }
  return plan;
}

}  // namespace alpa::plan
