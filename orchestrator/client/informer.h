// An informer, as client-go's: lists a resource, then watches it from the
// list's resourceVersion, keeping an in-memory copy of every object and
// telling handlers about adds, updates and deletes. When the watch ends it
// resumes from the last version seen; when that version is gone (410) or
// the server was unreachable it lists again and reconciles the copy (objects
// that disappeared meanwhile are reported as deletes).
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "orchestrator/client/rest_client.h"

namespace kelpie::client {

struct InformerHandlers {
  std::function<void(const nlohmann::json& object)> on_add;
  std::function<void(const nlohmann::json& old_object, const nlohmann::json& new_object)> on_update;
  std::function<void(const nlohmann::json& object)> on_delete;
  // After each full list has been reconciled (the first one means "synced").
  std::function<void()> on_synced;
};

struct InformerOptions {
  std::string name_space;  // "" for every namespace
  std::string label_selector;
  std::string field_selector;
  // Watches are re-opened after this long, as client-go does, so that a
  // silently broken connection is noticed.
  int watch_timeout_seconds = 300;
};

class Informer {
 public:
  // `client` must outlive the informer and is used only by its thread.
  Informer(RestClient& client, ResourceRef resource, InformerOptions options = {});
  ~Informer();

  // Handlers run on the informer's thread, one at a time, in event order.
  void AddHandlers(InformerHandlers handlers);
  void Start();
  void Stop();

  bool HasSynced();
  bool WaitForSync(std::chrono::milliseconds timeout);

  // The current copy ("namespace/name" or "name" keys).
  std::optional<nlohmann::json> Get(const std::string& key);
  std::vector<nlohmann::json> List();
  static std::string KeyOf(const nlohmann::json& object);

 private:
  void Run();
  absl::Status ListAndReconcile(std::string* resource_version);
  absl::Status WatchFrom(std::string* resource_version);
  void Upsert(nlohmann::json object);
  void Remove(const nlohmann::json& object);

  RestClient& client_;
  const ResourceRef resource_;
  const InformerOptions options_;
  std::vector<InformerHandlers> handlers_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, nlohmann::json> objects_;
  bool synced_ = false;
  bool stopping_ = false;
  http::StreamCanceller canceller_;
  std::thread thread_;
};

}  // namespace kelpie::client
