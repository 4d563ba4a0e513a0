// Choosing and opening the store from command-line flags: what `kelpie
// server` uses. Keeps CLI11 and the backends out of the caller.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "orchestrator/store/store.h"

namespace CLI {
class App;
}

namespace kelpie::store {

struct StoreOptions {
  std::string backend = "embedded";  // "embedded" or "etcd"
  // Embedded: folder of the database (the server passes <data-dir>/store).
  std::string data_dir;
  std::vector<std::string> etcd_endpoints;
  std::string etcd_ca_file;
  std::string etcd_cert_file;
  std::string etcd_key_file;
  // Embedded: automatic compaction period (0 disables).
  std::chrono::seconds compaction_interval{std::chrono::minutes(5)};
  // "auto" (in front of etcd only: the embedded store is in memory
  // already), "true" or "false".
  std::string watch_cache = "auto";
};

// Registers --store, --etcd-endpoints, --etcd-cafile, --etcd-certfile,
// --etcd-keyfile and --compaction-interval on `app`, writing into `options`.
void AddStoreFlags(CLI::App& app, StoreOptions& options);

// Opens the selected backend; errors say which flag or file is at fault.
absl::StatusOr<std::unique_ptr<Store>> OpenStore(const StoreOptions& options);

}  // namespace kelpie::store
