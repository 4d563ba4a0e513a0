#include "orchestrator/controllers/workloads/controller_expectations.h"

namespace kelpie::controllers::workloads {

bool ControllerExpectations::Satisfied(const std::string& controller_key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(controller_key);
  if (it == entries_.end()) return true;
  const Entry& e = it->second;
  if (e.adds <= 0 && e.deletes.empty()) return true;
  return std::chrono::steady_clock::now() - e.set_at > ttl_;
}

void ControllerExpectations::ExpectCreations(const std::string& controller_key, int adds) {
  std::lock_guard<std::mutex> lock(mu_);
  Entry& e = entries_[controller_key];
  e.adds = adds;
  e.deletes.clear();
  e.set_at = std::chrono::steady_clock::now();
}

void ControllerExpectations::ExpectDeletions(const std::string& controller_key,
                                             const std::vector<std::string>& pod_keys) {
  std::lock_guard<std::mutex> lock(mu_);
  Entry& e = entries_[controller_key];
  e.adds = 0;
  e.deletes = std::set<std::string>(pod_keys.begin(), pod_keys.end());
  e.set_at = std::chrono::steady_clock::now();
}

void ControllerExpectations::Expect(const std::string& controller_key, int adds,
                                    const std::vector<std::string>& pod_keys) {
  std::lock_guard<std::mutex> lock(mu_);
  Entry& e = entries_[controller_key];
  e.adds = adds;
  e.deletes = std::set<std::string>(pod_keys.begin(), pod_keys.end());
  e.set_at = std::chrono::steady_clock::now();
}

void ControllerExpectations::CreationObserved(const std::string& controller_key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(controller_key);
  if (it != entries_.end() && it->second.adds > 0) --it->second.adds;
}

void ControllerExpectations::DeletionObserved(const std::string& controller_key, const std::string& pod_key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(controller_key);
  if (it != entries_.end()) it->second.deletes.erase(pod_key);
}

void ControllerExpectations::Delete(const std::string& controller_key) {
  std::lock_guard<std::mutex> lock(mu_);
  entries_.erase(controller_key);
}

}  // namespace kelpie::controllers::workloads
