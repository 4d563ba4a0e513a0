// Events from a BPF ring buffer map, behind the small EventSource interface
// that replay files and synthetic sources will implement too.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>

#include "absl/status/statusor.h"

struct ring_buffer;

namespace kelpie::dataplane {

// Receives one record; returns false to stop the current Poll early.
using EventCallback = std::function<bool(std::string_view record)>;

class EventSource {
 public:
  virtual ~EventSource() = default;
  // Delivers ready records to the callback, waiting up to `timeout` for the
  // first; returns how many were delivered.
  virtual absl::StatusOr<int> Poll(std::chrono::milliseconds timeout) = 0;
};

class RingBufferSource final : public EventSource {
 public:
  static absl::StatusOr<std::unique_ptr<RingBufferSource>> Create(int map_fd, EventCallback callback);
  ~RingBufferSource() override;
  absl::StatusOr<int> Poll(std::chrono::milliseconds timeout) override;

 private:
  explicit RingBufferSource(EventCallback callback) : callback_(std::move(callback)) {}
  static int OnRecord(void* ctx, void* data, size_t size);

  EventCallback callback_;
  struct ring_buffer* rb_ = nullptr;
};

}  // namespace kelpie::dataplane
