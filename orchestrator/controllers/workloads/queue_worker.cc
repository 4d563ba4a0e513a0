#include "orchestrator/controllers/workloads/queue_worker.h"

#include "common/log.h"
#include "orchestrator/controllers/rate_limiter.h"

namespace kelpie::controllers::workloads {

QueueWorker::QueueWorker(std::string name, prometheus::Registry* metrics, const Clock& clock, SyncFn sync)
    : name_(std::move(name)),
      queue_(std::make_unique<WorkQueue>(name_, DefaultControllerRateLimiter(clock), metrics, clock)),
      sync_(std::move(sync)) {}

void QueueWorker::Run(int workers) {
  std::lock_guard<std::mutex> lock(mu_);
  for (int i = 0; i < std::max(1, workers); ++i) threads_.emplace_back([this] { Work(); });
}

void QueueWorker::Stop() {
  queue_->ShutDown();
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    threads.swap(threads_);
  }
  for (auto& t : threads) t.join();
}

void QueueWorker::Work() {
  while (auto key = queue_->Get()) {
    absl::Status s = sync_(*key);
    if (s.ok()) {
      queue_->Forget(*key);
    } else {
      spdlog::debug("{}: sync {} failed, retrying: {}", name_, *key, s.ToString());
      queue_->AddRateLimited(*key);
    }
    queue_->Done(*key);
  }
}

}  // namespace kelpie::controllers::workloads
