#include "orchestrator/store/store_options.h"

#include <CLI/CLI.hpp>

#include "absl/strings/str_cat.h"
#include "orchestrator/store/embedded_store.h"
#include "orchestrator/store/etcd_store.h"
#include "orchestrator/store/watch_cache.h"

namespace kelpie::store {

void AddStoreFlags(CLI::App& app, StoreOptions& options) {
  app.add_option("--store", options.backend,
                 "Where cluster state lives: 'embedded' (default; in-memory index with a "
                 "durable SQLite log under the data directory) or 'etcd' (an etcd v3 "
                 "cluster given by --etcd-endpoints)")
      ->check(CLI::IsMember({"embedded", "etcd"}))
      ->capture_default_str();
  app.add_option("--etcd-endpoints", options.etcd_endpoints,
                 "etcd client URLs for --store=etcd, comma-separated "
                 "(e.g. https://10.0.0.1:2379,https://10.0.0.2:2379); requests fail over "
                 "between them")
      ->delimiter(',');
  app.add_option("--etcd-cafile", options.etcd_ca_file,
                 "PEM CA bundle that signed the etcd servers' certificates (enables TLS)");
  app.add_option("--etcd-certfile", options.etcd_cert_file,
                 "PEM client certificate presented to etcd (with --etcd-keyfile)");
  app.add_option("--etcd-keyfile", options.etcd_key_file,
                 "PEM private key of --etcd-certfile");
  app.add_option_function<int64_t>(
         "--compaction-interval",
         [&options](const int64_t& seconds) {
           options.compaction_interval = std::chrono::seconds(seconds);
         },
         "Seconds between automatic compactions of the embedded store's history "
         "(each keeps one interval of history for watches to resume from; 0 disables; "
         "default 300)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--watch-cache", options.watch_cache,
                 "Serve lists and watches from memory, fed by one store watch per resource: "
                 "'auto' (default: with --store=etcd), 'true' or 'false'")
      ->check(CLI::IsMember({"auto", "true", "false"}))
      ->capture_default_str();
}

namespace {

absl::StatusOr<std::unique_ptr<Store>> OpenBackend(const StoreOptions& options) {
  if (options.backend == "embedded") {
    EmbeddedStoreOptions embedded;
    embedded.data_dir = options.data_dir;
    embedded.compaction_interval = options.compaction_interval;
    auto store = EmbeddedStore::Open(embedded);
    if (!store.ok()) return store.status();
    return std::unique_ptr<Store>(std::move(*store));
  }
  if (options.backend == "etcd") {
    if (options.etcd_endpoints.empty()) {
      return absl::InvalidArgumentError("--store=etcd needs --etcd-endpoints");
    }
    EtcdStoreOptions etcd;
    etcd.endpoints = options.etcd_endpoints;
    etcd.ca_file = options.etcd_ca_file;
    etcd.cert_file = options.etcd_cert_file;
    etcd.key_file = options.etcd_key_file;
    auto store = EtcdStore::Open(etcd);
    if (!store.ok()) return store.status();
    return std::unique_ptr<Store>(std::move(*store));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--store: unknown backend \"", options.backend, "\" (embedded or etcd)"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> OpenStore(const StoreOptions& options) {
  if (options.watch_cache != "auto" && options.watch_cache != "true" && options.watch_cache != "false") {
    return absl::InvalidArgumentError(
        absl::StrCat("--watch-cache: \"", options.watch_cache, "\" is not one of auto, true, false"));
  }
  auto backend = OpenBackend(options);
  if (!backend.ok()) return backend.status();
  bool cached = options.watch_cache == "true" || (options.watch_cache == "auto" && options.backend == "etcd");
  if (!cached) return backend;
  return std::unique_ptr<Store>(std::make_unique<WatchCachedStore>(std::move(*backend)));
}

}  // namespace kelpie::store
