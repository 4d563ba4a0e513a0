// Bounds how many pods start at once (sandbox, volumes, containers) and
// lets them in first come, first served. A burst of pods on a small node
// then finishes pod after pod instead of every pod crawling along together
// (thirty `runc` and CNI processes fighting over two cores), and each pod's
// status is posted as soon as it is running. Only starting is gated:
// probes, status refreshes and terminations never wait here.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>

namespace kelpie::kubelet {

class PodStartLimiter {
 public:
  // `slots` < 1 means 1.
  explicit PodStartLimiter(int slots);

  // A held slot; released when destroyed (or when empty: not held).
  class Slot {
   public:
    Slot() = default;
    Slot(Slot&& other) noexcept : limiter_(other.limiter_) { other.limiter_ = nullptr; }
    Slot& operator=(Slot&& other) noexcept;
    ~Slot() { Release(); }
    bool held() const { return limiter_ != nullptr; }
    void Release();

   private:
    friend class PodStartLimiter;
    explicit Slot(PodStartLimiter* limiter) : limiter_(limiter) {}
    PodStartLimiter* limiter_ = nullptr;
  };

  // Waits for a slot in arrival order. Gives up (returns an empty Slot) once
  // `cancelled` returns true; it is checked at least every 50 ms.
  Slot Acquire(const std::function<bool()>& cancelled);

  int slots() const { return slots_; }
  // Slots held right now and callers waiting (for tests and logs).
  int in_use() const;
  int waiting() const;

 private:
  void Release();

  const int slots_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int in_use_ = 0;
  uint64_t next_ticket_ = 0;
  std::deque<uint64_t> queue_;  // tickets of waiting callers, oldest first
};

}  // namespace kelpie::kubelet
