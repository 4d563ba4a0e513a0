#include "orchestrator/client/informer.h"

#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace kelpie::client {

using nlohmann::json;

Informer::Informer(RestClient& client, ResourceRef resource, InformerOptions options)
    : client_(client), resource_(std::move(resource)), options_(std::move(options)) {}

Informer::~Informer() { Stop(); }

void Informer::AddHandlers(InformerHandlers handlers) { handlers_.push_back(std::move(handlers)); }

void Informer::Start() { thread_ = std::thread([this] { Run(); }); }

void Informer::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  canceller_.Cancel();
  if (thread_.joinable()) thread_.join();
}

bool Informer::HasSynced() {
  std::lock_guard lock(mu_);
  return synced_;
}

bool Informer::WaitForSync(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [this] { return synced_ || stopping_; }) && synced_;
}

std::string Informer::KeyOf(const json& object) {
  if (!object.contains("metadata") || !object["metadata"].is_object()) return "";
  const json& m = object["metadata"];
  std::string ns = m.contains("namespace") && m["namespace"].is_string() ? m["namespace"].get<std::string>() : "";
  std::string name = m.contains("name") && m["name"].is_string() ? m["name"].get<std::string>() : "";
  return ns.empty() ? name : absl::StrCat(ns, "/", name);
}

std::optional<json> Informer::Get(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = objects_.find(key);
  if (it == objects_.end()) return std::nullopt;
  return it->second;
}

std::vector<json> Informer::List() {
  std::lock_guard lock(mu_);
  std::vector<json> out;
  out.reserve(objects_.size());
  for (const auto& [key, object] : objects_) out.push_back(object);
  return out;
}

void Informer::Upsert(json object) {
  std::string key = KeyOf(object);
  std::optional<json> old;
  {
    std::lock_guard lock(mu_);
    auto it = objects_.find(key);
    if (it != objects_.end()) old = std::move(it->second);
    objects_[key] = object;
  }
  for (const auto& h : handlers_) {
    if (old) {
      if (h.on_update) h.on_update(*old, object);
    } else if (h.on_add) {
      h.on_add(object);
    }
  }
}

void Informer::Remove(const json& object) {
  std::string key = KeyOf(object);
  json last = object;
  {
    std::lock_guard lock(mu_);
    auto it = objects_.find(key);
    if (it != objects_.end()) {
      last = std::move(it->second);
      objects_.erase(it);
    }
  }
  for (const auto& h : handlers_) {
    if (h.on_delete) h.on_delete(last);
  }
}

absl::Status Informer::ListAndReconcile(std::string* resource_version) {
  ListOptions lo;
  lo.label_selector = options_.label_selector;
  lo.field_selector = options_.field_selector;
  auto list = client_.ListAll(resource_, options_.name_space, lo);
  if (!list.ok()) return list.status();
  *resource_version = (*list)["metadata"].value("resourceVersion", "");
  std::map<std::string, json> fresh;
  for (auto& item : (*list)["items"]) {
    // The key first: the right side of an assignment is evaluated first.
    std::string key = KeyOf(item);
    fresh[key] = std::move(item);
  }
  // Objects deleted while we were not watching are deletes now.
  std::vector<json> gone;
  {
    std::lock_guard lock(mu_);
    for (const auto& [key, object] : objects_) {
      if (!fresh.count(key)) gone.push_back(object);
    }
  }
  for (const auto& object : gone) Remove(object);
  for (auto& [key, object] : fresh) {
    std::optional<json> current = Get(key);
    bool same = current && (*current)["metadata"].value("resourceVersion", "") ==
                               object["metadata"].value("resourceVersion", "");
    if (!same) Upsert(std::move(object));
  }
  {
    std::lock_guard lock(mu_);
    synced_ = true;
  }
  cv_.notify_all();
  for (const auto& h : handlers_) {
    if (h.on_synced) h.on_synced();
  }
  return absl::OkStatus();
}

absl::Status Informer::WatchFrom(std::string* resource_version) {
  ListOptions lo;
  lo.label_selector = options_.label_selector;
  lo.field_selector = options_.field_selector;
  lo.resource_version = *resource_version;
  lo.allow_bookmarks = true;
  lo.timeout_seconds = options_.watch_timeout_seconds;
  absl::Status event_error = absl::OkStatus();
  absl::Status st = client_.Watch(
      resource_, options_.name_space, lo,
      [&](const std::string& type, json object) {
        if (type == "ERROR") {
          int code = object.is_object() ? object.value("code", 0) : 0;
          event_error = StatusFromHttp(code == 0 ? 500 : code, object.dump());
          return false;
        }
        std::string rv = object.is_object() && object.contains("metadata")
                             ? object["metadata"].value("resourceVersion", "")
                             : "";
        if (!rv.empty()) *resource_version = rv;
        if (type == "ADDED" || type == "MODIFIED") {
          Upsert(std::move(object));
        } else if (type == "DELETED") {
          Remove(object);
        }
        return true;
      },
      &canceller_);
  if (!st.ok()) return st;
  return event_error;
}

void Informer::Run() {
  std::string rv;
  bool need_list = true;
  std::chrono::milliseconds backoff(200);
  auto wait = [this](std::chrono::milliseconds d) {
    std::unique_lock lock(mu_);
    return !cv_.wait_for(lock, d, [this] { return stopping_; });
  };
  while (true) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
    }
    absl::Status st = need_list ? ListAndReconcile(&rv) : WatchFrom(&rv);
    if (canceller_.cancelled()) return;
    if (st.ok()) {
      backoff = std::chrono::milliseconds(200);
      // After a list, watch; after a watch that ended normally (timeout),
      // watch again from where it stopped.
      need_list = false;
      continue;
    }
    // A gone version needs a fresh list; so does any failure, since events
    // may have been missed while the server was unreachable.
    if (!IsGone(st)) {
      spdlog::debug("informer {}: {} (retrying in {} ms)", resource_.resource, st.ToString(), backoff.count());
    }
    need_list = true;
    if (!IsGone(st) && !wait(backoff)) return;
    backoff = std::min(backoff * 2, std::chrono::milliseconds(10000));
  }
}

}  // namespace kelpie::client
