// Per-kind behaviour the generic REST handler delegates to, as
// kube-apiserver's REST strategies do: defaulting and validation beyond
// object metadata, and side records written in the same store transaction
// as the object (allocated Service IPs and node ports), so that nothing is
// ever allocated twice, across restarts and across servers.
#pragma once

#include <nlohmann/json.hpp>
#include <vector>

#include "absl/status/status.h"
#include "orchestrator/api/api_error.h"
#include "orchestrator/store/store.h"

namespace kelpie::apiserver {

// Compares and operations added to an object's write transaction.
struct WriteExtras {
  std::vector<store::Compare> compares;
  std::vector<store::Op> ops;
};

class ResourceStrategy {
 public:
  virtual ~ResourceStrategy() = default;

  // Defaults and validates a new object and reserves what it needs. On
  // failure sets `error` and returns non-OK.
  virtual absl::Status PrepareCreate(nlohmann::json& object, WriteExtras* extras,
                                     api::ApiError* error) = 0;
  // Same for an update from `old_object` to `object`.
  virtual absl::Status PrepareUpdate(const nlohmann::json& old_object, nlohmann::json& object,
                                     WriteExtras* extras, api::ApiError* error) = 0;
  // Releases what the object holds when it is deleted.
  virtual void PrepareDelete(const nlohmann::json& object, WriteExtras* extras) = 0;
};

}  // namespace kelpie::apiserver
