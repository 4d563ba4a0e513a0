// Retry delays for work-queue items, as client-go's workqueue rate limiters:
// per-item exponential backoff, an overall token bucket, and the max of both
// (DefaultControllerRateLimiter: 5 ms..1000 s per item, 10 qps / 100 burst).
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "orchestrator/controllers/clock.h"

namespace kelpie::controllers {

using Duration = std::chrono::steady_clock::duration;

class RateLimiter {
 public:
  virtual ~RateLimiter() = default;
  // How long to wait before `item` may be processed again.
  virtual Duration When(const std::string& item) = 0;
  // The item succeeded: reset its failure history.
  virtual void Forget(const std::string& item) = 0;
  virtual int NumRequeues(const std::string& item) = 0;
};

// base * 2^failures, capped at max_delay.
class ItemExponentialFailureRateLimiter : public RateLimiter {
 public:
  ItemExponentialFailureRateLimiter(Duration base_delay, Duration max_delay);
  Duration When(const std::string& item) override;
  void Forget(const std::string& item) override;
  int NumRequeues(const std::string& item) override;

 private:
  Duration base_, max_;
  std::mutex mu_;
  std::unordered_map<std::string, int> failures_;
};

// Token bucket shared by all items: `qps` tokens a second, at most `burst`
// banked. When() reserves a token and says how long until it is available.
class BucketRateLimiter : public RateLimiter {
 public:
  BucketRateLimiter(double qps, int burst, const Clock& clock = RealClock::Get());
  Duration When(const std::string& item) override;
  void Forget(const std::string&) override {}
  int NumRequeues(const std::string&) override { return 0; }

 private:
  double qps_;
  double burst_;
  const Clock& clock_;
  std::mutex mu_;
  double tokens_;
  std::chrono::steady_clock::time_point last_;
};

// The longest delay of its limiters.
class MaxOfRateLimiter : public RateLimiter {
 public:
  explicit MaxOfRateLimiter(std::vector<std::unique_ptr<RateLimiter>> limiters);
  Duration When(const std::string& item) override;
  void Forget(const std::string& item) override;
  int NumRequeues(const std::string& item) override;

 private:
  std::vector<std::unique_ptr<RateLimiter>> limiters_;
};

// client-go's DefaultControllerRateLimiter.
std::unique_ptr<RateLimiter> DefaultControllerRateLimiter(const Clock& clock = RealClock::Get());

}  // namespace kelpie::controllers
