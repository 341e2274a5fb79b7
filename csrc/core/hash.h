// This file implements deterministic 64-bit hashing (FNV-1a) used to key plan
// caches by (graph, cluster, options). Unlike std::hash it is the same on
// every platform, process and run.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

namespace alpa::core {

class Hasher {
 public:
  Hasher& add_bytes(const void* data, size_t size) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < size; ++i) {
      state_ ^= p[i];
      state_ *= kPrime;
    }
    return *this;
  }
  Hasher& add(std::string_view s) {
    add(static_cast<uint64_t>(s.size()));
    return add_bytes(s.data(), s.size());
  }
  Hasher& add(uint64_t v) { return add_bytes(&v, sizeof(v)); }
  Hasher& add(int64_t v) { return add_bytes(&v, sizeof(v)); }
  Hasher& add(double v) { return add_bytes(&v, sizeof(v)); }
  uint64_t digest() const { return state_; }

 private:
  static constexpr uint64_t kOffset = 14695981039346656037ull;
  static constexpr uint64_t kPrime = 1099511628211ull;
  uint64_t state_ = kOffset;
};

/// Hash of a whole string, e.g. a canonical JSON dump.
inline uint64_t hash_string(std::string_view s) {
  return Hasher().add(s).digest();
}

}  // namespace alpa::core
