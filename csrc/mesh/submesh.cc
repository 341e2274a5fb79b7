// This file implements sub-mesh enumeration, logical shapes and placement.
#include "mesh/submesh.h"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

namespace alpa::mesh {
namespace {

bool is_power_of_two(int64_t n) { return n > 0 && (n & (n - 1)) == 0; }

/// Parses a non-negative decimal integer at text[*pos], skipping spaces.
bool read_int(const std::string& text, size_t* pos, int64_t* out) {
  while (*pos < text.size() && text[*pos] == ' ') ++*pos;
  size_t start = *pos;
  int64_t value = 0;
  while (*pos < text.size() && std::isdigit(static_cast<unsigned char>(text[*pos]))) {
    if (value > (int64_t{1} << 40)) return false;
    value = value * 10 + (text[*pos] - '0');
    ++*pos;
  }
  *out = value;
  return *pos > start;
}

bool read_char(const std::string& text, size_t* pos, char c) {
  while (*pos < text.size() && text[*pos] == ' ') ++*pos;
  if (*pos >= text.size() || text[*pos] != c) return false;
  ++*pos;
  return true;
}

core::Status check_shape_fits(const Cluster& cluster, const SubmeshShape& s, size_t stage) {
  const int64_t m = cluster.devices_per_host;
  bool slice = s.num_hosts == 1 && s.devices_per_host >= 1 && s.devices_per_host <= m;
  bool whole_hosts = s.num_hosts >= 1 && s.num_hosts <= cluster.num_hosts && s.devices_per_host == m;
  if (slice || whole_hosts) return core::ok_status();
  return core::invalid_argument(fmt::format(
      "stage {}'s sub-mesh {} does not fit a cluster of {} hosts × {} devices: expected "
      "(1, k) with 1 ≤ k ≤ {} or (h, {}) with 1 ≤ h ≤ {}",
      stage, s.to_string(), cluster.num_hosts, m, m, m, cluster.num_hosts));
}

}  // namespace

std::string SubmeshShape::to_string() const {
  return fmt::format("({}, {})", num_hosts, devices_per_host);
}

core::StatusOr<SubmeshShape> SubmeshShape::parse(const std::string& text) {
  size_t pos = 0;
  SubmeshShape s;
  bool ok = read_char(text, &pos, '(') && read_int(text, &pos, &s.num_hosts) &&
            read_char(text, &pos, ',') && read_int(text, &pos, &s.devices_per_host) &&
            read_char(text, &pos, ')');
  while (ok && pos < text.size() && text[pos] == ' ') ++pos;
  if (!ok || pos != text.size()) {
    return core::parse_error(fmt::format(
        "expected a sub-mesh written as '(hosts, devices_per_host)', e.g. '(1, 4)'; got '{}'", text));
  }
  if (s.num_hosts < 1 || s.devices_per_host < 1) {
    return core::parse_error(fmt::format(
        "sub-mesh '{}' must have at least 1 host and 1 device per host", text));
  }
  return s;
}

std::vector<SubmeshShape> enumerate_submeshes(const Cluster& cluster) {
  std::vector<SubmeshShape> out;
  const int64_t m = cluster.devices_per_host;
  for (int64_t k = 1; k <= m; k *= 2) out.push_back({1, k});
  if (!is_power_of_two(m)) out.push_back({1, m});
  for (int64_t h = 2; h <= cluster.num_hosts; ++h) out.push_back({h, m});
  return out;
}

std::vector<std::array<int64_t, 2>> logical_mesh_shapes(const SubmeshShape& submesh) {
  const int64_t n = submesh.num_devices();
  std::vector<std::array<int64_t, 2>> out = {{n, 1}};
  for (int64_t k = 2; k < n; k *= 2) {
    if (n % k == 0) out.push_back({n / k, k});
  }
  std::array<int64_t, 2> physical = {submesh.num_hosts, submesh.devices_per_host};
  if (physical[0] > 1 && physical[1] > 1 &&
      std::find(out.begin(), out.end(), physical) == out.end()) {
    out.push_back(physical);
  }
  return out;
}

core::StatusOr<std::vector<std::vector<int64_t>>> place_submeshes(
    const Cluster& cluster, const std::vector<SubmeshShape>& stages) {
  ALPA_RETURN_IF_ERROR(cluster.validate());
  const int64_t m = cluster.devices_per_host;
  int64_t total = 0;
  for (size_t i = 0; i < stages.size(); ++i) {
    ALPA_RETURN_IF_ERROR(check_shape_fits(cluster, stages[i], i));
    total += stages[i].num_devices();
  }
  if (total != cluster.num_devices()) {
    return core::invalid_argument(fmt::format(
        "the stages' sub-meshes hold {} devices but the cluster has {} ({} hosts × {}); "
        "every device must be used exactly once",
        total, cluster.num_devices(), cluster.num_hosts, m));
  }
  std::vector<std::vector<int64_t>> out(stages.size());
  int64_t next_host = 0;
  std::vector<size_t> slices;
  for (size_t i = 0; i < stages.size(); ++i) {
    if (stages[i].num_hosts == 1) {
      slices.push_back(i);
      continue;
    }
    for (int64_t d = next_host * m; d < (next_host + stages[i].num_hosts) * m; ++d) {
      out[i].push_back(d);
    }
    next_host += stages[i].num_hosts;
  }
  // First-fit decreasing over the hosts left (Alpa §5.2's covering argument).
  std::stable_sort(slices.begin(), slices.end(), [&](size_t a, size_t b) {
    return stages[a].devices_per_host > stages[b].devices_per_host;
  });
  std::vector<int64_t> used(static_cast<size_t>(cluster.num_hosts), 0);
  for (size_t i : slices) {
    const int64_t k = stages[i].devices_per_host;
    int64_t host = next_host;
    while (host < cluster.num_hosts && used[static_cast<size_t>(host)] + k > m) ++host;
    if (host == cluster.num_hosts) {
      return core::invalid_argument(fmt::format(
          "cannot place stage {}'s sub-mesh {}: no host among hosts {}..{} has {} free "
          "devices left (single-host sub-meshes never straddle hosts); choose slice sizes "
          "that pack into hosts of {} devices",
          i, stages[i].to_string(), next_host, cluster.num_hosts - 1, k, m));
    }
    int64_t first = host * m + used[static_cast<size_t>(host)];
    for (int64_t d = first; d < first + k; ++d) out[i].push_back(d);
    used[static_cast<size_t>(host)] += k;
  }
  return out;
}

}  // namespace alpa::mesh
