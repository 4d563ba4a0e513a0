// An EventRecorder that writes core/v1 Events through the REST API from a
// background thread, so scheduling never waits on it. A repeat of the same
// event (same object, type, reason and message) within ten minutes updates
// the first one's count and lastTimestamp instead of creating another, as
// Kubernetes' event correlator does. At most `max_pending` events wait;
// beyond that new ones are dropped (and counted) rather than queued without
// bound.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "orchestrator/client/rest_client.h"
#include "orchestrator/controllers/event_recorder.h"

namespace kelpie::scheduler {

class EventWriter : public controllers::EventRecorder {
 public:
  EventWriter(client::RestClient& client, std::string component, size_t max_pending = 10000);
  ~EventWriter() override;

  void Event(const nlohmann::json& involved, controllers::EventType type, const std::string& reason,
             const std::string& message) override;

  // Blocks until every event queued so far was written (tests, shutdown).
  void Flush();
  uint64_t dropped() const;

 private:
  struct Pending {
    nlohmann::json involved;
    std::string type;
    std::string reason;
    std::string message;
  };
  struct Written {
    std::string namespace_name;
    std::string name;
    int64_t count = 1;
    std::chrono::steady_clock::time_point first;
  };
  void Run();
  void Write(const Pending& e);

  client::RestClient& client_;
  const std::string component_;
  const size_t max_pending_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable idle_cv_;
  std::deque<Pending> queue_;
  bool busy_ = false;
  bool stop_ = false;
  uint64_t dropped_ = 0;
  uint64_t sequence_ = 0;
  std::map<std::string, Written> recent_;  // by correlation key
  std::thread thread_;
};

}  // namespace kelpie::scheduler
