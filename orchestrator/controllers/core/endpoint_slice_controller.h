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
// The informer cache may lag behind this controller's own writes; a tracker
// of the versions it wrote makes a sync wait (briefly requeue) until the
// cache has caught up, so slices are never created twice.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

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
};

}  // namespace kelpie::controllers
