// This file implements Cluster: the hardware a plan is made for — hosts ×
// devices per host, each device's peak FLOP/s, memory and memory bandwidth,
// and the α-β cost of the links within and across hosts — with presets.
// Planning never needs the cluster to exist; it only needs this description.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/json.h"
#include "core/status.h"

namespace alpa::mesh {

struct DeviceSpec {
  std::string name;
  double peak_flops = 0;        ///< FLOP/s for fp32/tf32 math
  double peak_flops_half = 0;   ///< FLOP/s for bf16/fp16 math
  double memory_bytes = 0;      ///< usable device memory, bytes
  double memory_bandwidth = 0;  ///< bytes/s
};

/// α-β link model: sending B bytes costs α + β·B seconds.
struct LinkSpec {
  double alpha = 0;  ///< latency, seconds
  double beta = 0;   ///< seconds per byte (1 / bandwidth)
};

struct Cluster {
  std::string name;
  int64_t num_hosts = 1;
  int64_t devices_per_host = 1;
  DeviceSpec device;
  LinkSpec intra_host;
  LinkSpec inter_host;

  int64_t num_devices() const { return num_hosts * devices_per_host; }
  int64_t host_of(int64_t device) const { return device / devices_per_host; }

  core::Status validate() const;
  core::Json to_json() const;
  static core::StatusOr<Cluster> from_json(const core::Json& json);
  std::string to_string() const;
};

/// A preset device/link description scaled to `num_hosts` × `devices_per_host`.
/// Names: "a100-40gb" (NVLink + 200 Gb/s InfiniBand), "h100-80gb" (NVLink 4 +
/// 400 Gb/s InfiniBand), "cpu-gloo" (processes on one machine over loopback).
core::StatusOr<Cluster> cluster_preset(const std::string& name, int64_t num_hosts,
                                       int64_t devices_per_host);
std::vector<std::string> cluster_preset_names();

}  // namespace alpa::mesh
