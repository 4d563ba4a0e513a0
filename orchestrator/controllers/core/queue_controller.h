// Base of the controllers here: a rate-limited WorkQueue of keys drained by
// worker threads that call Sync(key). A failed Sync is retried with the
// default controller rate limiter (5 ms doubling per item, 10 qps overall)
// up to max_retries times, then dropped until the next change re-adds it.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "orchestrator/controllers/controller.h"
#include "orchestrator/controllers/work_queue.h"

namespace kelpie::controllers {

class QueueController : public Controller {
 public:
  QueueController(std::string name, ControllerContext& ctx, int max_retries = 15);
  ~QueueController() override;

  std::string Name() const override { return name_; }
  void Run(int workers) override;
  void Stop() override;

 protected:
  // Reconciles one key; an error retries it later.
  virtual absl::Status Sync(const std::string& key) = 0;
  // Called from Run before the workers start (e.g. periodic loops).
  virtual void OnRun() {}
  // Called from Stop before the queue shuts down.
  virtual void OnStop() {}

  WorkQueue& queue() { return *queue_; }
  ControllerContext& ctx_;

 private:
  void Work();

  const std::string name_;
  const int max_retries_;
  std::unique_ptr<WorkQueue> queue_;
  std::mutex mu_;
  std::vector<std::thread> workers_;
  bool stopped_ = false;
};

}  // namespace kelpie::controllers
