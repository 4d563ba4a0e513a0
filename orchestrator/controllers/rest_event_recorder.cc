#include "orchestrator/controllers/rest_event_recorder.h"

#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <ctime>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/log.h"
#include "orchestrator/client/api_errors.h"

namespace kelpie::controllers {

using nlohmann::json;

std::string EventTimestamp(std::chrono::system_clock::time_point t) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

class RestEventRecorder::ComponentRecorder : public EventRecorder {
 public:
  ComponentRecorder(RestEventRecorder& parent, std::string component)
      : parent_(parent), component_(std::move(component)) {}
  void Event(const json& involved, EventType type, const std::string& reason, const std::string& message) override {
    parent_.Enqueue({involved, type, reason, message, component_, std::chrono::system_clock::now()});
  }

 private:
  RestEventRecorder& parent_;
  const std::string component_;
};

RestEventRecorder::RestEventRecorder(client::RestClient& client, EventRecorderOptions options,
                                     prometheus::Registry* metrics)
    : client_(client), options_(std::move(options)) {
  if (metrics != nullptr) {
    recorded_metric_ = &prometheus::BuildCounter()
                            .Name("kelpie_events_recorded_total")
                            .Help("Kubernetes Events written (created or aggregated) by the controller manager")
                            .Register(*metrics)
                            .Add({});
    dropped_metric_ = &prometheus::BuildCounter()
                           .Name("kelpie_events_dropped_total")
                           .Help("Events dropped because the recorder's queue was full or the write failed")
                           .Register(*metrics)
                           .Add({});
  }
  thread_ = std::thread([this] { Run(); });
}

RestEventRecorder::~RestEventRecorder() { Stop(); }

void RestEventRecorder::Event(const json& involved, EventType type, const std::string& reason,
                              const std::string& message) {
  Enqueue({involved, type, reason, message, options_.component, std::chrono::system_clock::now()});
}

EventRecorder& RestEventRecorder::ForComponent(const std::string& component) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = components_[component];
  if (!slot) slot = std::make_unique<ComponentRecorder>(*this, component);
  return *slot;
}

void RestEventRecorder::Enqueue(Pending p) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || queue_.size() >= options_.queue_capacity) {
      ++dropped_;
      if (dropped_metric_ != nullptr) dropped_metric_->Increment();
      return;
    }
    queue_.push_back(std::move(p));
  }
  cv_.notify_one();
}

bool RestEventRecorder::Flush(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return idle_cv_.wait_for(lock, timeout, [this] { return queue_.empty() && !writing_; });
}

void RestEventRecorder::Stop(std::chrono::milliseconds drain_timeout) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!thread_.joinable()) return;
    if (!stopping_) {
      stopping_ = true;
      drain_deadline_ = std::chrono::steady_clock::now() + drain_timeout;
    }
  }
  cv_.notify_all();
  thread_.join();
}

void RestEventRecorder::Run() {
  for (;;) {
    Pending p;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty() || (stopping_ && std::chrono::steady_clock::now() > drain_deadline_)) {
        dropped_ += queue_.size();
        queue_.clear();
        idle_cv_.notify_all();
        if (stopping_) return;
        continue;
      }
      p = std::move(queue_.front());
      queue_.pop_front();
      writing_ = true;
    }
    Write(p);
    {
      std::lock_guard<std::mutex> lock(mu_);
      writing_ = false;
      if (queue_.empty()) idle_cv_.notify_all();
    }
  }
}

void RestEventRecorder::Remember(const std::string& key, Recent r) {
  auto it = recent_.find(key);
  if (it != recent_.end()) {
    lru_.erase(it->second.lru);
    recent_.erase(it);
  }
  lru_.push_front(key);
  r.lru = lru_.begin();
  recent_.emplace(key, std::move(r));
  while (recent_.size() > options_.cache_size && !lru_.empty()) {
    recent_.erase(lru_.back());
    lru_.pop_back();
  }
}

void RestEventRecorder::Write(const Pending& p) {
  const json meta = p.involved.value("metadata", json::object());
  const std::string obj_ns = meta.value("namespace", "");
  const std::string obj_name = meta.value("name", "");
  const std::string type = p.type == EventType::kWarning ? "Warning" : "Normal";
  // Events about cluster-scoped objects live in "default", as in Kubernetes.
  const std::string ns = obj_ns.empty() ? "default" : obj_ns;
  json involved = {{"kind", p.involved.value("kind", "")},
                   {"name", obj_name},
                   {"apiVersion", p.involved.value("apiVersion", "")}};
  if (!obj_ns.empty()) involved["namespace"] = obj_ns;
  if (meta.contains("uid")) involved["uid"] = meta["uid"];
  if (meta.contains("resourceVersion")) involved["resourceVersion"] = meta["resourceVersion"];
  const std::string now = EventTimestamp(p.at);
  const std::string key = absl::StrCat(involved["kind"].get<std::string>(), "\x1f", obj_ns, "\x1f", obj_name, "\x1f",
                                       meta.value("uid", ""), "\x1f", type, "\x1f", p.reason, "\x1f", p.message,
                                       "\x1f", p.component);
  const auto steady_now = std::chrono::steady_clock::now();

  auto recent = recent_.find(key);
  if (recent != recent_.end() && steady_now - recent->second.last_seen <= options_.aggregation_window) {
    Recent r = recent->second;
    json patch = {{"count", r.count + 1}, {"lastTimestamp", now}};
    auto patched = client_.Patch(client::resources::kEvents, r.ns, r.name, client::PatchType::kMerge, patch);
    if (patched.ok()) {
      r.count += 1;
      r.last_seen = steady_now;
      Remember(key, std::move(r));
      ++written_;
      if (recorded_metric_ != nullptr) recorded_metric_->Increment();
      return;
    }
    if (!client::IsNotFound(patched.status())) {
      ++dropped_;
      if (dropped_metric_ != nullptr) dropped_metric_->Increment();
      spdlog::warn("event {} {}: {}", r.name, p.reason, patched.status().message());
      return;
    }
    // The Event expired or was deleted: start a new one.
  }
  const auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(p.at.time_since_epoch()).count();
  json event = {{"apiVersion", "v1"},
                {"kind", "Event"},
                {"metadata", {{"name", absl::StrFormat("%s.%x", obj_name, static_cast<uint64_t>(nanos))},
                              {"namespace", ns}}},
                {"involvedObject", involved},
                {"reason", p.reason},
                {"message", p.message},
                {"type", type},
                {"source", {{"component", p.component}}},
                {"firstTimestamp", now},
                {"lastTimestamp", now},
                {"count", 1},
                {"reportingComponent", p.component},
                {"reportingInstance", options_.host}};
  if (!options_.host.empty()) event["source"]["host"] = options_.host;
  auto created = client_.Create(client::resources::kEvents, ns, event);
  if (!created.ok()) {
    ++dropped_;
    if (dropped_metric_ != nullptr) dropped_metric_->Increment();
    // A terminating namespace refuses new objects; that is expected.
    spdlog::debug("event {} on {}/{}: {}", p.reason, ns, obj_name, created.status().message());
    return;
  }
  ++written_;
  if (recorded_metric_ != nullptr) recorded_metric_->Increment();
  Recent r;
  r.ns = ns;
  r.name = event["metadata"]["name"];
  r.count = 1;
  r.first_timestamp = now;
  r.last_seen = steady_now;
  Remember(key, std::move(r));
}

}  // namespace kelpie::controllers
