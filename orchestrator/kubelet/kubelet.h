// The kubelet as `kelpie server` (its local node) and `kelpie agent` run
// it. Today it registers the node and keeps its Lease and status fresh;
// running pods joins it with the container runtime.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "common/http/http_client.h"
#include "orchestrator/kubelet/node_registrar.h"

namespace CLI {
class App;
}

namespace kelpie::kubelet {

struct KubeletOptions {
  bool register_node = true;
  std::string node_name;  // default: the host name, lower-cased
  std::string node_ip;    // default: the address of the default route's interface
  std::map<std::string, std::string> node_labels;
  int max_pods = 110;
  int lease_duration_seconds = 40;
  int node_status_update_seconds = 60;
  // Folder whose filesystem is the node's ephemeral storage.
  std::string data_dir = "/var/lib/kelpie";
};

// --node-name, --node-ip, --node-labels, --max-pods, --register-node,
// --node-lease-duration-seconds, --node-status-update-seconds.
void AddKubeletFlags(CLI::App& app, KubeletOptions& options);

class Kubelet {
 public:
  // Gathers the node's facts and starts registration and heartbeats in the
  // background; `client` authenticates as this node (or an admin).
  static absl::StatusOr<std::unique_ptr<Kubelet>> Start(const KubeletOptions& options,
                                                        std::unique_ptr<http::HttpClient> client);
  ~Kubelet();
  void Stop();

  const std::string& node_name() const { return node_name_; }

 private:
  Kubelet() = default;
  std::string node_name_;
  std::unique_ptr<NodeApi> api_;
  std::unique_ptr<NodeRegistrar> registrar_;
  std::thread registrar_thread_;
};

}  // namespace kelpie::kubelet
