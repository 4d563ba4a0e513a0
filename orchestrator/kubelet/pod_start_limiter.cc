#include "orchestrator/kubelet/pod_start_limiter.h"

#include <algorithm>
#include <chrono>

namespace kelpie::kubelet {

PodStartLimiter::PodStartLimiter(int slots) : slots_(std::max(slots, 1)) {}

PodStartLimiter::Slot& PodStartLimiter::Slot::operator=(Slot&& other) noexcept {
  if (this != &other) {
    Release();
    limiter_ = other.limiter_;
    other.limiter_ = nullptr;
  }
  return *this;
}

void PodStartLimiter::Slot::Release() {
  if (limiter_) limiter_->Release();
  limiter_ = nullptr;
}

PodStartLimiter::Slot PodStartLimiter::Acquire(const std::function<bool()>& cancelled) {
  std::unique_lock<std::mutex> lock(mu_);
  uint64_t ticket = next_ticket_++;
  queue_.push_back(ticket);
  while (true) {
    if (queue_.front() == ticket && in_use_ < slots_) {
      queue_.pop_front();
      ++in_use_;
      cv_.notify_all();  // the next in line may fit too
      return Slot(this);
    }
    if (cancelled && cancelled()) {
      queue_.erase(std::find(queue_.begin(), queue_.end(), ticket));
      cv_.notify_all();
      return Slot();
    }
    cv_.wait_for(lock, std::chrono::milliseconds(50));
  }
}

void PodStartLimiter::Release() {
  std::lock_guard<std::mutex> lock(mu_);
  --in_use_;
  cv_.notify_all();
}

int PodStartLimiter::in_use() const {
  std::lock_guard<std::mutex> lock(mu_);
  return in_use_;
}

int PodStartLimiter::waiting() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(queue_.size());
}

}  // namespace kelpie::kubelet
