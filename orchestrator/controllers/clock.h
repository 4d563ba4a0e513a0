// Time source injected into rate limiters and queues so tests can simulate time.
#pragma once

#include <chrono>

namespace kelpie::controllers {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::chrono::steady_clock::time_point Now() const = 0;
};

class RealClock : public Clock {
 public:
  std::chrono::steady_clock::time_point Now() const override { return std::chrono::steady_clock::now(); }
  static const Clock& Get() {
    static const RealClock clock;
    return clock;
  }
};

}  // namespace kelpie::controllers
