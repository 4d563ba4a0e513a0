// ControllerRefManager decides which objects of one resource (pods,
// ReplicaSets, ControllerRevisions) an owner controls, as Kubernetes'
// BaseControllerRefManager with its Pod/ReplicaSet/ControllerRevision
// variants does, so every workload controller claims the same way:
//   - an object whose controller ownerReference names the owner (by uid)
//     stays the owner's while its labels match the selector (and the
//     optional extra filter); one that stopped matching is released (the
//     reference removed) — unless the owner is being deleted, then it is
//     kept as is for the garbage collector;
//   - an orphan (no controller reference) in the owner's namespace that
//     matches is adopted (a controller ownerReference with
//     blockOwnerDeletion), unless the owner or the orphan is being deleted
//     or the selector is empty (an empty selector adopts nothing);
//   - objects controlled by someone else are left alone.
// Every adoption and release is a merge patch carrying the object's
// resourceVersion, so it fails rather than overwrites a concurrent change.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include <nlohmann/json.hpp>

#include "orchestrator/api/selector.h"
#include "orchestrator/client/rest_client.h"
#include "orchestrator/controllers/shared_informer.h"

namespace kelpie::controllers::workloads {

// Index names the workload controllers add to shared informers.
inline constexpr char kControllerUidIndex[] = "workloads/controller-uid";
inline constexpr char kOrphanNamespaceIndex[] = "workloads/orphan-namespace";
inline constexpr char kNamespaceIndexName[] = "workloads/namespace";
// Values: the controller ownerReference's uid; the namespace of objects
// without a controller.
std::vector<std::string> ControllerUidIndex(const nlohmann::json& obj);
std::vector<std::string> OrphanNamespaceIndex(const nlohmann::json& obj);

class ControllerRefManager {
 public:
  // Claims objects of `resource` kept by `informer`, whose store gets the
  // two indexes above (call from a controller's constructor, before the
  // informers start).
  ControllerRefManager(client::RestClient& client, client::ResourceRef resource, SharedInformer& informer);

  struct Owner {
    const nlohmann::json& object;
    std::string api_version;  // of the owner, e.g. apps/v1
    std::string kind;         // e.g. StatefulSet
  };
  // An extra condition an object must meet to be claimed (the StatefulSet
  // claims only pods named after it).
  using Filter = std::function<bool(const nlohmann::json& obj)>;

  // The objects `owner` controls after adoption and release. Objects that
  // vanished meanwhile are skipped; other write failures are returned after
  // every object was tried.
  absl::StatusOr<std::vector<nlohmann::json>> Claim(const Owner& owner, const api::LabelSelector& selector,
                                                    const Filter& filter = nullptr);

 private:
  absl::StatusOr<nlohmann::json> WriteOwnerReferences(const nlohmann::json& obj, const nlohmann::json& refs);

  client::RestClient& client_;
  const client::ResourceRef resource_;
  SharedInformer& informer_;
};

}  // namespace kelpie::controllers::workloads
