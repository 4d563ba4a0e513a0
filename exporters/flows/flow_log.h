// The flow log: every flow the observer sees, as one JSON object per line
// (the same objects `kelpie observe -o json` prints) in a file rotated by
// size. The observer calls it on the pipeline's thread, so it only queues:
// a writer thread of its own formats and writes, and a full queue drops
// flows (counted in kelpie_flow_log_dropped_total) instead of slowing the
// pipeline down.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "common/rotating_file.h"
#include "exporters/flows/flow_observer.h"

namespace prometheus {
class Registry;
class Counter;
}  // namespace prometheus

namespace kelpie::flows {

struct FlowLogOptions {
  RotatingFileOptions file;
  // Flows waiting for the writer; beyond this they are dropped.
  size_t max_queued = 65536;
  // Only flows matching this are written (empty: all).
  FlowQuery query;
};

class FlowLog {
 public:
  // Opens the file and subscribes to `observer`; the log must be stopped
  // (or destroyed) before the observer goes.
  static absl::StatusOr<std::unique_ptr<FlowLog>> Start(FlowLogOptions options, FlowObserver& observer,
                                                        prometheus::Registry* registry);
  ~FlowLog();
  // Unsubscribes, writes what is queued and closes the file.
  void Stop();
  // Waits until every flow queued so far is written (tests).
  void Flush();

  uint64_t written() const;
  uint64_t dropped() const;

 private:
  FlowLog(FlowLogOptions options, FlowObserver& observer) : options_(std::move(options)), observer_(observer) {}
  void Enqueue(const Flow& flow);
  void Run();

  FlowLogOptions options_;
  FlowObserver& observer_;
  std::unique_ptr<RotatingFile> file_;
  uint64_t subscription_ = 0;
  prometheus::Counter* written_total_ = nullptr;
  prometheus::Counter* dropped_total_ = nullptr;
  prometheus::Counter* errors_total_ = nullptr;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable flushed_cv_;
  std::deque<Flow> queue_;
  uint64_t enqueued_ = 0;
  uint64_t written_ = 0;
  uint64_t dropped_ = 0;
  bool stopping_ = false;
  std::thread writer_;
};

}  // namespace kelpie::flows
