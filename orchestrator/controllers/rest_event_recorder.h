// EventRecorder that writes core/v1 Events through the REST client, as
// client-go's event broadcaster and correlator do: Event() only appends to a
// bounded queue (a full queue drops the event and counts it, the caller is
// never blocked); one writer thread creates `<object>.<hex nanoseconds>`
// Events and, when the same event (same object, type, reason, message and
// source) repeats within the aggregation window, bumps count and
// lastTimestamp of the existing Event with a merge PATCH instead.
//
// One recorder serves several components: ForComponent() returns a view
// whose events carry that source.component (e.g. "endpointslice-controller").
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "orchestrator/client/rest_client.h"
#include "orchestrator/controllers/event_recorder.h"

namespace prometheus {
class Registry;
class Counter;
}  // namespace prometheus

namespace kelpie::controllers {

struct EventRecorderOptions {
  std::string component = "kelpie";  // source.component of events recorded directly
  std::string host;                  // source.host (optional)
  size_t queue_capacity = 1000;
  // Identical events within this window update one Event (client-go: 10 min).
  std::chrono::seconds aggregation_window{600};
  // How many distinct recent events are remembered for aggregation.
  size_t cache_size = 4096;
};

class RestEventRecorder : public EventRecorder {
 public:
  // `metrics` (optional) gets kelpie_events_recorded_total and
  // kelpie_events_dropped_total.
  RestEventRecorder(client::RestClient& client, EventRecorderOptions options,
                    prometheus::Registry* metrics = nullptr);
  ~RestEventRecorder() override;
  RestEventRecorder(const RestEventRecorder&) = delete;
  RestEventRecorder& operator=(const RestEventRecorder&) = delete;

  void Event(const nlohmann::json& involved, EventType type, const std::string& reason,
             const std::string& message) override;

  // A recorder sharing this one's queue whose events name `component` as
  // their source. Owned by this recorder, valid as long as it is.
  EventRecorder& ForComponent(const std::string& component);

  // Waits until every queued event has been written (or `timeout`); true
  // when the queue drained.
  bool Flush(std::chrono::milliseconds timeout);
  // Writes what is queued (bounded by `drain_timeout`) and stops the writer.
  void Stop(std::chrono::milliseconds drain_timeout = std::chrono::milliseconds(2000));

  uint64_t dropped() const { return dropped_.load(); }
  uint64_t written() const { return written_.load(); }

 private:
  struct Pending {
    nlohmann::json involved;
    EventType type;
    std::string reason, message, component;
    std::chrono::system_clock::time_point at;
  };
  struct Recent {
    std::string ns, name;
    int64_t count = 0;
    std::string first_timestamp;
    std::chrono::steady_clock::time_point last_seen;
    std::list<std::string>::iterator lru;
  };
  class ComponentRecorder;

  void Enqueue(Pending p);
  void Run();
  void Write(const Pending& p);
  void Remember(const std::string& key, Recent r);

  client::RestClient& client_;
  const EventRecorderOptions options_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable idle_cv_;
  std::deque<Pending> queue_;
  bool writing_ = false;
  bool stopping_ = false;
  std::chrono::steady_clock::time_point drain_deadline_;
  std::map<std::string, std::unique_ptr<ComponentRecorder>> components_;

  // Aggregation cache, used by the writer thread only.
  std::unordered_map<std::string, Recent> recent_;
  std::list<std::string> lru_;

  std::atomic<uint64_t> dropped_{0};
  std::atomic<uint64_t> written_{0};
  prometheus::Counter* recorded_metric_ = nullptr;
  prometheus::Counter* dropped_metric_ = nullptr;
  std::thread thread_;
};

// Event timestamps: RFC 3339, second precision, UTC.
std::string EventTimestamp(std::chrono::system_clock::time_point t);

}  // namespace kelpie::controllers
