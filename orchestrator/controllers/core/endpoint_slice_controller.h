// EndpointSlice controller ("endpointslice"): for every Service with a
// selector, discovery.k8s.io/v1 EndpointSlices listing the selected pods
// that have an IP, with ready/serving/terminating conditions, the ports
// resolved per pod (pods whose named ports resolve differently go to
// different slices), at most max_endpoints_per_slice endpoints per slice.
// Slices carry kubernetes.io/service-name, the managed-by label
// endpointslice-controller.k8s.io and an owner reference to the Service.
//
// Minimal churn: an endpoint stays in the slice it is in; changed endpoints
// are rewritten in place, removed ones leave holes that new endpoints fill
// before any new slice is created, and only slices whose content changed are
// written (creates and updates before deletes, so routing never sees a gap).
// Services without a selector are left alone (their slices are someone
// else's, such as the API server's for `kubernetes`).
//
// Incremental: a sync caused only by pod changes (the common case: a pod
// turning ready or not ready) looks up the one slice holding each changed
// pod's endpoint (an index of slices by pod) and rewrites that endpoint in
// place, without recomputing the Service's other endpoints or touching its
// other slices. Anything that cannot be settled in place (a new endpoint, an
// emptied slice, an endpoint changing address or port group, a Service
// change, slices changed by someone else, a failed write) falls back to the
// full computation below, which gives the same result.
//
// The informer cache may lag behind this controller's own writes; a tracker
// of the versions it wrote makes a sync wait (briefly requeue) until the
// cache has caught up, so slices are never created twice.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "orchestrator/api/selector.h"
#include "orchestrator/controllers/core/queue_controller.h"

namespace kelpie::controllers {

inline constexpr char kServiceNameLabel[] = "kubernetes.io/service-name";
inline constexpr char kManagedByLabel[] = "endpointslice.kubernetes.io/managed-by";
inline constexpr char kEndpointSliceControllerName[] = "endpointslice-controller.k8s.io";

class EndpointSliceController : public QueueController {
 public:
  explicit EndpointSliceController(ControllerContext& ctx, int max_endpoints_per_slice = 100);

 protected:
  absl::Status Sync(const std::string& key) override;

 private:
  void OnSlice(const nlohmann::json& slice, bool deleted);
  // False when the cache does not show this controller's last writes yet.
  bool CacheCaughtUp(const std::string& service_key);
  void Track(const std::string& service_key, const std::string& slice_name, int64_t rv);
  absl::Status DeleteSlicesOf(const std::string& ns, const std::string& service_key);
  void NoteChange(const std::string& service_key, const std::string* pod_key);
  absl::Status FullSync(const std::string& key, const nlohmann::json& svc, const api::LabelSelector& selector);
  // nullopt: the changes need a full sync.
  std::optional<absl::Status> IncrementalSync(const std::string& key, const nlohmann::json& svc,
                                              const api::LabelSelector& selector,
                                              const std::set<std::string>& pod_keys);

  const int max_per_slice_;
  SharedInformer& services_;
  SharedInformer& pods_;
  SharedInformer& slices_;

  std::mutex mu_;
  struct Written {
    int64_t rv;  // resourceVersion written; -1: deleted
    std::chrono::steady_clock::time_point at;
  };
  // service key -> slice name -> last write
  std::map<std::string, std::map<std::string, Written>> written_;
  // What changed since a Service's last sync: the pods, or everything.
  struct Pending {
    bool full = false;
    std::set<std::string> pods;
  };
  std::map<std::string, Pending> pending_;
  // Services fully synced since start: only these may sync incrementally.
  std::set<std::string> synced_;
};

}  // namespace kelpie::controllers
