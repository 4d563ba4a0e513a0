// A fixed pool of worker threads that runs one index loop at a time in
// chunks, the calling thread taking part. Chunks are claimed in increasing
// order and each claimed chunk runs to its end, so a loop stopped early by
// `stop` has processed exactly the indices below some bound: callers can
// then pick results in index order and stay deterministic.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace kelpie::scheduler {

class Parallelizer {
 public:
  // `parallelism` threads work on a loop, including the caller.
  explicit Parallelizer(int parallelism);
  ~Parallelizer();
  Parallelizer(const Parallelizer&) = delete;
  Parallelizer& operator=(const Parallelizer&) = delete;

  // Calls fn(i) for i in [0, n), chunks of `chunk` indices; stops claiming
  // chunks once `stop()` returns true (checked between chunks). Returns the
  // end of the processed prefix: every i below it ran, none above.
  // One loop at a time (callers serialize).
  size_t Until(size_t n, size_t chunk, const std::function<void(size_t)>& fn,
               const std::function<bool()>& stop = nullptr);

 private:
  void Work();
  void RunChunks();

  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable done_cv_;
  bool shutdown_ = false;
  uint64_t generation_ = 0;
  size_t pending_ = 0;  // helpers still to finish the current loop
  // The current loop.
  size_t n_ = 0;
  size_t chunk_ = 1;
  const std::function<void(size_t)>* fn_ = nullptr;
  const std::function<bool()>* stop_ = nullptr;
  std::atomic<size_t> next_{0};
  std::atomic<size_t> processed_end_{0};
};

}  // namespace kelpie::scheduler
