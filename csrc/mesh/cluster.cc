// This file implements Cluster validation, presets and JSON.
#include "mesh/cluster.h"

#include <cmath>

#include <fmt/format.h>

namespace alpa::mesh {

namespace {
constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
constexpr double kGB = 1e9;

bool positive(double v) { return std::isfinite(v) && v > 0; }
}  // namespace

core::Status Cluster::validate() const {
  if (num_hosts < 1 || devices_per_host < 1) {
    return core::invalid_argument(fmt::format(
        "cluster '{}' has {} hosts × {} devices; both must be at least 1", name,
        num_hosts, devices_per_host));
  }
  if (!positive(device.peak_flops) || !positive(device.memory_bytes) ||
      !positive(device.memory_bandwidth)) {
    return core::invalid_argument(fmt::format(
        "cluster '{}': device peak_flops, memory_bytes and memory_bandwidth "
        "must be positive (got {}, {}, {})", name, device.peak_flops,
        device.memory_bytes, device.memory_bandwidth));
  }
  for (const LinkSpec* l : {&intra_host, &inter_host}) {
    if (!(l->alpha >= 0) || !(l->beta >= 0) || !std::isfinite(l->alpha) ||
        !std::isfinite(l->beta)) {
      return core::invalid_argument(fmt::format(
          "cluster '{}': link alpha/beta must be finite and >= 0 (got {}, {})",
          name, l->alpha, l->beta));
    }
  }
  return core::ok_status();
}

std::vector<std::string> cluster_preset_names() {
  return {"a100-40gb", "h100-80gb", "cpu-gloo"};
}

core::StatusOr<Cluster> cluster_preset(const std::string& name, int64_t num_hosts,
                                       int64_t devices_per_host) {
  Cluster c;
  c.name = name;
  c.num_hosts = num_hosts;
  c.devices_per_host = devices_per_host;
  if (name == "a100-40gb") {
    c.device = {"A100-SXM4-40GB", 156e12, 312e12, 40 * kGiB, 1555 * kGB};
    c.intra_host = {5e-6, 1.0 / (300 * kGB)};   // NVLink 3, per direction
    c.inter_host = {1e-5, 1.0 / (25 * kGB)};    // 200 Gb/s InfiniBand per GPU
  } else if (name == "h100-80gb") {
    c.device = {"H100-SXM5-80GB", 494e12, 989e12, 80 * kGiB, 3350 * kGB};
    c.intra_host = {4e-6, 1.0 / (450 * kGB)};   // NVLink 4, per direction
    c.inter_host = {8e-6, 1.0 / (50 * kGB)};    // 400 Gb/s InfiniBand per GPU
  } else if (name == "cpu-gloo") {
    c.device = {"CPU process", 50e9, 50e9, 4 * kGiB, 10 * kGB};
    c.intra_host = {3e-5, 1.0 / (2 * kGB)};     // Gloo over loopback TCP
    c.inter_host = {1e-4, 1.0 / (1 * kGB)};
  } else {
    return core::invalid_argument(fmt::format(
        "unknown cluster preset '{}' (known: {})", name,
        fmt::join(cluster_preset_names(), ", ")));
  }
  ALPA_RETURN_IF_ERROR(c.validate());
  return c;
}

core::Json Cluster::to_json() const {
  using core::Json;
  auto link = [](const LinkSpec& l) { return Json::object({{"alpha", l.alpha}, {"beta", l.beta}}); };
  return Json::object({
      {"name", name},
      {"num_hosts", num_hosts},
      {"devices_per_host", devices_per_host},
      {"device", Json::object({{"name", device.name},
                               {"peak_flops", device.peak_flops},
                               {"peak_flops_half", device.peak_flops_half},
                               {"memory_bytes", device.memory_bytes},
                               {"memory_bandwidth", device.memory_bandwidth}})},
      {"intra_host", link(intra_host)},
      {"inter_host", link(inter_host)},
  });
}

core::StatusOr<Cluster> Cluster::from_json(const core::Json& j) {
  Cluster c;
  ALPA_ASSIGN_OR_RETURN(c.name, core::json_get_string(j, "name", "cluster"));
  ALPA_ASSIGN_OR_RETURN(c.num_hosts, core::json_get_int(j, "num_hosts", "cluster"));
  ALPA_ASSIGN_OR_RETURN(c.devices_per_host, core::json_get_int(j, "devices_per_host", "cluster"));
  ALPA_ASSIGN_OR_RETURN(const core::Json* d, core::json_member(j, "device", "cluster"));
  ALPA_ASSIGN_OR_RETURN(c.device.name, core::json_get_string(*d, "name", "cluster.device"));
  ALPA_ASSIGN_OR_RETURN(c.device.peak_flops, core::json_get_double(*d, "peak_flops", "cluster.device"));
  ALPA_ASSIGN_OR_RETURN(c.device.peak_flops_half, core::json_get_double(*d, "peak_flops_half", "cluster.device"));
  ALPA_ASSIGN_OR_RETURN(c.device.memory_bytes, core::json_get_double(*d, "memory_bytes", "cluster.device"));
  ALPA_ASSIGN_OR_RETURN(c.device.memory_bandwidth, core::json_get_double(*d, "memory_bandwidth", "cluster.device"));
  for (auto [key, link] : {std::pair{"intra_host", &c.intra_host}, std::pair{"inter_host", &c.inter_host}}) {
    ALPA_ASSIGN_OR_RETURN(const core::Json* l, core::json_member(j, key, "cluster"));
    ALPA_ASSIGN_OR_RETURN(link->alpha, core::json_get_double(*l, "alpha", key));
    ALPA_ASSIGN_OR_RETURN(link->beta, core::json_get_double(*l, "beta", key));
  }
  ALPA_RETURN_IF_ERROR(c.validate());
  return c;
}

std::string Cluster::to_string() const {
  return fmt::format("{} × {} {} ({:.0f} TFLOP/s, {:.0f} GiB; intra α={:.1e}s "
                     "{:.0f} GB/s, inter α={:.1e}s {:.0f} GB/s)",
                     num_hosts, devices_per_host, device.name, device.peak_flops / 1e12,
                     device.memory_bytes / kGiB, intra_host.alpha,
                     intra_host.beta > 0 ? 1e-9 / intra_host.beta : 0.0,
                     inter_host.alpha, inter_host.beta > 0 ? 1e-9 / inter_host.beta : 0.0);
}

}  // namespace alpa::mesh
