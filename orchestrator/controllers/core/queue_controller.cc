#include "orchestrator/controllers/core/queue_controller.h"

#include "common/log.h"

namespace kelpie::controllers {

QueueController::QueueController(std::string name, ControllerContext& ctx, int max_retries)
    : ctx_(ctx),
      name_(std::move(name)),
      max_retries_(max_retries),
      queue_(std::make_unique<WorkQueue>(name_, DefaultControllerRateLimiter(ctx.clock), ctx.metrics, ctx.clock)) {}

QueueController::~QueueController() { Stop(); }

void QueueController::Run(int workers) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopped_ || !workers_.empty()) return;
  OnRun();
  for (int i = 0; i < std::max(1, workers); ++i) workers_.emplace_back([this] { Work(); });
}

void QueueController::Stop() {
  std::vector<std::thread> workers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) return;
    stopped_ = true;
    workers.swap(workers_);
  }
  OnStop();
  queue_->ShutDown();
  for (auto& t : workers) t.join();
}

void QueueController::Work() {
  for (;;) {
    auto key = queue_->Get();
    if (!key) return;
    absl::Status st = Sync(*key);
    if (st.ok()) {
      queue_->Forget(*key);
    } else if (queue_->NumRequeues(*key) < max_retries_) {
      spdlog::debug("{}: syncing {}: {}; retrying", name_, *key, st.message());
      queue_->AddRateLimited(*key);
    } else {
      spdlog::warn("{}: dropping {} after {} retries: {}", name_, *key, max_retries_, st.message());
      queue_->Forget(*key);
    }
    queue_->Done(*key);
  }
}

}  // namespace kelpie::controllers
