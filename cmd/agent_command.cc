// `kelpie agent`: the node side. Today it authenticates to the API server
// with a kubeconfig and tracks the server's readiness; the kubelet, the
// eBPF dataplane and the exporters run inside it as they land.
#include <CLI/CLI.hpp>
#include <prometheus/registry.h>
#include <atomic>
#include <condition_variable>
#include <csignal>
#include <iostream>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "cmd/commands.h"
#include "common/config.h"
#include "common/files.h"
#include "common/http/http_client.h"
#include "common/log.h"
#include "common/signals.h"
#include "orchestrator/client/kubeconfig.h"
#include "control/dns/node_dns.h"
#include "control/service_proxy/service_cidr_route.h"
#include "control/service_proxy/service_routing.h"
#include "orchestrator/kubelet/kubelet.h"
#include "orchestrator/kubelet/node_bootstrap.h"
#include "orchestrator/kubelet/node_facts.h"
#include "orchestrator/kubelet/server/kubelet_api.h"
#include "exporters/observability/network_observability_flags.h"

namespace kelpie::cmd {
namespace {

struct AgentFlags {
  std::string kubeconfig;
  std::string server;  // overrides the kubeconfig's server
  std::string token;   // join token: credentials come from the server
  int health_interval_seconds = 10;
  std::string data_dir = "/var/lib/kelpie";
  kubelet::KubeletOptions kubelet;
  kubelet::KubeletApiOptions kubelet_api;
  service_proxy::ServiceRoutingOptions service_routing;
  dns::NodeDnsOptions dns;
  std::string service_cidr = "10.43.0.0/16";
  observability::NetworkObservabilityFlags observability;
  log::Flags log;
};

// Cluster DNS serves what the kubelet writes into pods' resolv.conf.
dns::NodeDnsOptions NodeDnsOptionsFor(const AgentFlags& f) {
  dns::NodeDnsOptions o = f.dns;
  o.address = f.kubelet.pods.cluster_dns;
  o.domain = f.kubelet.pods.cluster_domain;
  return o;
}

int RunAgent(const AgentFlags& f) {
  if (absl::Status s = log::InitFromFlags(f.log); !s.ok()) {
    std::cerr << "kelpie agent: " << s.message() << "\n";
    return 2;
  }
  if (f.kubeconfig.empty() == f.token.empty()) {
    spdlog::error("give either --server URL --token TOKEN (to join) or --kubeconfig FILE");
    return 2;
  }
  std::string kubeconfig_path = f.kubeconfig;
  std::optional<kubelet::NodeCredentials> joined;
  if (!f.token.empty()) {
    // Joining: node credentials from the server, trusted through the token.
    if (f.server.empty()) {
      spdlog::error("--token needs --server https://HOST:PORT (the server's address)");
      return 2;
    }
    if (absl::Status made = MakeDirectories(f.data_dir, 0700); !made.ok()) {
      spdlog::error("--data-dir: {}", made.message());
      return 2;
    }
    kubelet::NodeFactsOptions fo;
    fo.node_ip = f.kubelet.node_ip;
    fo.hostname = f.kubelet.node_name;
    fo.storage_path = f.data_dir;
    auto facts = kubelet::GatherNodeFacts(fo);
    if (!facts.ok()) {
      spdlog::error("node facts: {}", facts.status().message());
      return 2;
    }
    kubelet::NodeBootstrapOptions bo;
    bo.server = f.server;
    bo.token = f.token;
    bo.node_name = facts->hostname;
    bo.addresses = {facts->internal_ip};
    bo.directory = f.data_dir;
    auto credentials = kubelet::BootstrapNodeCredentials(bo);
    if (!credentials.ok()) {
      spdlog::error("joining {}: {}", f.server, credentials.status().message());
      return 2;
    }
    spdlog::info("{} node credentials for {} in {}", credentials->issued ? "received" : "reusing",
                 bo.node_name, credentials->kubeconfig_path);
    kubeconfig_path = credentials->kubeconfig_path;
    joined = *credentials;
  }
  auto kc = client::LoadKubeconfig(kubeconfig_path);
  if (!kc.ok()) {
    spdlog::error("--kubeconfig: {}", kc.status().message());
    return 2;
  }
  if (!f.server.empty()) kc->server = f.server;
  auto client = http::HttpClient::Create(client::ClientOptionsFromKubeconfig(*kc));
  if (!client.ok()) {
    spdlog::error("API client: {}", client.status().message());
    return 2;
  }
  BlockTerminationSignals();

  if (absl::Status made = MakeDirectories(f.data_dir, 0700); !made.ok()) {
    spdlog::error("--data-dir: {}", made.message());
    return 2;
  }
  // The service range is routed locally before anything else starts (see
  // kelpie server).
  if (f.service_routing.enabled) {
    if (absl::Status st = service_proxy::EnsureServiceCidrRoute(f.service_cidr); !st.ok()) {
      spdlog::error("service routing: {} (it needs root; --service-routing=false runs without it)", st.message());
      return 1;
    }
  }
  kubelet::KubeletOptions ko = f.kubelet;
  ko.data_dir = f.data_dir;
  auto node_client = http::HttpClient::Create(client::ClientOptionsFromKubeconfig(*kc));
  if (!node_client.ok()) {
    spdlog::error("API client: {}", node_client.status().message());
    return 2;
  }
  // Pods bound to this node run through their own client (flags: --run-pods and the pod block).
  auto pods_client = http::HttpClient::Create(client::ClientOptionsFromKubeconfig(*kc));
  if (!pods_client.ok()) {
    spdlog::error("API client: {}", pods_client.status().message());
    return 2;
  }
  // --- kubelet API: logs, exec, port-forward for the API server --------------
  std::unique_ptr<kubelet::KubeletApi> kubelet_api;
  if (ko.register_node && ko.kubelet_port != 0) {
    kubelet::KubeletApiOptions ao = f.kubelet_api;
    ao.port = ko.kubelet_port;
    ao.pod_log_dir = f.kubelet.pods.log_dir;
    if (ao.client_ca_file.empty() && !kc->ca_certificate_pem.empty()) {
      // The cluster CA from the kubeconfig: the API server's kubelet client
      // certificate chains to it.
      ao.client_ca_file = f.data_dir + "/kubelet-client-ca.crt";
      if (absl::Status st = WriteFileAtomically(ao.client_ca_file, kc->ca_certificate_pem, 0644); !st.ok()) {
        spdlog::error("kubelet API: {}", st.message());
        return 1;
      }
    }
    if ((ao.certificate_file.empty() || ao.private_key_file.empty()) && joined) {
      // The serving certificate the server issued when this node joined.
      ao.certificate_file = joined->serving_certificate_file;
      ao.private_key_file = joined->serving_key_file;
    }
    if (ao.certificate_file.empty() || ao.private_key_file.empty()) {
      spdlog::warn("kubelet API not served: --kubelet-tls-cert-file and --kubelet-tls-private-key-file (a "
                   "certificate from the cluster CA for this node's address) are needed");
    } else {
      auto started = kubelet::KubeletApi::Start(ao, f.data_dir);
      if (!started.ok()) {
        spdlog::error("kubelet API not served: {}", started.status().message());
      } else {
        kubelet_api = std::move(*started);
      }
    }
  }
  // --- end of kubelet API -----------------------------------------------------
  auto node = kubelet::Kubelet::Start(ko, std::move(*node_client), std::move(*pods_client));
  if (!node.ok()) {
    spdlog::error("kubelet: {}", node.status().message());
    return 2;
  }
  auto metrics = std::make_shared<prometheus::Registry>();
  std::unique_ptr<service_proxy::ServiceRouting> routing;
  if (f.service_routing.enabled) {
    service_proxy::ServiceRoutingOptions so = f.service_routing;
    so.node_name = (*node)->node_name();
    so.service_cidr = f.service_cidr;
    auto started = service_proxy::ServiceRouting::Start(so, client::ClientOptionsFromKubeconfig(*kc), *metrics);
    if (!started.ok()) {
      spdlog::error("service routing: {} (it needs root; --service-routing=false runs without it)",
                    started.status().message());
      return 1;
    }
    routing = std::move(*started);
  }
  // Cluster DNS answered on this node (the server creates kube-dns).
  std::unique_ptr<dns::NodeDns> cluster_dns;
  if (f.dns.enabled && !f.kubelet.pods.cluster_dns.empty()) {
    auto started = dns::NodeDns::Start(NodeDnsOptionsFor(f), client::ClientOptionsFromKubeconfig(*kc), metrics.get());
    if (!started.ok()) {
      spdlog::error("cluster DNS: {} (it needs root; --dns=false runs without it)", started.status().message());
      if (routing) routing->Stop();
      (*node)->Stop();
      return 1;
    }
    cluster_dns = std::move(*started);
  }

  // --- network observability (flows, TCP health, /metrics, /v1/flows) ------
  auto observability =
      observability::StartFromFlags(f.observability, (*node)->node_name(), f.data_dir,
                                    client::ClientOptionsFromKubeconfig(*kc));
  if (!observability.ok()) {
    spdlog::error("network observability: {} (--network-observability=false runs without it)",
                  observability.status().message());
    if (cluster_dns) cluster_dns->Stop();
    if (routing) routing->Stop();
    (*node)->Stop();
    return 1;
  }
  // --- end of network observability -----------------------------------------

  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  std::thread health([&] {
    std::optional<bool> last_ready;
    std::unique_lock<std::mutex> lock(mu);
    while (!stopping) {
      lock.unlock();
      auto r = (*client)->Do({.method = "GET", .target = "/readyz"});
      bool ready = r.ok() && r->status == 200;
      if (!last_ready || *last_ready != ready) {
        if (ready) {
          spdlog::info("API server {} is ready", kc->server);
        } else {
          spdlog::warn("API server {} is not ready: {}", kc->server,
                       r.ok() ? absl::StrCat("HTTP ", r->status, " ", r->body)
                              : std::string(r.status().message()));
        }
        last_ready = ready;
      }
      lock.lock();
      cv.wait_for(lock, std::chrono::seconds(f.health_interval_seconds), [&] { return stopping; });
    }
  });
  int sig = WaitForTerminationSignal();
  spdlog::info("received {}, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
  {
    std::lock_guard<std::mutex> lock(mu);
    stopping = true;
  }
  cv.notify_all();
  health.join();
  if (cluster_dns) cluster_dns->Stop();
  if (*observability) (*observability)->Stop();
  if (routing) routing->Stop();
  (*node)->Stop();
  if (kubelet_api) kubelet_api->Stop();
  spdlog::info("stopped");
  return 0;
}

}  // namespace

CommandRunner RegisterAgentCommand(CLI::App& root) {
  CLI::App* app = root.add_subcommand(
      "agent", "Run the node agent: registers this machine as a Node with the API server given by a "
               "kubeconfig, keeps its Lease and status current, and tracks the server's readiness "
               "(running pods, the eBPF dataplane and exporters join it in later releases)");
  auto f = std::make_shared<AgentFlags>();
  AddYamlConfigOption(*app);
  app->add_option("--kubeconfig", f->kubeconfig,
                  "kubeconfig with the API server's address, its CA and this node's credentials "
                  "(instead of --token)");
  app->add_option("--token", f->token,
                  "Join token printed by the server (<data-dir>/token there): with --server, the agent "
                  "checks the server's CA against it and gets its node credentials");
  app->add_option("--server", f->server,
                  "API server URL (https://HOST:PORT): where to join with --token, or overriding the "
                  "kubeconfig's");
  app->add_option("--health-interval-seconds", f->health_interval_seconds,
                  "How often to check the API server's /readyz")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app->add_option("--data-dir", f->data_dir, "Folder for this node's state (images, pods, logs)")
      ->capture_default_str();
  kubelet::AddKubeletFlags(*app, f->kubelet);
  kubelet::AddKubeletApiFlags(*app, f->kubelet_api);
  app->add_option("--service-cidr", f->service_cidr,
                  "The cluster's Service range (routed locally so unknown service addresses fail on the node)")
      ->capture_default_str();
  service_proxy::AddServiceRoutingFlags(*app, f->service_routing);
  dns::AddNodeDnsFlags(*app, f->dns);
  observability::AddNetworkObservabilityFlags(*app, f->observability);
  log::AddFlags(*app, f->log);
  return [f] { return RunAgent(*f); };
}

}  // namespace kelpie::cmd
