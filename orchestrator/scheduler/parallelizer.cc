#include "orchestrator/scheduler/parallelizer.h"

#include <algorithm>

namespace kelpie::scheduler {

Parallelizer::Parallelizer(int parallelism) {
  for (int i = 1; i < parallelism; ++i) threads_.emplace_back([this] { Work(); });
}

Parallelizer::~Parallelizer() {
  {
    std::lock_guard lock(mu_);
    shutdown_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void Parallelizer::RunChunks() {
  for (;;) {
    if (*stop_ && (*stop_)()) return;
    size_t begin = next_.fetch_add(chunk_);
    if (begin >= n_) return;
    size_t end = std::min(n_, begin + chunk_);
    for (size_t i = begin; i < end; ++i) (*fn_)(i);
    // Chunks are claimed in order; the furthest finished end bounds the prefix.
    size_t seen = processed_end_.load();
    while (seen < end && !processed_end_.compare_exchange_weak(seen, end)) {
    }
  }
}

void Parallelizer::Work() {
  uint64_t seen_generation = 0;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return shutdown_ || generation_ != seen_generation; });
      if (shutdown_) return;
      seen_generation = generation_;
    }
    RunChunks();
    {
      std::lock_guard lock(mu_);
      --pending_;
    }
    done_cv_.notify_all();
  }
}

size_t Parallelizer::Until(size_t n, size_t chunk, const std::function<void(size_t)>& fn,
                           const std::function<bool()>& stop) {
  if (n == 0) return 0;
  static const std::function<bool()> kNever;
  {
    std::lock_guard lock(mu_);
    n_ = n;
    chunk_ = std::max<size_t>(1, chunk);
    fn_ = &fn;
    stop_ = stop ? &stop : &kNever;
    next_.store(0);
    processed_end_.store(0);
    // Only wake helpers when there is more than one chunk of work.
    if (n > chunk_ && !threads_.empty()) {
      ++generation_;
      pending_ = threads_.size();
    }
  }
  cv_.notify_all();
  RunChunks();
  std::unique_lock lock(mu_);
  // Every helper takes part in each loop it was woken for (finding nothing
  // left is fine), so none can still be reading this loop's state later.
  done_cv_.wait(lock, [&] { return pending_ == 0; });
  // Claimed chunks beyond the last finished one cannot exist: every claim
  // below next_ was finished by the thread that made it.
  return std::min(n_, processed_end_.load());
}

}  // namespace kelpie::scheduler
