// Runs callbacks at deadlines on one thread: the API server's request
// timeouts. Callbacks must be quick (they answer a request, nothing more).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>

namespace kelpie::apiserver {

class DeadlineScheduler {
 public:
  using Clock = std::chrono::steady_clock;
  DeadlineScheduler();
  // Drops pending callbacks without running them. May be called from a
  // callback (the last owner may let go there).
  ~DeadlineScheduler();

  // Returns an id for Cancel.
  uint64_t Schedule(Clock::time_point deadline, std::function<void()> callback);
  // After Cancel returns the callback has either run or will never run
  // (unless Cancel is called from the callback itself).
  void Cancel(uint64_t id);
  size_t pending();

 private:
  struct State;
  std::shared_ptr<State> state_;  // shared with the thread
  std::thread thread_;
};

}  // namespace kelpie::apiserver
