#include "orchestrator/controllers/informer_factory.h"

#include <algorithm>

namespace kelpie::controllers {

SharedInformer& SharedInformerFactory::For(const client::ResourceRef& resource) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string key = resource.ApiVersion() + "/" + resource.resource;
  auto it = informers_.find(key);
  if (it == informers_.end()) {
    InformerOptions options;
    options.resource = resource;
    options.resync_period = resync_period_;
    it = informers_.emplace(key, std::make_unique<SharedInformer>(client_, options)).first;
  }
  return *it->second;
}

void SharedInformerFactory::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [key, informer] : informers_) {
    if (started_[key]) continue;
    informer->Start();
    started_[key] = true;
  }
}

bool SharedInformerFactory::WaitForSync(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [key, informer] : informers_) {
    if (!started_[key]) continue;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (!informer->WaitForSync(std::max(left, std::chrono::milliseconds(0)))) return false;
  }
  return true;
}

void SharedInformerFactory::Stop() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [key, informer] : informers_) {
    if (started_[key]) informer->Stop();
    started_[key] = false;
  }
}

}  // namespace kelpie::controllers
