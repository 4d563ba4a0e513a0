// The node owns the whole service CIDR: an `unreachable` route for it makes
// a connection to an unallocated service address fail on the node
// (EHOSTUNREACH) instead of following the default route out of it.
// Allocated addresses never reach routing: the cgroup connect/sendmsg hooks
// rewrite them to a backend first.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace kelpie::service_proxy {

// Installs (or replaces) `unreachable <cidr>` in the main table of the
// network namespace `netns` (a name under /run/netns; empty: the current
// one). Idempotent.
absl::Status EnsureServiceCidrRoute(const std::string& cidr, const std::string& netns = "");

// Removes that route; absent is fine.
absl::Status RemoveServiceCidrRoute(const std::string& cidr, const std::string& netns = "");

}  // namespace kelpie::service_proxy
