#include "orchestrator/scheduler/event_writer.h"

#include <chrono>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/log.h"

namespace kelpie::scheduler {
namespace {

constexpr auto kCorrelationWindow = std::chrono::minutes(10);

std::string Now() { return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone()); }

const client::ResourceRef kEvents{"", "v1", "events", true};

}  // namespace

EventWriter::EventWriter(client::RestClient& client, std::string component, size_t max_pending)
    : client_(client), component_(std::move(component)), max_pending_(max_pending), thread_([this] { Run(); }) {}

EventWriter::~EventWriter() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void EventWriter::Event(const nlohmann::json& involved, controllers::EventType type, const std::string& reason,
                        const std::string& message) {
  {
    std::lock_guard lock(mu_);
    if (queue_.size() >= max_pending_) {
      ++dropped_;
      return;
    }
    queue_.push_back({involved, type == controllers::EventType::kWarning ? "Warning" : "Normal", reason, message});
  }
  cv_.notify_one();
}

void EventWriter::Flush() {
  std::unique_lock lock(mu_);
  idle_cv_.wait(lock, [&] { return queue_.empty() && !busy_; });
}

uint64_t EventWriter::dropped() const {
  std::lock_guard lock(mu_);
  return dropped_;
}

void EventWriter::Run() {
  for (;;) {
    Pending e;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;
      e = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
    }
    Write(e);
    {
      std::lock_guard lock(mu_);
      busy_ = false;
    }
    idle_cv_.notify_all();
  }
}

void EventWriter::Write(const Pending& e) {
  const nlohmann::json& meta = e.involved.value("metadata", nlohmann::json::object());
  std::string ns = meta.value("namespace", "default");
  std::string object_name = meta.value("name", "");
  std::string uid = meta.value("uid", "");
  std::string key = absl::StrCat(uid, "|", object_name, "|", e.type, "|", e.reason, "|", e.message);
  auto now = std::chrono::steady_clock::now();
  std::string timestamp = Now();

  // Only this thread touches recent_.
  for (auto it = recent_.begin(); it != recent_.end();) {
    it = now - it->second.first > kCorrelationWindow ? recent_.erase(it) : std::next(it);
  }
  if (auto it = recent_.find(key); it != recent_.end()) {
    Written& w = it->second;
    ++w.count;
    auto r = client_.Patch(kEvents, w.namespace_name, w.name, client::PatchType::kMerge,
                           {{"count", w.count}, {"lastTimestamp", timestamp}});
    if (r.ok()) return;
    recent_.erase(it);  // gone (e.g. expired): write a new one
  }
  nlohmann::json involved = {{"apiVersion", e.involved.value("apiVersion", "v1")},
                             {"kind", e.involved.value("kind", "")},
                             {"name", object_name},
                             {"namespace", ns},
                             {"uid", uid},
                             {"resourceVersion", meta.value("resourceVersion", "")}};
  std::string name = absl::StrCat(object_name, ".", absl::Hex(absl::ToUnixNanos(absl::Now())), absl::Hex(++sequence_));
  nlohmann::json event = {{"apiVersion", "v1"},
                          {"kind", "Event"},
                          {"metadata", {{"name", name}, {"namespace", ns}}},
                          {"involvedObject", involved},
                          {"reason", e.reason},
                          {"message", e.message},
                          {"type", e.type},
                          {"source", {{"component", component_}}},
                          {"reportingComponent", component_},
                          {"reportingInstance", component_},
                          {"firstTimestamp", timestamp},
                          {"lastTimestamp", timestamp},
                          {"count", 1}};
  auto created = client_.Create(kEvents, ns, event);
  if (!created.ok()) {
    spdlog::debug("event {} for {}/{}: {}", e.reason, ns, object_name, created.status().message());
    return;
  }
  recent_[key] = Written{ns, name, 1, now};
}

}  // namespace kelpie::scheduler
