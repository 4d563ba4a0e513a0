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
#include "control/service_proxy/service_cidr_route.h"
#include "control/service_proxy/service_routing.h"
#include "orchestrator/kubelet/kubelet.h"
#include "exporters/observability/network_observability_flags.h"

namespace kelpie::cmd {
namespace {

struct AgentFlags {
  std::string kubeconfig;
  std::string server;  // overrides the kubeconfig's server
  int health_interval_seconds = 10;
  std::string data_dir = "/var/lib/kelpie";
  kubelet::KubeletOptions kubelet;
  service_proxy::ServiceRoutingOptions service_routing;
  std::string service_cidr = "10.43.0.0/16";
  observability::NetworkObservabilityFlags observability;
  log::Flags log;
};

int RunAgent(const AgentFlags& f) {
  if (absl::Status s = log::InitFromFlags(f.log); !s.ok()) {
    std::cerr << "kelpie agent: " << s.message() << "\n";
    return 2;
  }
  auto kc = client::LoadKubeconfig(f.kubeconfig);
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
  auto node = kubelet::Kubelet::Start(ko, std::move(*node_client));
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

  // --- network observability (flows, TCP health, /metrics, /v1/flows) ------
  auto observability =
      observability::StartFromFlags(f.observability, (*node)->node_name(), f.data_dir,
                                    client::ClientOptionsFromKubeconfig(*kc));
  if (!observability.ok()) {
    spdlog::error("network observability: {} (--network-observability=false runs without it)",
                  observability.status().message());
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
  if (*observability) (*observability)->Stop();
  if (routing) routing->Stop();
  (*node)->Stop();
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
                  "kubeconfig with the API server's address, its CA and this node's credentials")
      ->required();
  app->add_option("--server", f->server,
                  "API server URL (https://HOST:PORT), overriding the kubeconfig's");
  app->add_option("--health-interval-seconds", f->health_interval_seconds,
                  "How often to check the API server's /readyz")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app->add_option("--data-dir", f->data_dir, "Folder for this node's state (images, pods, logs)")
      ->capture_default_str();
  kubelet::AddKubeletFlags(*app, f->kubelet);
  app->add_option("--service-cidr", f->service_cidr,
                  "The cluster's Service range (routed locally so unknown service addresses fail on the node)")
      ->capture_default_str();
  service_proxy::AddServiceRoutingFlags(*app, f->service_routing);
  observability::AddNetworkObservabilityFlags(*app, f->observability);
  log::AddFlags(*app, f->log);
  return [f] { return RunAgent(*f); };
}

}  // namespace kelpie::cmd
