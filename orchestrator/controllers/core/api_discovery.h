// The resources the API server serves (GET /api/v1, /apis and each group's
// preferred version), for controllers that handle every kind: namespace
// deletion and garbage collection.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "orchestrator/client/rest_client.h"

namespace kelpie::controllers {

struct DiscoveredResource {
  client::ResourceRef ref;
  std::string kind;
  std::vector<std::string> verbs;
  bool Has(const std::string& verb) const;
};

// Top-level resources (no subresources) of every group's preferred version.
absl::StatusOr<std::vector<DiscoveredResource>> DiscoverResources(client::RestClient& client);

}  // namespace kelpie::controllers
