#include "orchestrator/kubelet/kubelet.h"

#include <unistd.h>

#include <CLI/CLI.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/log.h"
#include "common/subprocess.h"
#include "common/version.h"
#include "orchestrator/api/object_meta.h"
#include "orchestrator/client/rest_client.h"
#include "orchestrator/kubelet/http_node_api.h"
#include "orchestrator/kubelet/pod_manager.h"
#include "orchestrator/controllers/rest_event_recorder.h"
#include "orchestrator/kubelet/image_pull_manager.h"
#include "orchestrator/runtime/image/image_puller.h"
#include "orchestrator/runtime/image/image_store.h"
#include "orchestrator/runtime/runc_pod_runtime.h"

namespace kelpie::kubelet {
namespace {

// "runc version 1.1.5\ncommit: ..." -> "1.1.5"
std::string RuncVersion() {
  auto result = RunSubprocess({"runc", "--version"});
  if (!result.ok() || result->exit_code != 0) return "";
  std::string first = result->stdout_text.substr(0, result->stdout_text.find('\n'));
  size_t space = first.rfind(' ');
  return space == std::string::npos ? "" : first.substr(space + 1);
}

}  // namespace

void AddKubeletFlags(CLI::App& app, KubeletOptions& options) {
  app.add_option("--node-name", options.node_name, "Name of this node (default: the host name, lower-cased)");
  app.add_option("--node-ip", options.node_ip,
                 "Address reported for this node (default: the address of the default route's interface)");
  app.add_option_function<std::vector<std::string>>(
         "--node-labels",
         [&options](const std::vector<std::string>& pairs) {
           for (const auto& pair : pairs) {
             std::pair<std::string, std::string> kv = absl::StrSplit(pair, absl::MaxSplits('=', 1));
             options.node_labels[kv.first] = kv.second;
           }
         },
         "Labels to add to this node's Node object: KEY=VALUE,...")
      ->delimiter(',');
  app.add_option("--max-pods", options.max_pods, "Pods this node accepts")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--register-node", options.register_node,
                 "Register this machine as a Node and keep its Lease and status current")
      ->capture_default_str();
  app.add_option("--kubelet-port", options.kubelet_port,
                 "HTTPS port of the kubelet API (logs, exec, port-forward) the API server proxies to; 0 turns "
                 "it off")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  app.add_option("--node-lease-duration-seconds", options.lease_duration_seconds,
                 "Duration of the node's Lease; the node lifecycle controller waits this long past the last "
                 "renewal")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--node-status-update-seconds", options.node_status_update_seconds,
                 "How often the node posts its full status when nothing changed")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  // Pods.
  app.add_option("--run-pods", options.pods.run_pods,
                 "Run the pods bound to this node (needs root, runc and the CNI plugins; off when "
                 "--register-node=false)")
      ->capture_default_str();
  app.add_option("--cluster-dns", options.pods.cluster_dns,
                 "Nameserver of pods with dnsPolicy ClusterFirst (\"\" = the host's resolv.conf)")
      ->capture_default_str();
  app.add_option("--cluster-domain", options.pods.cluster_domain, "Cluster DNS domain of pods' search paths")
      ->capture_default_str();
  app.add_option("--cni-bridge", options.pods.cni_bridge, "Linux bridge the pods of this node attach to")
      ->capture_default_str();
  app.add_option("--pod-cgroup-parent", options.pods.cgroup_parent,
                 "cgroup under which every pod gets its own directory")
      ->capture_default_str();
  app.add_option("--pod-log-dir", options.pods.log_dir, "Folder of container log files (CRI format)")
      ->capture_default_str();
  app.add_option("--max-parallel-pod-starts", options.pods.max_parallel_starts,
                 "How many pods start (sandbox, volumes, containers) at once; the others wait in arrival order")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  // Images.
  app.add_option("--image-pulls", options.pods.image_pulls,
                 "Pull images from registries as imagePullPolicy asks; false runs only images already in the "
                 "node's store (kelpie image import / pull)")
      ->capture_default_str();
  app.add_option("--insecure-registry", options.pods.insecure_registries,
                 "Registry (host:port) pulled from over plain HTTP instead of HTTPS; repeatable");
}

Kubelet::Kubelet() = default;

absl::StatusOr<std::unique_ptr<Kubelet>> Kubelet::Start(const KubeletOptions& options,
                                                        std::unique_ptr<http::HttpClient> client,
                                                        std::unique_ptr<http::HttpClient> pods_client) {
  NodeFactsOptions fo;
  fo.storage_path = options.data_dir;
  fo.node_ip = options.node_ip;
  fo.hostname = options.node_name;
  fo.runc_version = RuncVersion();
  auto facts = GatherNodeFacts(fo);
  if (!facts.ok()) return facts.status();
  std::unique_ptr<Kubelet> kubelet(new Kubelet());
  kubelet->node_name_ = options.node_name.empty() ? facts->hostname : options.node_name;
  if (!api::IsDns1123Subdomain(kubelet->node_name_)) {
    return absl::InvalidArgumentError(absl::StrCat("--node-name: \"", kubelet->node_name_,
                                                   "\" is not a valid node name (a DNS-1123 subdomain: lower-case "
                                                   "letters, digits, '-' and '.')"));
  }
  if (!options.register_node) return kubelet;
  NodeRegistrarOptions ro;
  ro.settings.name = kubelet->node_name_;
  ro.settings.max_pods = options.max_pods;
  ro.settings.labels = options.node_labels;
  ro.settings.kubelet_version = GetVersionInfo().git_version;
  ro.settings.kubelet_port = options.kubelet_port;
  ro.lease_duration = std::chrono::seconds(options.lease_duration_seconds);
  ro.renew_interval = std::chrono::seconds(std::max(1, options.lease_duration_seconds / 4));
  ro.status_interval = std::chrono::seconds(options.node_status_update_seconds);
  kubelet->api_ = std::make_unique<HttpNodeApi>(std::move(client));
  kubelet->registrar_ = std::make_unique<NodeRegistrar>(*kubelet->api_, *facts, ro);
  kubelet->registrar_thread_ = std::thread([k = kubelet.get()] { k->registrar_->Run(); });
  if (options.pods.run_pods && pods_client) {
    kubelet->pods_client_ = std::make_unique<client::RestClient>(std::move(pods_client));
    kubelet->pods_thread_ =
        std::thread([k = kubelet.get(), options, ip = facts->internal_ip, cpu = facts->cpu_millicores,
                     mem = facts->memory_bytes] { k->RunPods(options, ip, cpu, mem); });
  }
  spdlog::info("kubelet: node {} ({}, {} cpu, {} memory)", kubelet->node_name_, facts->internal_ip,
               CpuQuantity(facts->cpu_millicores), KibiQuantity(facts->memory_bytes));
  return kubelet;
}

void Kubelet::RunPods(KubeletOptions options, std::string node_ip, int64_t cpu_millis, int64_t memory_bytes) {
  // The API server gives the node its pod range when the Node is created.
  std::string pod_cidr;
  for (int attempt = 0;; ++attempt) {
    auto node = pods_client_->Get(client::resources::kNodes, "", node_name_);
    if (node.ok() && node->contains("spec")) pod_cidr = (*node)["spec"].value("podCIDR", "");
    if (!pod_cidr.empty()) break;
    if (attempt == 10) spdlog::warn("kubelet: waiting for node {} to get a pod CIDR before running pods", node_name_);
    std::unique_lock<std::mutex> lock(mu_);
    if (cv_.wait_for(lock, std::chrono::seconds(1), [&] { return stopping_; })) return;
  }
  auto images = image::ImageStore::Open(options.data_dir);
  if (!images.ok()) {
    spdlog::error("kubelet: image store: {}; pods will not run", images.status().message());
    return;
  }
  runtime::RuncRuntimeOptions ro;
  ro.state_dir = options.data_dir + "/runtime";
  ro.log_dir = options.pods.log_dir;
  ro.cgroup_parent = options.pods.cgroup_parent;
  ro.cni.bridge = options.pods.cni_bridge;
  ro.cni.pod_cidr = pod_cidr;
  ro.shim_command = options.pods.shim_command;
  if (ro.shim_command.empty()) {
    char exe[4096];
    ssize_t n = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    ro.shim_command = {n > 0 ? std::string(exe, static_cast<size_t>(n)) : "kelpie", "runtime-shim"};
  }
  auto rt = runtime::RuncPodRuntime::Create(ro, **images);
  if (!rt.ok()) {
    spdlog::error("kubelet: container runtime: {}; pods will not run (--run-pods=false turns this off)",
                  rt.status().message());
    return;
  }
  PodWorkerOptions po;
  {
    // The image pull step: policy, registry pulls, pull events.
    if (options.pods.image_pulls) {
      image::ImagePullerOptions pull_options;
      pull_options.insecure_registries.insert(options.pods.insecure_registries.begin(),
                                              options.pods.insecure_registries.end());
      puller_ = std::make_unique<image::ImagePuller>(**images, pull_options);
    }
    controllers::EventRecorderOptions eo;
    eo.component = "kubelet";
    eo.host = node_name_;
    events_ = std::make_unique<controllers::RestEventRecorder>(*pods_client_, eo);
    po.image_pulls = std::make_shared<ImagePullManager>(**images, puller_.get(), events_.get());
  }
  po.node_name = node_name_;
  po.node_ip = node_ip;
  po.pods_dir = options.data_dir + "/pods";
  po.cluster_dns = options.pods.cluster_dns;
  po.cluster_domain = options.pods.cluster_domain;
  po.node_cpu_millis = cpu_millis;
  po.node_memory_bytes = memory_bytes;
  po.max_parallel_starts = options.pods.max_parallel_starts;
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return;
  images_ = std::move(*images);
  runtime_ = std::move(*rt);
  pods_ = std::make_unique<PodManager>(po, *pods_client_, *runtime_, images_.get());
  pods_->Start();
  spdlog::info("kubelet: running pods of node {} (pod CIDR {}, bridge {})", node_name_, pod_cidr,
               options.pods.cni_bridge);
}

Kubelet::~Kubelet() { Stop(); }

void Kubelet::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    cv_.notify_all();
  }
  if (pods_thread_.joinable()) pods_thread_.join();
  if (pods_) pods_->Stop();
  if (events_) events_->Stop();
  if (registrar_) registrar_->Stop();
  if (registrar_thread_.joinable()) registrar_thread_.join();
}

}  // namespace kelpie::kubelet
