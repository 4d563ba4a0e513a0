// The node addresses NodePort frontends listen on, read from the node's
// interfaces (the addresses that actually arrive on the interfaces the
// NodePort program is attached to).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kelpie::service_proxy {

// IPv4 addresses (dotted, sorted, unique) configured on `interfaces`, in the
// calling thread's network namespace. Interfaces without an address, or
// absent, contribute nothing.
absl::StatusOr<std::vector<std::string>> InterfaceIpv4Addresses(const std::vector<std::string>& interfaces);

// The interface of the IPv4 default route (the lowest metric) in
// `route_table`, the text of /proc/net/route; NotFound without one.
absl::StatusOr<std::string> DefaultRouteInterface(const std::string& route_table);

// Resolves the special name "default-route" in `names` to the interface of
// the default route read from /proc/net/route (the calling process's
// network namespace); other names are kept as they are.
absl::StatusOr<std::vector<std::string>> ResolveNodePortInterfaces(const std::vector<std::string>& names);

}  // namespace kelpie::service_proxy
