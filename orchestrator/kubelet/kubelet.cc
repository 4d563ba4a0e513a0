#include "orchestrator/kubelet/kubelet.h"

#include <CLI/CLI.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/log.h"
#include "common/subprocess.h"
#include "common/version.h"
#include "orchestrator/api/object_meta.h"
#include "orchestrator/kubelet/http_node_api.h"

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
  app.add_option("--node-lease-duration-seconds", options.lease_duration_seconds,
                 "Duration of the node's Lease; the node lifecycle controller waits this long past the last "
                 "renewal")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--node-status-update-seconds", options.node_status_update_seconds,
                 "How often the node posts its full status when nothing changed")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
}

absl::StatusOr<std::unique_ptr<Kubelet>> Kubelet::Start(const KubeletOptions& options,
                                                        std::unique_ptr<http::HttpClient> client) {
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
  ro.lease_duration = std::chrono::seconds(options.lease_duration_seconds);
  ro.renew_interval = std::chrono::seconds(std::max(1, options.lease_duration_seconds / 4));
  ro.status_interval = std::chrono::seconds(options.node_status_update_seconds);
  kubelet->api_ = std::make_unique<HttpNodeApi>(std::move(client));
  kubelet->registrar_ = std::make_unique<NodeRegistrar>(*kubelet->api_, *facts, ro);
  kubelet->registrar_thread_ = std::thread([k = kubelet.get()] { k->registrar_->Run(); });
  spdlog::info("kubelet: node {} ({}, {} cpu, {} memory)", kubelet->node_name_, facts->internal_ip,
               CpuQuantity(facts->cpu_millicores), KibiQuantity(facts->memory_bytes));
  return kubelet;
}

Kubelet::~Kubelet() { Stop(); }

void Kubelet::Stop() {
  if (registrar_) registrar_->Stop();
  if (registrar_thread_.joinable()) registrar_thread_.join();
}

}  // namespace kelpie::kubelet
