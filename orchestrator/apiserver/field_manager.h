// Field ownership as kube-apiserver tracks it in metadata.managedFields:
// server-side apply (PATCH application/apply-patch+yaml) and the Update
// entries every other write records.
//
// Apply merges the applied configuration into the live object, removes the
// fields the same manager applied before and no longer sets (unless another
// manager owns them too), and refuses with a 409 Conflict Status — one
// FieldManagerConflict cause per field — to change a field another manager
// owns, unless forced, which moves the ownership. Ordinary writes (create,
// update, patch) take ownership of what they change, as an Update entry of
// their manager (the fieldManager parameter, else the user agent's program
// name, e.g. `kubectl-client-side-apply`).
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "absl/status/statusor.h"
#include "orchestrator/api/api_error.h"
#include "orchestrator/api/schema/schema.h"

namespace kelpie::apiserver {

class FieldManager {
 public:
  struct Options {
    std::string manager;
    std::string api_version;   // of the request: "apps/v1", "v1"
    std::string subresource;   // "" or "status"
    // The kind has a status subresource: writes to the main resource own
    // no .status fields (the status subresource owns only those).
    bool has_status_subresource = false;
    bool force = false;        // apply only
    std::string now;           // RFC 3339 time recorded in the entries
  };

  // `root` is the kind's schema type, or null for a kind without schema.
  FieldManager(const api::schema::Schema& schema, const api::schema::TypeDef* root)
      : schema_(schema), root_(root) {}

  // Applies `config` to `live` (null when the object does not exist yet).
  // Returns the new object with its managedFields, or fills `error`: 409
  // Conflict with one cause per conflicting field, 400 for a configuration
  // the schema cannot type (a keyed list item without its keys).
  absl::StatusOr<nlohmann::json> Apply(const nlohmann::json* live, const nlohmann::json& config,
                                       const Options& options, api::ApiError* error) const;

  // Records an ordinary write of `next` over `live` (null on create). The
  // managedFields the write carries are the starting point when it changed
  // them (`[{}]` clears them), else those of the live object. Never fails:
  // managedFields that cannot be computed are dropped, as kube-apiserver does.
  nlohmann::json Update(const nlohmann::json* live, nlohmann::json next, const Options& options) const;

  // kube-apiserver's default manager of a write without fieldManager: the
  // user agent up to its first '/', printable characters, at most 128 bytes.
  static std::string ManagerFromUserAgent(std::string_view user_agent);
  // `name` without control characters and invalid UTF-8, cut at 128 bytes:
  // what an Update entry records for a fieldManager it is given.
  static std::string PrintableManager(std::string_view name);

  // fieldManager of an apply as kube-apiserver validates it: at most 128
  // printable characters (valid UTF-8). Returns the problem, or "".
  static std::string ValidateManagerName(std::string_view manager);

 private:
  absl::StatusOr<nlohmann::json> ApplyUnchecked(const nlohmann::json* live, const nlohmann::json& config,
                                                const Options& options, api::ApiError* error) const;
  nlohmann::json UpdateUnchecked(const nlohmann::json* live, nlohmann::json next, const Options& options) const;

  const api::schema::Schema& schema_;
  const api::schema::TypeDef* root_;
};

}  // namespace kelpie::apiserver
