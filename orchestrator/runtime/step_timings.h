// How long each step of a pod's start took (cgroup, netns, every CNI
// plugin, overlay mount, config.json, runc, status patch, ...). The kubelet
// hands one to the runtime with a sandbox or container config; the runtime
// adds a duration per step it ran. Steps that run in parallel may record from
// several threads, hence the mutex. Names are short labels such as
// "cni bridge"; a step recorded twice keeps the sum.
#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace kelpie::runtime {

class StepTimings {
 public:
  using Duration = std::chrono::nanoseconds;

  void Add(const std::string& step, Duration took) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [name, total] : steps_) {
      if (name == step) {
        total += took;
        return;
      }
    }
    steps_.emplace_back(step, took);
  }

  // In the order the steps were first recorded.
  std::vector<std::pair<std::string, Duration>> Steps() const {
    std::lock_guard<std::mutex> lock(mu_);
    return steps_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::pair<std::string, Duration>> steps_;
};

// Times a scope into `timings` (which may be null: nothing is recorded).
class ScopedStep {
 public:
  ScopedStep(StepTimings* timings, std::string step)
      : timings_(timings), step_(std::move(step)), start_(std::chrono::steady_clock::now()) {}
  ~ScopedStep() { Finish(); }
  ScopedStep(const ScopedStep&) = delete;
  ScopedStep& operator=(const ScopedStep&) = delete;

  // Records now instead of at the end of the scope.
  void Finish() {
    if (timings_) timings_->Add(step_, std::chrono::steady_clock::now() - start_);
    timings_ = nullptr;
  }

 private:
  StepTimings* timings_;
  std::string step_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace kelpie::runtime
