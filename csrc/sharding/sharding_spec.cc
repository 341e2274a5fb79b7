// This file implements ShardingSpec text form, local shapes and enumeration.
#include "sharding/sharding_spec.h"

#include <algorithm>

#include <fmt/format.h>

namespace alpa::sharding {

void ShardingSpec::set_block(int64_t d, int64_t factor) {
  if (blocks.empty()) {
    if (factor == 1) return;
    blocks.assign(dims.size(), 1);
  }
  blocks[static_cast<size_t>(d)] = factor;
}

std::vector<ShardingSpec::DimPiece> ShardingSpec::pieces(const std::array<int64_t, 2>& mesh_shape,
                                                         const std::array<int64_t, 2>& coord) const {
  std::vector<DimPiece> out;
  for (int64_t d = 0; d < rank(); ++d) {
    DimPiece p;
    p.block = block(d);
    for (int a : dims[static_cast<size_t>(d)]) {
      p.index = p.index * mesh_shape[static_cast<size_t>(a)] + coord[static_cast<size_t>(a)];
      p.count *= mesh_shape[static_cast<size_t>(a)];
    }
    out.push_back(p);
  }
  return out;
}

std::vector<int64_t> ShardingSpec::normalized_blocks() const {
  std::vector<int64_t> b = blocks;
  while (!b.empty() && b.back() == 1) b.pop_back();
  return b;
}

bool ShardingSpec::is_replicated() const {
  if (!partial.empty()) return false;
  return std::all_of(dims.begin(), dims.end(), [](const MeshAxes& a) { return a.empty(); });
}

int64_t ShardingSpec::shards(int64_t d, const mesh::DeviceMesh& mesh) const {
  int64_t n = 1;
  for (int a : dims.at(static_cast<size_t>(d))) n *= mesh.axis_size(a);
  return n;
}

int64_t ShardingSpec::total_shards(const mesh::DeviceMesh& mesh) const {
  int64_t n = 1;
  for (int64_t d = 0; d < rank(); ++d) n *= shards(d, mesh);
  return n;
}

bool ShardingSpec::uses_axis(int a) const { return dim_of_axis(a) >= 0; }

int64_t ShardingSpec::dim_of_axis(int a) const {
  for (size_t d = 0; d < dims.size(); ++d) {
    if (std::find(dims[d].begin(), dims[d].end(), a) != dims[d].end()) {
      return static_cast<int64_t>(d);
    }
  }
  return -1;
}

core::Status ShardingSpec::check(const ir::Shape& global, const mesh::DeviceMesh& mesh) const {
  if (static_cast<int64_t>(global.size()) != rank()) {
    return core::invalid_argument(fmt::format(
        "sharding spec '{}' has {} dims but the tensor {} has {}", to_string(),
        rank(), ir::shape_to_string(global), global.size()));
  }
  std::array<int, 2> used{0, 0};
  auto use = [&](int a) -> core::Status {
    if (a < 0 || a > 1) {
      return core::invalid_argument(fmt::format(
          "sharding spec '{}' names mesh axis {}; meshes have axes 0 and 1", to_string(), a));
    }
    if (++used[static_cast<size_t>(a)] > 1) {
      return core::invalid_argument(fmt::format(
          "sharding spec '{}' uses mesh axis {} twice", to_string(), a));
    }
    return core::ok_status();
  };
  for (const MeshAxes& axes : dims) {
    for (int a : axes) ALPA_RETURN_IF_ERROR(use(a));
  }
  for (int a : partial) ALPA_RETURN_IF_ERROR(use(a));
  if (!blocks.empty() && blocks.size() != dims.size()) {
    return core::invalid_argument(fmt::format("sharding spec '{}' has block factors for {} of {} dims",
                                              to_string(), blocks.size(), dims.size()));
  }
  for (int64_t d = 0; d < rank(); ++d) {
    int64_t n = shards(d, mesh) * block(d);
    if (block(d) < 1 || (block(d) > 1 && dims[static_cast<size_t>(d)].empty())) {
      return core::invalid_argument(fmt::format(
          "sharding spec '{}': a block factor needs a split dim (e.g. S0x3)", to_string()));
    }
    if (global[static_cast<size_t>(d)] % n != 0) {
      return core::invalid_argument(fmt::format(
          "sharding spec '{}' splits dim {} (size {}) into {} pieces on {}, which "
          "does not divide it; pick a spec or mesh whose axis sizes divide the dim",
          to_string(), d, global[static_cast<size_t>(d)], n, mesh.to_string()));
    }
  }
  return core::ok_status();
}

core::StatusOr<ir::Shape> ShardingSpec::local_shape(const ir::Shape& global,
                                                    const mesh::DeviceMesh& mesh) const {
  ALPA_RETURN_IF_ERROR(check(global, mesh));
  ir::Shape local = global;
  for (int64_t d = 0; d < rank(); ++d) local[static_cast<size_t>(d)] /= shards(d, mesh);
  return local;
}

std::string ShardingSpec::to_string() const {
  std::string s;
  for (size_t d = 0; d < dims.size(); ++d) {
    if (dims[d].empty()) {
      s += 'R';
    } else {
      s += 'S';
      for (int a : dims[d]) s += static_cast<char>('0' + a);
      if (block(static_cast<int64_t>(d)) != 1) s += fmt::format("x{}", block(static_cast<int64_t>(d)));
    }
  }
  if (!partial.empty()) {
    s += 'P';
    for (int a : partial) s += static_cast<char>('0' + a);
  }
  return s;
}

core::StatusOr<ShardingSpec> ShardingSpec::parse(std::string_view text) {
  ShardingSpec spec;
  if (text == "-") return spec;
  size_t i = 0;
  bool ok = true;
  auto number = [&](int64_t& out) {  // digits at i; false when there are none
    size_t start = i;
    out = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') out = out * 10 + (text[i++] - '0');
    return i > start;
  };
  auto axes = [&](MeshAxes& out) {
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') out.push_back(text[i++] - '0');
    return !out.empty();
  };
  while (ok && i < text.size()) {
    char c = text[i++];
    if (c == 'R') {
      spec.dims.emplace_back();
    } else if (c == 'S') {
      MeshAxes a;
      ok = axes(a);
      spec.dims.push_back(a);
      if (ok && i < text.size() && text[i] == 'x') {
        ++i;
        int64_t factor = 0;
        ok = number(factor) && factor >= 1;
        if (ok) spec.set_block(static_cast<int64_t>(spec.dims.size()) - 1, factor);
      }
    } else if (c == 'P') {
      ok = axes(spec.partial) && i == text.size();
    } else {
      ok = false;
    }
  }
  if (!ok) {
    return core::invalid_argument(fmt::format(
        "bad sharding spec '{}': expected one token per tensor dim, R or S "
        "followed by mesh axes (e.g. 'S0R', 'RS1', 'S01R', 'RS0x3'), then optionally P "
        "and axes for partial sums", text));
  }
  // A block factor on an early dim recorded blocks only up to that dim.
  if (!spec.blocks.empty()) spec.blocks.resize(spec.dims.size(), 1);
  return spec;
}

std::vector<ShardingSpec> enumerate_specs(const ir::Shape& shape,
                                          const mesh::DeviceMesh& mesh,
                                          const BlockHints& block_hints) {
  int64_t rank = static_cast<int64_t>(shape.size());
  std::vector<ShardingSpec> out;
  // Choice per axis: -1 (unused) or a dim. Both axes on one dim gives S01.
  std::vector<int64_t> choices0{-1}, choices1{-1};
  for (int64_t d = 0; d < rank; ++d) {
    if (mesh.axis_size(0) > 1) choices0.push_back(d);
    if (mesh.axis_size(1) > 1) choices1.push_back(d);
  }
  for (int64_t c0 : choices0) {
    for (int64_t c1 : choices1) {
      ShardingSpec spec = ShardingSpec::replicated(rank);
      if (c0 >= 0) spec.dims[static_cast<size_t>(c0)].push_back(0);
      if (c1 >= 0) spec.dims[static_cast<size_t>(c1)].push_back(1);
      if (!spec.check(shape, mesh).ok()) continue;
      out.push_back(spec);
      for (int64_t d = 0; d < rank; ++d) {
        if (spec.dims[static_cast<size_t>(d)].empty()) continue;
        for (const auto& [size, factor] : block_hints) {
          if (size != shape[static_cast<size_t>(d)]) continue;
          ShardingSpec blocked = spec;
          blocked.set_block(d, factor);
          if (blocked.check(shape, mesh).ok()) out.push_back(std::move(blocked));
        }
      }
    }
  }
  return out;
}

}  // namespace alpa::sharding
