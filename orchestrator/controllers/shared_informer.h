// Informer: a reflector that lists a resource and then watches it from the
// list's resourceVersion (with bookmarks), keeping an ObjectStore current and
// calling event handlers. On 410 Gone, an ERROR event, a transport failure
// or the end of the stream it rewatches (from the last seen version) or
// relists with backoff; a relist reports objects that vanished meanwhile as
// deletes whose final state is unknown (tombstones). Handlers all run on the
// informer's own thread, in event order.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "orchestrator/client/rest_client.h"
#include "orchestrator/controllers/object_store.h"

namespace kelpie::controllers {

struct EventHandlers {
  std::function<void(const nlohmann::json& obj)> on_add;
  // Also called with old == new on periodic resync.
  std::function<void(const nlohmann::json& old_obj, const nlohmann::json& new_obj)> on_update;
  // final_state_unknown: the delete was missed (seen only on relist); `obj`
  // is the last state the informer knew.
  std::function<void(const nlohmann::json& obj, bool final_state_unknown)> on_delete;
};

struct InformerOptions {
  client::ResourceRef resource;
  std::string ns;  // "" = all namespaces
  std::string label_selector;
  std::string field_selector;
  std::chrono::milliseconds resync_period{0};  // 0: no resync
  int64_t page_size = 500;
  std::chrono::milliseconds min_backoff{100};
  std::chrono::milliseconds max_backoff{5000};
};

class SharedInformer {
 public:
  SharedInformer(client::RestClient& client, InformerOptions options);
  ~SharedInformer();
  SharedInformer(const SharedInformer&) = delete;
  SharedInformer& operator=(const SharedInformer&) = delete;

  // Before Start.
  void AddEventHandler(EventHandlers handlers);
  void AddIndexer(const std::string& name, IndexFunc fn) { store_.AddIndexer(name, std::move(fn)); }

  void Start();
  // Stops the reflector thread; a running watch is cancelled at once.
  void Stop();

  // True once the first list has been delivered to the handlers.
  bool HasSynced() const { return synced_.load(); }
  bool WaitForSync(std::chrono::milliseconds timeout);

  const ObjectStore& store() const { return store_; }
  const InformerOptions& options() const { return options_; }
  // Number of full lists done (1 after the first sync); for tests and metrics.
  int ListCount() const { return list_count_.load(); }
  std::string LastResourceVersion() const;

 private:
  void Run();
  absl::Status ListAndReplace();
  // Watches until the stream ends or fails; returns the reason.
  absl::Status WatchOnce();
  void Resync();
  bool SleepUnlessStopped(std::chrono::milliseconds d);
  void SetResourceVersion(const std::string& rv);

  client::RestClient& client_;
  const InformerOptions options_;
  ObjectStore store_;
  std::vector<EventHandlers> handlers_;

  std::thread thread_;
  std::atomic<bool> stop_{false};
  http::StreamCanceller canceller_;
  std::atomic<bool> synced_{false};
  std::atomic<int> list_count_{0};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string resource_version_;
  std::chrono::steady_clock::time_point next_resync_;
};

}  // namespace kelpie::controllers
