#include "orchestrator/controllers/shared_informer.h"

#include <algorithm>
#include <set>

#include "common/log.h"
#include "orchestrator/client/api_errors.h"

namespace kelpie::controllers {

using nlohmann::json;

namespace {

std::string ResourceVersionOf(const json& obj) {
  if (!obj.contains("metadata") || !obj["metadata"].is_object()) return "";
  return obj["metadata"].value("resourceVersion", "");
}

}  // namespace

SharedInformer::SharedInformer(client::RestClient& client, InformerOptions options)
    : client_(client), options_(std::move(options)) {}

SharedInformer::~SharedInformer() { Stop(); }

void SharedInformer::AddEventHandler(EventHandlers handlers) { handlers_.push_back(std::move(handlers)); }

void SharedInformer::Start() {
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] { Run(); });
}

void SharedInformer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  canceller_.Cancel();
  if (thread_.joinable()) thread_.join();
}

bool SharedInformer::WaitForSync(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [this] { return synced_.load() || stop_.load(); }) && synced_.load();
}

std::string SharedInformer::LastResourceVersion() const {
  std::lock_guard<std::mutex> lock(mu_);
  return resource_version_;
}

void SharedInformer::SetResourceVersion(const std::string& rv) {
  std::lock_guard<std::mutex> lock(mu_);
  resource_version_ = rv;
}

bool SharedInformer::SleepUnlessStopped(std::chrono::milliseconds d) {
  std::unique_lock<std::mutex> lock(mu_);
  return !cv_.wait_for(lock, d, [this] { return stop_.load(); });
}

void SharedInformer::Run() {
  auto backoff = options_.min_backoff;
  bool need_list = true;
  next_resync_ = std::chrono::steady_clock::now() + options_.resync_period;
  while (!stop_) {
    if (need_list) {
      absl::Status s = ListAndReplace();
      if (!s.ok()) {
        spdlog::warn("informer {}: list failed: {}", options_.resource.resource, s.ToString());
        if (!SleepUnlessStopped(backoff)) return;
        backoff = std::min(backoff * 2, options_.max_backoff);
        continue;
      }
      need_list = false;
    }
    absl::Status s = WatchOnce();
    if (stop_) return;
    if (client::IsGone(s)) {
      // Our version was compacted away: only a fresh list can catch up.
      spdlog::info("informer {}: watch expired ({}), relisting", options_.resource.resource, s.ToString());
      need_list = true;
      backoff = options_.min_backoff;
      continue;
    }
    if (s.ok()) {
      backoff = options_.min_backoff;  // server ended the stream: rewatch
      continue;
    }
    spdlog::warn("informer {}: watch failed: {}", options_.resource.resource, s.ToString());
    // A transport failure (e.g. server restart): relist after backoff, as
    // the server's history may not cover our version any more.
    need_list = true;
    if (!SleepUnlessStopped(backoff)) return;
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

absl::Status SharedInformer::ListAndReplace() {
  client::ListOptions lo;
  lo.label_selector = options_.label_selector;
  lo.field_selector = options_.field_selector;
  lo.limit = options_.page_size;
  auto list = client_.ListAll(options_.resource, options_.ns, lo);
  if (!list.ok()) return list.status();
  std::string rv = (*list)["metadata"].value("resourceVersion", "");
  std::set<std::string> seen;
  for (auto& item : (*list)["items"]) {
    // List items carry no kind; add it so handlers see whole objects.
    if (!item.contains("kind") && list->contains("kind")) {
      std::string kind = (*list)["kind"].get<std::string>();
      if (kind.size() > 4 && kind.compare(kind.size() - 4, 4, "List") == 0) item["kind"] = kind.substr(0, kind.size() - 4);
      item["apiVersion"] = options_.resource.ApiVersion();
    }
    std::string key = ObjectKey(item);
    seen.insert(key);
    auto old = store_.Upsert(item);
    for (auto& h : handlers_) {
      if (!old) {
        if (h.on_add) h.on_add(item);
      } else if (ResourceVersionOf(*old) != ResourceVersionOf(item)) {
        if (h.on_update) h.on_update(*old, item);
      }
    }
  }
  for (const auto& key : store_.ListKeys()) {
    if (seen.count(key)) continue;
    auto old = store_.Remove(key);
    if (!old) continue;
    for (auto& h : handlers_) {
      if (h.on_delete) h.on_delete(*old, true);
    }
  }
  SetResourceVersion(rv);
  list_count_++;
  if (!synced_) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      synced_ = true;
    }
    cv_.notify_all();
  }
  return absl::OkStatus();
}

void SharedInformer::Resync() {
  for (const auto& obj : store_.List()) {
    for (auto& h : handlers_) {
      if (h.on_update) h.on_update(obj, obj);
    }
  }
}

absl::Status SharedInformer::WatchOnce() {
  client::WatchOptions wo;
  wo.label_selector = options_.label_selector;
  wo.field_selector = options_.field_selector;
  wo.resource_version = LastResourceVersion();
  wo.allow_bookmarks = true;
  absl::Status event_error;
  absl::Status s = client_.Watch(options_.resource, options_.ns, wo, [&](const client::WatchEvent& ev) {
    if (stop_) return false;
    if (ev.type == "ERROR") {
      int code = ev.object.value("code", 0);
      event_error = client::StatusFromHttp(code == 0 ? 500 : code, ev.object.dump());
      return false;
    }
    std::string rv = ResourceVersionOf(ev.object);
    if (ev.type == "BOOKMARK") {
      if (!rv.empty()) SetResourceVersion(rv);
    } else if (ev.type == "ADDED" || ev.type == "MODIFIED") {
      auto old = store_.Upsert(ev.object);
      for (auto& h : handlers_) {
        if (!old) {
          if (h.on_add) h.on_add(ev.object);
        } else if (h.on_update) {
          h.on_update(*old, ev.object);
        }
      }
      if (!rv.empty()) SetResourceVersion(rv);
    } else if (ev.type == "DELETED") {
      auto old = store_.Remove(ObjectKey(ev.object));
      for (auto& h : handlers_) {
        if (h.on_delete) h.on_delete(ev.object, false);
      }
      if (!rv.empty()) SetResourceVersion(rv);
    }
    if (options_.resync_period.count() > 0 && std::chrono::steady_clock::now() >= next_resync_) {
      Resync();
      next_resync_ = std::chrono::steady_clock::now() + options_.resync_period;
    }
    return !stop_.load();
  }, &canceller_);
  if (!event_error.ok()) return event_error;
  return s;
}

}  // namespace kelpie::controllers
