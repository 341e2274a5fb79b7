// This file declares how the runtime reports a failed collective or p2p
// transfer: one record (which collective, on which group, for which graph
// node or executor action, towards which peers, and what the backend said)
// and one place that raises it. A process may install a hook (alpa_torch's
// Python layer does) that finds out which peer rank failed and throws its
// own exception; without one, or if the hook returns, the error is a
// c10::DistBackendError (torch.distributed.DistBackendError in Python)
// carrying the record's text.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace alpa::runtime {

struct CollectiveFailure {
  std::string collective;  ///< "all_reduce", "all_gather", "send", "recv", ...
  std::string group;       ///< c10d group name
  std::string node;        ///< graph node or executor action ("" if unknown)
  int64_t group_rank = -1; ///< this process's rank in `group`
  int64_t group_size = 0;
  /// Group ranks the operation waited on (p2p: the one peer; empty: every
  /// other member of the group).
  std::vector<int64_t> peers;
  std::string error;  ///< the backend's message
  bool timed_out = false;

  /// One paragraph naming all of the above.
  std::string to_string() const;
};

/// Called with every failure before the runtime throws; it may throw
/// (that exception then propagates instead) or return.
using FailureHook = std::function<void(const CollectiveFailure&)>;

/// Installs `hook` for this process (replacing any earlier one); an empty
/// function removes it. Thread-safe.
void set_failure_hook(FailureHook hook);

/// Runs the hook, then throws c10::DistBackendError with failure.to_string().
[[noreturn]] void raise_failure(const CollectiveFailure& failure);

/// True if `message` (a backend error) says a wait timed out.
bool is_timeout_message(const std::string& message);

}  // namespace alpa::runtime
