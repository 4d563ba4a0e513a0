// The worker loop every workload controller shares: a rate-limited work
// queue of object keys, `workers` threads calling the controller's sync
// function, retries with backoff on error (Forget on success), and a
// Stop that shuts the queue down and joins the threads.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "orchestrator/controllers/work_queue.h"

namespace kelpie::controllers::workloads {

class QueueWorker {
 public:
  using SyncFn = std::function<absl::Status(const std::string& key)>;
  QueueWorker(std::string name, prometheus::Registry* metrics, const Clock& clock, SyncFn sync);
  ~QueueWorker() { Stop(); }

  WorkQueue& queue() { return *queue_; }
  void Run(int workers);
  void Stop();

 private:
  void Work();
  const std::string name_;
  std::unique_ptr<WorkQueue> queue_;
  SyncFn sync_;
  std::mutex mu_;
  std::vector<std::thread> threads_;
};

}  // namespace kelpie::controllers::workloads
