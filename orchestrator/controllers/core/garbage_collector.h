// Garbage collector ("garbagecollector"): keeps a graph of every object's
// ownerReferences (informers over every resource the API serves that can
// be listed, watched and deleted, except events) and
//  - deletes an object whose owners are all gone (checked against the API,
//    not only the cache, and by uid: a new owner of the same name is not the
//    old one); owners that still exist keep it, dangling references to gone
//    owners are removed;
//  - background deletion: the owner is gone at once, its dependents follow;
//  - foreground deletion (the API server added the foregroundDeletion
//    finalizer): dependents are deleted first (dependents with dependents of
//    their own in the foreground too), and the finalizer is removed once no
//    dependent with blockOwnerDeletion is left, which deletes the owner;
//  - orphan (the `orphan` finalizer): the owner's reference is removed from
//    every dependent, then the finalizer, so dependents stay.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "orchestrator/controllers/core/api_discovery.h"
#include "orchestrator/controllers/core/queue_controller.h"

namespace kelpie::controllers {

class GarbageCollector : public QueueController {
 public:
  // Discovers the resources to watch (an API call).
  static absl::StatusOr<std::unique_ptr<GarbageCollector>> Create(ControllerContext& ctx);

 protected:
  absl::Status Sync(const std::string& key) override;

 private:
  struct Node {
    const DiscoveredResource* resource = nullptr;
    std::string ns, name, uid;
    nlohmann::json owners = nlohmann::json::array();  // ownerReferences
    std::vector<std::string> finalizers;
    bool deleting = false;
    bool HasFinalizer(const std::string& f) const;
  };

  GarbageCollector(ControllerContext& ctx, std::vector<DiscoveredResource> resources);
  void OnUpsert(const DiscoveredResource* resource, const nlohmann::json& obj);
  void OnDelete(const nlohmann::json& obj);
  const DiscoveredResource* ResourceFor(const std::string& api_version, const std::string& kind) const;

  absl::Status AttemptToDelete(const std::string& uid);
  absl::Status OrphanDependents(const std::string& uid);
  absl::Status DeleteDependentsFirst(const std::string& uid);
  absl::Status RemoveFinalizer(const Node& owner, const std::string& finalizer);
  // Rewrites ownerReferences of `dependent` without the given owner uids.
  absl::Status RemoveOwnerRefs(const Node& dependent, const std::set<std::string>& owner_uids);
  std::optional<Node> NodeByUid(const std::string& uid);
  std::vector<std::string> DependentsOf(const std::string& uid);

  const std::vector<DiscoveredResource> resources_;
  std::mutex mu_;
  std::map<std::string, Node> nodes_;                             // by uid
  std::map<std::string, std::set<std::string>> dependents_;       // owner uid -> dependent uids
};

}  // namespace kelpie::controllers
