// The node's flow observer: a bounded in-memory ring of the latest flows
// and live subscribers, queried like Hubble's GetFlows (filters, since /
// until, last N, follow). Oldest flows are overwritten when the ring is full;
// a subscriber that cannot keep up loses flows (counted), the producer never
// waits for it.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

#include "exporters/flows/flow.h"
#include "exporters/flows/flow_filter.h"

namespace kelpie::flows {

struct FlowQuery {
  std::vector<FlowFilter> allow;
  std::vector<FlowFilter> deny;
  std::optional<int64_t> since_ns;  // wall clock
  std::optional<int64_t> until_ns;
  size_t last = 0;  // 0: every stored flow that matches
};

class FlowObserver {
 public:
  explicit FlowObserver(size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

  void Add(Flow flow);
  // Stored flows matching `query`, oldest first (the last `query.last`).
  std::vector<Flow> GetFlows(const FlowQuery& query) const;

  using Subscriber = std::function<void(const Flow&)>;
  // `callback` runs on the producer's thread for every new flow that
  // passes the query's filters and time bounds; it must not block.
  uint64_t Subscribe(FlowQuery query, Subscriber callback);
  void Unsubscribe(uint64_t id);

  uint64_t flows_seen() const;
  size_t size() const;
  size_t capacity() const { return capacity_; }

 private:
  struct Subscription {
    FlowQuery query;
    Subscriber callback;
  };
  static bool InWindow(const Flow& flow, const FlowQuery& query);

  const size_t capacity_;
  mutable std::mutex mu_;
  std::deque<Flow> ring_;
  uint64_t seen_ = 0;
  uint64_t next_id_ = 1;
  std::map<uint64_t, Subscription> subscribers_;
};

}  // namespace kelpie::flows
