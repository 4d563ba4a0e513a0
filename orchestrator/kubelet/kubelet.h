// The kubelet as `kelpie server` (its local node) and `kelpie agent` run
// it: it registers the node and keeps its Lease and status fresh, and runs
// the pods bound to the node (PodManager over the runc runtime) once the
// node has its pod CIDR.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "common/http/http_client.h"
#include "orchestrator/kubelet/node_registrar.h"

namespace CLI {
class App;
}

namespace kelpie::image {
class ImageStore;
class ImagePuller;
}  // namespace kelpie::image
namespace kelpie::controllers {
class RestEventRecorder;
}
namespace kelpie::runtime {
class RuncPodRuntime;
}
namespace kelpie::client {
class RestClient;
}

namespace kelpie::kubelet {

class PodManager;

// Running pods (off with --run-pods=false or --register-node=false).
struct PodOptions {
  bool run_pods = true;
  std::string cluster_dns = "10.43.0.10";  // "" = pods with dnsPolicy ClusterFirst get the host's resolv.conf
  std::string cluster_domain = "cluster.local";
  std::string cni_bridge = "kelpie0";
  std::string cgroup_parent = "/kelpie.slice";
  std::string log_dir = "/var/log/pods";
  // Pods starting at once (see PodStartLimiter).
  int max_parallel_starts = 8;
  // How the runtime runs its shim; default: this executable's `runtime-shim`.
  std::vector<std::string> shim_command;
  // Registry pulls (imagePullPolicy honoured); off: only images already in
  // the node's store run.
  bool image_pulls = true;
  // host:port of registries pulled from over plain HTTP.
  std::vector<std::string> insecure_registries;
};

struct KubeletOptions {
  bool register_node = true;
  std::string node_name;  // default: the host name, lower-cased
  std::string node_ip;    // default: the address of the default route's interface
  std::map<std::string, std::string> node_labels;
  int max_pods = 110;
  int lease_duration_seconds = 40;
  int node_status_update_seconds = 60;
  // The kubelet API's port (advertised as
  // status.daemonEndpoints.kubeletEndpoint.Port); 0 serves none.
  int kubelet_port = 10250;
  // Folder whose filesystem is the node's ephemeral storage.
  std::string data_dir = "/var/lib/kelpie";
  PodOptions pods;
};

// --node-name, --node-ip, --node-labels, --max-pods, --register-node,
// --node-lease-duration-seconds, --node-status-update-seconds, and the pod
// flags --run-pods, --cluster-dns, --cluster-domain, --cni-bridge,
// --pod-cgroup-parent, --pod-log-dir, --max-parallel-pod-starts, --image-pulls,
// --insecure-registry.
void AddKubeletFlags(CLI::App& app, KubeletOptions& options);

class Kubelet {
 public:
  // Gathers the node's facts and starts registration and heartbeats in the
  // background; `client` authenticates as this node (or an admin).
  // `pods_client` (same identity) runs the pods bound to the node; without
  // it the kubelet only registers the node.
  static absl::StatusOr<std::unique_ptr<Kubelet>> Start(const KubeletOptions& options,
                                                        std::unique_ptr<http::HttpClient> client,
                                                        std::unique_ptr<http::HttpClient> pods_client = nullptr);
  ~Kubelet();
  void Stop();

  const std::string& node_name() const { return node_name_; }

 private:
  Kubelet();
  // Waits for the node's pod CIDR, then starts the runtime and the pod manager.
  void RunPods(KubeletOptions options, std::string node_ip, int64_t cpu_millis, int64_t memory_bytes);

  std::string node_name_;
  std::unique_ptr<NodeApi> api_;
  std::unique_ptr<NodeRegistrar> registrar_;
  std::thread registrar_thread_;

  std::unique_ptr<client::RestClient> pods_client_;
  std::unique_ptr<image::ImageStore> images_;
  std::unique_ptr<runtime::RuncPodRuntime> runtime_;
  // The image pull step: registry client and the pods' Pulling/Pulled/Failed/BackOff events.
  std::unique_ptr<image::ImagePuller> puller_;
  std::unique_ptr<controllers::RestEventRecorder> events_;
  std::unique_ptr<PodManager> pods_;
  std::thread pods_thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
};

}  // namespace kelpie::kubelet
