// This file implements the runtime's one place that raises failed
// collectives and transfers (see failures.h).
#include "runtime/failures.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <mutex>
#include <sstream>

namespace alpa::runtime {
namespace {

std::mutex& hook_mutex() {
  static std::mutex m;
  return m;
}

std::shared_ptr<FailureHook>& hook_slot() {
  static std::shared_ptr<FailureHook> hook;
  return hook;
}

}  // namespace

std::string CollectiveFailure::to_string() const {
  std::ostringstream out;
  out << "alpa: " << collective << " on process group '" << group << "'";
  if (group_rank >= 0) {
    out << " (this process is rank " << group_rank << " of " << group_size << " in it)";
  }
  if (!node.empty()) out << " at " << node;
  out << (timed_out ? " timed out" : " failed");
  if (!peers.empty()) {
    out << " waiting for group rank" << (peers.size() > 1 ? "s" : "");
    for (size_t i = 0; i < peers.size(); ++i) out << (i ? ", " : " ") << peers[i];
  }
  out << ": " << error
      << "\nA peer of this group may have died, hung or failed earlier: check the other ranks' "
         "logs and exit status.";
  return out.str();
}

void set_failure_hook(FailureHook hook) {
  std::lock_guard<std::mutex> lock(hook_mutex());
  hook_slot() = hook ? std::make_shared<FailureHook>(std::move(hook)) : nullptr;
}

void raise_failure(const CollectiveFailure& failure) {
  std::shared_ptr<FailureHook> hook;
  {
    std::lock_guard<std::mutex> lock(hook_mutex());
    hook = hook_slot();
  }
  if (hook) (*hook)(failure);
  C10_THROW_ERROR(DistBackendError, failure.to_string());
}

bool is_timeout_message(const std::string& message) {
  std::string lower(message);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return lower.find("timed out") != std::string::npos ||
         lower.find("timeout") != std::string::npos;
}

}  // namespace alpa::runtime
