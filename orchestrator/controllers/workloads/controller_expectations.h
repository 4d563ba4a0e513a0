// Kubernetes' ControllerExpectations: what a controller is waiting to see in
// its informer after it created or deleted pods. Until the informer has
// caught up, the controller's view of its pods is stale and acting on it
// would create or delete too many, so sync waits (never overshoots).
// Deletions are tracked by pod key (UIDTrackingControllerExpectations), so
// a pod that is deleted by someone else at the same time is not counted
// twice. Expectations expire after a timeout in case an event is lost.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace kelpie::controllers::workloads {

class ControllerExpectations {
 public:
  explicit ControllerExpectations(std::chrono::seconds ttl = std::chrono::minutes(5)) : ttl_(ttl) {}

  // True when nothing is pending for `controller_key` (or it expired).
  bool Satisfied(const std::string& controller_key) const;
  void ExpectCreations(const std::string& controller_key, int adds);
  void ExpectDeletions(const std::string& controller_key, const std::vector<std::string>& pod_keys);
  // Both at once (a DaemonSet creates on some nodes and deletes on others).
  void Expect(const std::string& controller_key, int adds, const std::vector<std::string>& pod_keys);
  void CreationObserved(const std::string& controller_key);
  // A creation that will not happen (the create call failed).
  void CreationSkipped(const std::string& controller_key) { CreationObserved(controller_key); }
  void DeletionObserved(const std::string& controller_key, const std::string& pod_key);
  void Delete(const std::string& controller_key);

 private:
  struct Entry {
    int adds = 0;
    std::set<std::string> deletes;
    std::chrono::steady_clock::time_point set_at;
  };
  const std::chrono::seconds ttl_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;
};

}  // namespace kelpie::controllers::workloads
