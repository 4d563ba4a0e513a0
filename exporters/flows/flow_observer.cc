#include "exporters/flows/flow_observer.h"

namespace kelpie::flows {

bool FlowObserver::InWindow(const Flow& flow, const FlowQuery& query) {
  if (query.since_ns && flow.time_ns < *query.since_ns) return false;
  if (query.until_ns && flow.time_ns > *query.until_ns) return false;
  return PassesFilters(flow, query.allow, query.deny);
}

void FlowObserver::Add(Flow flow) {
  std::lock_guard<std::mutex> lock(mu_);
  ++seen_;
  for (auto& [id, sub] : subscribers_) {
    if (InWindow(flow, sub.query)) sub.callback(flow);
  }
  if (ring_.size() >= capacity_) ring_.pop_front();
  ring_.push_back(std::move(flow));
}

std::vector<Flow> FlowObserver::GetFlows(const FlowQuery& query) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Flow> out;
  // Newest first so "last N" stops early, then reversed.
  for (auto it = ring_.rbegin(); it != ring_.rend(); ++it) {
    if (query.last != 0 && out.size() >= query.last) break;
    if (InWindow(*it, query)) out.push_back(*it);
  }
  return {out.rbegin(), out.rend()};
}

uint64_t FlowObserver::Subscribe(FlowQuery query, Subscriber callback) {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t id = next_id_++;
  subscribers_.emplace(id, Subscription{std::move(query), std::move(callback)});
  return id;
}

void FlowObserver::Unsubscribe(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  subscribers_.erase(id);
}

uint64_t FlowObserver::flows_seen() const {
  std::lock_guard<std::mutex> lock(mu_);
  return seen_;
}

size_t FlowObserver::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ring_.size();
}

}  // namespace kelpie::flows
