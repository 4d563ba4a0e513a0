// `kelpie server`: the control plane (API server) on this machine.
#include <malloc.h>
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <prometheus/registry.h>
#include <csignal>
#include <iostream>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "cmd/commands.h"
#include "common/config.h"
#include "common/files.h"
#include "common/log.h"

#include <fmt/ranges.h>
#include "common/net/ip_cidr.h"
#include "common/signals.h"
#include "exporters/observability/network_observability_flags.h"
#include "exporters/state_metrics/cluster_state_metrics.h"
#include "orchestrator/api/resource_registry.h"
#include "orchestrator/apiserver/api_server.h"
#include "orchestrator/apiserver/api_server_config.h"
#include "orchestrator/apiserver/instrumented_store.h"
#include "orchestrator/apiserver/resource_api.h"
#include "orchestrator/apiserver/node_strategy.h"
#include "orchestrator/apiserver/service_strategy.h"
#include "orchestrator/apiserver/stateful_set_strategy.h"
#include "orchestrator/client/kubeconfig.h"
#include "orchestrator/client/rest_client.h"
#include "orchestrator/controllers/controller_manager.h"
#include "orchestrator/controllers/core/core_controllers.h"
#include "orchestrator/controllers/workloads/workload_controllers.h"
#include "control/service_proxy/service_cidr_route.h"
#include "control/dns/node_dns.h"
#include "control/service_proxy/service_routing.h"
#include "orchestrator/apiserver/pod_stream_proxy.h"
#include "orchestrator/kubelet/kubelet.h"
#include "orchestrator/apiserver/join_api.h"
#include "orchestrator/scheduler/scheduler_config.h"
#include "orchestrator/scheduler/scheduler_service.h"
#include "orchestrator/kubelet/server/kubelet_api.h"
#include "orchestrator/pki/cluster_pki.h"
#include "orchestrator/pki/join_token.h"
#include "orchestrator/store/store.h"
#include "orchestrator/store/store_options.h"

namespace kelpie::cmd {
namespace {

struct ServerFlags {
  std::string data_dir = "/var/lib/kelpie";
  std::string bind_address = "0.0.0.0";
  uint16_t secure_port = 6443;
  std::string advertise_address = "127.0.0.1";
  std::vector<std::string> tls_sans;
  std::string service_cidr = "10.43.0.0/16";
  std::string cluster_cidr = "10.42.0.0/16";
  int node_cidr_mask_size = 24;
  std::string service_node_port_range = "30000-32767";
  std::string write_kubeconfig;  // default: <data-dir>/kubeconfig.yaml
  std::string write_kubeconfig_mode = "0600";
  std::string token;  // join secret; default: random, kept in <data-dir>/token
  observability::NetworkObservabilityFlags observability;
  log::Flags log;
  int shutdown_grace_seconds = 15;
  store::StoreOptions store;
  kubelet::KubeletOptions kubelet;
  kubelet::KubeletApiOptions kubelet_api;
  service_proxy::ServiceRoutingOptions service_routing;
  dns::NodeDnsOptions dns;
  apiserver::ApiServerConfig api;
  controllers::ControllerManagerFlags controller_manager;
  controllers::CoreControllerFlags core_controllers;
  bool scheduler = true;
  std::string scheduler_config;
  bool state_metrics = true;
};

// Every controller `kelpie server` can run (--controllers picks among them).
std::vector<controllers::ControllerDescriptor> AllControllers(const controllers::CoreControllerOptions& core) {
  std::vector<controllers::ControllerDescriptor> all = controllers::CoreControllers(core);
  for (auto& d : controllers::workloads::WorkloadControllerDescriptors()) all.push_back(std::move(d));
  return all;
}

// Cluster DNS serves what the kubelet writes into pods' resolv.conf.
dns::NodeDnsOptions NodeDnsOptionsFor(const ServerFlags& f) {
  dns::NodeDnsOptions o = f.dns;
  o.address = f.kubelet.pods.cluster_dns;
  o.domain = f.kubelet.pods.cluster_domain;
  return o;
}

int RunServer(const ServerFlags& f) {
  // The API server allocates and frees large bodies (lists of thousands of
  // objects) and many small objects per request; glibc's defaults return
  // memory to the kernel after each burst and fault it back in on the next.
  // Keep freed memory in the heap up to a bound instead.
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  mallopt(M_TOP_PAD, 16 << 20);
  if (absl::Status s = log::InitFromFlags(f.log); !s.ok()) {
    std::cerr << "kelpie server: " << s.message() << "\n";
    return 2;
  }
  auto service_cidr = net::Ipv4Cidr::Parse(f.service_cidr);
  if (!service_cidr.ok()) {
    spdlog::error("--service-cidr: {}", service_cidr.status().message());
    return 2;
  }
  auto cluster_cidr = net::Ipv4Cidr::Parse(f.cluster_cidr);
  if (!cluster_cidr.ok()) {
    spdlog::error("--cluster-cidr: {}", cluster_cidr.status().message());
    return 2;
  }
  if (f.node_cidr_mask_size < cluster_cidr->prefix_length() || f.node_cidr_mask_size > 30) {
    spdlog::error("--node-cidr-mask-size: {} must be between the cluster CIDR's prefix length ({}) and 30",
                  f.node_cidr_mask_size, cluster_cidr->prefix_length());
    return 2;
  }
  apiserver::NodePortRange node_ports;
  {
    auto dash = f.service_node_port_range.find('-');
    bool ok = dash != std::string::npos &&
              absl::SimpleAtoi(f.service_node_port_range.substr(0, dash), &node_ports.first) &&
              absl::SimpleAtoi(f.service_node_port_range.substr(dash + 1), &node_ports.last) &&
              node_ports.first >= 1 && node_ports.last <= 65535 && node_ports.first <= node_ports.last;
    if (!ok) {
      spdlog::error("--service-node-port-range: \"{}\" is not a port range such as 30000-32767",
                    f.service_node_port_range);
      return 2;
    }
  }
  unsigned long mode = 0;
  try {
    mode = std::stoul(f.write_kubeconfig_mode, nullptr, 8);
  } catch (...) {
    mode = 010000;
  }
  if (mode > 0777) {
    spdlog::error("--write-kubeconfig-mode: \"{}\" is not an octal file mode such as 0600",
                  f.write_kubeconfig_mode);
    return 2;
  }

  // Signals are blocked before any thread starts so that only the main
  // thread receives them.
  BlockTerminationSignals();

  absl::Status dir = MakeDirectories(f.data_dir, 0700);
  if (!dir.ok()) {
    spdlog::error("{}", dir.message());
    return 1;
  }
  pki::ClusterPkiOptions po;
  po.directory = f.data_dir + "/pki";
  po.extra_sans = f.tls_sans;
  po.extra_sans.push_back(f.advertise_address);
  po.first_service_ip = *service_cidr->AddressAt(1);
  auto cluster_pki = pki::EnsureClusterPki(po);
  if (!cluster_pki.ok()) {
    spdlog::error("cluster certificates: {}", cluster_pki.status().message());
    return 1;
  }
  if (cluster_pki->created_ca) spdlog::info("created cluster CA in {}", po.directory);
  if (cluster_pki->reissued_serving) spdlog::info("issued API server certificate");

  store::StoreOptions so = f.store;
  if (so.data_dir.empty()) so.data_dir = f.data_dir + "/store";
  auto cluster_store = store::OpenStore(so);
  if (!cluster_store.ok()) {
    spdlog::error("store: {}", cluster_store.status().message());
    return 1;
  }
  std::shared_ptr<store::Store> state_store = std::move(*cluster_store);
  if (so.backend == "embedded") {
    spdlog::info("store: embedded, data in {}", so.data_dir);
  } else {
    spdlog::info("store: etcd at {}", fmt::join(so.etcd_endpoints, ","));
  }

  // --- API server security, limits and metrics ---------------------------
  apiserver::ApiServerOptions ao;
  if (absl::Status st = apiserver::ApplyApiServerLimits(f.api, &ao); !st.ok()) {
    spdlog::error("{}", st.message());
    return 2;
  }
  // Every store call of the API goes through the instrumented store
  // (etcd_request_duration_seconds); authentication, RBAC, the token and
  // review APIs and the audit log come from the API-server flags.
  auto api_metrics = std::make_shared<prometheus::Registry>();
  std::shared_ptr<store::Store> api_store = std::make_shared<apiserver::InstrumentedStore>(state_store, *api_metrics);
  if (cluster_pki->created_service_account_key) {
    spdlog::info("created the service-account signing key {}", cluster_pki->service_account_key_file);
  }
  auto security = apiserver::BuildApiServerSecurity(f.api, *api_store, cluster_pki->service_account.private_key_pem,
                                                    cluster_pki->service_account.public_key_pem, *api_metrics);
  if (!security.ok()) {
    spdlog::error("{}", security.status().message());
    return 1;
  }
  // Agents join with the token in <data-dir>/token (see join_api.h).
  auto join_token = pki::EnsureJoinToken(f.data_dir + "/token", cluster_pki->ca.certificate_pem, f.token);
  if (!join_token.ok()) {
    spdlog::error("join token: {}", join_token.status().message());
    return 1;
  }
  security->join_api = std::make_shared<apiserver::JoinApi>(cluster_pki->ca, join_token->secret);
  // --- end of API server security -------------------------------------------

  ao.bind_address = f.bind_address;
  ao.secure_port = f.secure_port;
  ao.tls.certificate_file = cluster_pki->serving_certificate_file;
  ao.tls.private_key_file = cluster_pki->serving_key_file;
  ao.tls.client_ca_file = cluster_pki->ca_certificate_file;
  std::map<std::string, std::shared_ptr<apiserver::ResourceStrategy>> strategies;
  strategies["Service"] = std::make_shared<apiserver::ServiceStrategy>(
      *api_store, *service_cidr, node_ports);
  strategies["Node"] = std::make_shared<apiserver::NodeStrategy>(*api_store, *cluster_cidr, f.node_cidr_mask_size);
  strategies["StatefulSet"] = std::make_shared<apiserver::StatefulSetStrategy>();
  apiserver::ResourceApi resources(*api_store, api::ResourceRegistry::Builtin(), strategies);
  if (absl::Status st = resources.EnsureDefaultNamespaces(); !st.ok()) {
    spdlog::error("creating the default namespaces: {}", st.message());
    return 1;
  }
  // Route the service range locally before anything can connect to a
  // service address: until the load balancer is loaded, such a connection
  // must fail on this machine, not follow the default route.
  if (f.service_routing.enabled) {
    if (absl::Status st = service_proxy::EnsureServiceCidrRoute(f.service_cidr); !st.ok()) {
      spdlog::error("service routing: {} (it needs root; --service-routing=false runs without it)", st.message());
      return 1;
    }
  }
  apiserver::ApiServer api(ao, &resources, std::move(*security), api_metrics);
  api.AddReadinessCheck("store", [state_store] { return state_store->CurrentRevision().status(); });
  // Ready only once the `kubernetes` Service exists (kube-apiserver's
  // poststarthook/bootstrap-controller), so clients never see it missing.
  auto bootstrapped = std::make_shared<std::atomic<bool>>(false);
  api.AddReadinessCheck("poststarthook/bootstrap-controller", [bootstrapped] {
    return bootstrapped->load() ? absl::OkStatus() : absl::UnavailableError("the kubernetes Service is not created yet");
  });

  // --- kubelet API: pods/log, exec, attach, portforward ---------------------
  // The API server proxies those to the pod's kubelet with its own client
  // certificate; this node's kubelet API serves with a certificate from the
  // same CA.
  std::optional<pki::KubeletCertificates> kubelet_certs;
  {
    std::vector<std::string> node_dns, node_ips;
    pki::DefaultServingSans(po, &node_dns, &node_ips);
    node_ips.push_back(f.advertise_address);
    if (!f.kubelet.node_ip.empty()) node_ips.push_back(f.kubelet.node_ip);
    if (!f.kubelet.node_name.empty()) node_dns.insert(node_dns.begin(), f.kubelet.node_name);
    auto issued = pki::IssueKubeletCertificates(*cluster_pki, po.directory, node_ips, node_dns);
    if (!issued.ok()) {
      spdlog::error("kubelet certificates: {}", issued.status().message());
      return 1;
    }
    kubelet_certs = std::move(*issued);
    apiserver::KubeletClientOptions kco;
    kco.tls.ca_pem = cluster_pki->ca.certificate_pem;
    kco.tls.certificate_pem = kubelet_certs->apiserver_client.certificate_pem;
    kco.tls.private_key_pem = kubelet_certs->apiserver_client.private_key_pem;
    api.SetPodStreamProxy(std::make_shared<apiserver::PodStreamProxy>(*api_store, kco));
  }
  std::unique_ptr<kubelet::KubeletApi> kubelet_api;
  if (f.kubelet.register_node && f.kubelet.kubelet_port != 0) {
    kubelet::KubeletApiOptions ko = f.kubelet_api;
    ko.port = f.kubelet.kubelet_port;
    ko.pod_log_dir = f.kubelet.pods.log_dir;
    if (ko.certificate_file.empty()) ko.certificate_file = kubelet_certs->serving_certificate_file;
    if (ko.private_key_file.empty()) ko.private_key_file = kubelet_certs->serving_key_file;
    if (ko.client_ca_file.empty()) ko.client_ca_file = cluster_pki->ca_certificate_file;
    auto started = kubelet::KubeletApi::Start(ko, f.data_dir);
    if (!started.ok()) {
      // The control plane stays useful without it (no runc, no root).
      spdlog::error("kubelet API not served: {}", started.status().message());
    } else {
      kubelet_api = std::move(*started);
    }
  }
  // --- end of kubelet API -----------------------------------------------------
  if (absl::Status st = api.Start(); !st.ok()) {
    spdlog::error("API server: {}", st.message());
    return 1;
  }

  std::string kubeconfig_path =
      f.write_kubeconfig.empty() ? f.data_dir + "/kubeconfig.yaml" : f.write_kubeconfig;
  client::KubeconfigContents kc;
  kc.server = absl::StrCat("https://", f.advertise_address.find(':') != std::string::npos
                                           ? absl::StrCat("[", f.advertise_address, "]")
                                           : f.advertise_address,
                           ":", api.port());
  kc.ca_certificate_pem = cluster_pki->ca.certificate_pem;
  kc.client_certificate_pem = cluster_pki->admin.certificate_pem;
  kc.client_key_pem = cluster_pki->admin.private_key_pem;
  if (absl::Status st = client::WriteKubeconfig(kubeconfig_path, kc, static_cast<mode_t>(mode));
      !st.ok()) {
    spdlog::error("writing kubeconfig: {}", st.message());
    api.Shutdown(std::chrono::milliseconds(0));
    return 1;
  }
  if (net::ParseIpv4(f.advertise_address).ok()) {
    absl::Status st = resources.EnsureKubernetesService(*service_cidr->AddressAt(1), f.advertise_address, api.port());
    if (!st.ok()) {
      spdlog::error("creating the kubernetes Service: {}", st.message());
      api.Shutdown(std::chrono::milliseconds(0));
      return 1;
    }
  }
  bootstrapped->store(true);
  // The server's own node: registered through the API like any agent's.
  std::unique_ptr<kubelet::Kubelet> local_node;
  {
    kubelet::KubeletOptions ko = f.kubelet;
    ko.data_dir = f.data_dir;
    auto node_client = http::HttpClient::Create(client::ClientOptionsFromKubeconfig(kc));
    // Pods bound to this node run through their own client (flags: --run-pods and the pod block).
    auto pods_client = http::HttpClient::Create(client::ClientOptionsFromKubeconfig(kc));
    auto started = node_client.ok() && pods_client.ok()
                       ? kubelet::Kubelet::Start(ko, std::move(*node_client), std::move(*pods_client))
                       : absl::StatusOr<std::unique_ptr<kubelet::Kubelet>>(
                             node_client.ok() ? pods_client.status() : node_client.status());
    if (!started.ok()) {
      spdlog::error("kubelet: {}", started.status().message());
      api.Shutdown(std::chrono::milliseconds(0));
      return 1;
    }
    local_node = std::move(*started);
  }
  // Services reach their endpoints from this node through the eBPF socket
  // load balancer (kube-proxy's job).
  auto metrics = std::make_shared<prometheus::Registry>();
  std::unique_ptr<service_proxy::ServiceRouting> routing;
  if (f.service_routing.enabled) {
    service_proxy::ServiceRoutingOptions so = f.service_routing;
    so.node_name = local_node->node_name();
    so.service_cidr = f.service_cidr;
    auto started = service_proxy::ServiceRouting::Start(so, client::ClientOptionsFromKubeconfig(kc), *metrics);
    if (!started.ok()) {
      spdlog::error("service routing: {} (it needs root; --service-routing=false runs without it)",
                    started.status().message());
      local_node->Stop();
      api.Shutdown(std::chrono::milliseconds(0));
      return 1;
    }
    routing = std::move(*started);
  }
  // Cluster DNS: kube-system/kube-dns reserves the address; this node
  // answers it on a local link (see control/dns/node_dns.h).
  std::unique_ptr<dns::NodeDns> cluster_dns;
  if (f.dns.enabled && !f.kubelet.pods.cluster_dns.empty()) {
    auto dns_client = client::RestClient::Create(client::ClientOptionsFromKubeconfig(kc));
    absl::Status st = dns_client.ok() ? dns::EnsureKubeDnsService(**dns_client, f.kubelet.pods.cluster_dns) : dns_client.status();
    if (st.ok()) {
      auto started = dns::NodeDns::Start(NodeDnsOptionsFor(f), client::ClientOptionsFromKubeconfig(kc), metrics.get());
      if (started.ok()) cluster_dns = std::move(*started);
      st = started.status();
    }
    if (!st.ok()) {
      spdlog::error("cluster DNS: {} (it needs root; --dns=false runs without it)", st.message());
      if (routing) routing->Stop();
      local_node->Stop();
      api.Shutdown(std::chrono::milliseconds(0));
      return 1;
    }
  }
  // --- controller manager ---------------------------------------------------
  // kube-controller-manager's part, as the admin (the same credentials as
  // the node's and service routing's clients); several servers elect one
  // active manager through the Lease kube-system/kube-controller-manager.
  std::unique_ptr<client::RestClient> controller_client;
  std::unique_ptr<controllers::ControllerManager> controller_manager;
  if (f.controller_manager.enabled) {
    controllers::ControllerManagerOptions cmo;
    controllers::CoreControllerOptions cco;
    absl::Status st = controllers::ApplyControllerManagerFlags(f.controller_manager, &cmo);
    if (st.ok()) st = controllers::ApplyCoreControllerFlags(f.core_controllers, &cco);
    auto http = st.ok() ? http::HttpClient::Create(client::ClientOptionsFromKubeconfig(kc))
                        : absl::StatusOr<std::unique_ptr<http::HttpClient>>(st);
    if (http.ok()) {
      controller_client = std::make_unique<client::RestClient>(std::move(*http));
      cmo.event_host = local_node ? local_node->node_name() : "";
      controller_manager = std::make_unique<controllers::ControllerManager>(
          *controller_client, cmo, AllControllers(cco), metrics.get());
      st = controller_manager->Start();
    } else {
      st = http.status();
    }
    if (!st.ok()) {
      spdlog::error("controller manager: {}", st.message());
      controller_manager.reset();
      if (cluster_dns) cluster_dns->Stop();
      if (routing) routing->Stop();
      local_node->Stop();
      api.Shutdown(std::chrono::milliseconds(0));
      return 2;
    }
  }
  // --- end of controller manager --------------------------------------------
  api.AddMetricsRegistry(metrics);

  // --- scheduler: places pending pods on nodes ------------------------------
  std::unique_ptr<scheduler::SchedulerService> pod_scheduler;
  if (f.scheduler) {
    auto config = f.scheduler_config.empty() ? absl::StatusOr<scheduler::SchedulerConfig>(scheduler::SchedulerConfig{})
                                             : scheduler::LoadSchedulerConfig(f.scheduler_config);
    auto scheduler_metrics = std::make_shared<prometheus::Registry>();
    auto started = config.ok() ? scheduler::SchedulerService::Start(*config, client::ClientOptionsFromKubeconfig(kc),
                                                                    scheduler_metrics.get())
                               : absl::StatusOr<std::unique_ptr<scheduler::SchedulerService>>(config.status());
    if (!started.ok()) {
      spdlog::error("scheduler: {}", started.status().message());
      if (controller_manager) controller_manager->Stop();
      if (cluster_dns) cluster_dns->Stop();
      if (routing) routing->Stop();
      local_node->Stop();
      api.Shutdown(std::chrono::milliseconds(0));
      return 1;
    }
    pod_scheduler = std::move(*started);
    api.AddMetricsRegistry(scheduler_metrics);
    spdlog::info("scheduler running as {}", pod_scheduler->scheduler().config().scheduler_name);
  }
  // --- end of scheduler -------------------------------------------------------

  // --- kube-state-metrics families (kube_pod_*, kube_deployment_*, kube_node_*) at /metrics
  std::shared_ptr<state_metrics::ClusterStateMetrics> cluster_state;
  if (f.state_metrics) {
    auto started = state_metrics::ClusterStateMetrics::Start(client::ClientOptionsFromKubeconfig(kc));
    if (!started.ok()) {
      spdlog::error("state metrics: {}", started.status().message());
      if (pod_scheduler) pod_scheduler->Stop();
      if (controller_manager) controller_manager->Stop();
      if (cluster_dns) cluster_dns->Stop();
      if (routing) routing->Stop();
      local_node->Stop();
      api.Shutdown(std::chrono::milliseconds(0));
      return 1;
    }
    cluster_state = std::move(*started);
    api.AddMetricsRegistry(cluster_state);
  }
  // --- end of state metrics --------------------------------------------------

  // --- network observability (flows, TCP health, /metrics, /v1/flows) ------
  auto observability = observability::StartFromFlags(f.observability, local_node->node_name(), f.data_dir,
                                                     client::ClientOptionsFromKubeconfig(kc));
  if (!observability.ok()) {
    spdlog::error("network observability: {} (--network-observability=false runs without it)",
                  observability.status().message());
    if (pod_scheduler) pod_scheduler->Stop();
    if (controller_manager) controller_manager->Stop();
    if (cluster_dns) cluster_dns->Stop();
    if (routing) routing->Stop();
    local_node->Stop();
    api.Shutdown(std::chrono::milliseconds(0));
    return 1;
  }
  // --- end of network observability -----------------------------------------
  spdlog::info("API server listening on https://{}:{}", f.bind_address, api.port());
  spdlog::info("admin kubeconfig written to {}; use it with: export KUBECONFIG={}", kubeconfig_path,
               kubeconfig_path);
  spdlog::info("join other machines with: kelpie agent --server {} --token $(cat {}/token)", kc.server, f.data_dir);

  int sig = WaitForTerminationSignal();
  spdlog::info("received {}, shutting down (grace {}s)", sig == SIGINT ? "SIGINT" : "SIGTERM",
               f.shutdown_grace_seconds);
  if (cluster_state) cluster_state->Stop();
  if (pod_scheduler) pod_scheduler->Stop();
  if (controller_manager) controller_manager->Stop();
  if (cluster_dns) cluster_dns->Stop();
  if (*observability) (*observability)->Stop();
  if (routing) routing->Stop();
  local_node->Stop();
  if (kubelet_api) kubelet_api->Stop();
  api.Shutdown(std::chrono::seconds(f.shutdown_grace_seconds));
  api_store.reset();
  state_store.reset();  // flushes and closes the store after the last request
  spdlog::info("stopped");
  return 0;
}

}  // namespace

CommandRunner RegisterServerCommand(CLI::App& root) {
  CLI::App* app = root.add_subcommand(
      "server", "Run the control plane on this machine: the Kubernetes API over TLS. On first "
                "start it creates the cluster CA and certificates under --data-dir and writes an "
                "admin kubeconfig.");
  auto f = std::make_shared<ServerFlags>();
  AddYamlConfigOption(*app);
  app->add_option("--data-dir", f->data_dir,
                  "Folder for the cluster's state and certificates (created with mode 0700)")
      ->capture_default_str();
  app->add_option("--bind-address", f->bind_address,
                  "Address the API server listens on (0.0.0.0 for every interface)")
      ->capture_default_str();
  app->add_option("--secure-port", f->secure_port,
                  "HTTPS port of the API server (0 picks a free port)")
      ->capture_default_str();
  app->add_option("--advertise-address", f->advertise_address,
                  "Address clients use to reach the API server: written into the kubeconfig and "
                  "added to the serving certificate")
      ->capture_default_str();
  app->add_option("--tls-san", f->tls_sans,
                  "Extra host name or IP address for the serving certificate (repeatable)");
  app->add_option("--service-cidr", f->service_cidr,
                  "IPv4 range for Service cluster IPs; its first address is the `kubernetes` "
                  "Service and goes into the serving certificate")
      ->capture_default_str();
  app->add_option("--cluster-cidr", f->cluster_cidr,
                  "IPv4 range for pod addresses; every Node gets a range of it (spec.podCIDR) when it "
                  "registers")
      ->capture_default_str();
  app->add_option("--node-cidr-mask-size", f->node_cidr_mask_size,
                  "Prefix length of each node's pod range (24: 254 pods per node)")
      ->capture_default_str();
  app->add_option("--service-node-port-range", f->service_node_port_range,
                  "Port range reserved for NodePort Services (FIRST-LAST)")
      ->capture_default_str();
  app->add_option("--write-kubeconfig", f->write_kubeconfig,
                  "Where to write the admin kubeconfig (default <data-dir>/kubeconfig.yaml)");
  app->add_option("--write-kubeconfig-mode", f->write_kubeconfig_mode,
                  "File mode of the written kubeconfig, in octal")
      ->capture_default_str();
  app->add_option("--token", f->token,
                  "Join secret agents present (or a whole K10 token); default: a random one, kept in "
                  "<data-dir>/token with the CA hash as the full token");
  app->add_option("--shutdown-grace-seconds", f->shutdown_grace_seconds,
                  "On SIGTERM/SIGINT, how long in-flight requests may take to finish")
      ->capture_default_str();
  app->add_option("--scheduler", f->scheduler,
                  "Run the scheduler, which assigns pending pods to nodes (false: leave pods to another scheduler)")
      ->capture_default_str();
  app->add_option("--state-metrics", f->state_metrics,
                  "Serve kube-state-metrics-compatible kube_pod_*, kube_deployment_* and kube_node_* families at "
                  "/metrics (computed from a watch of pods, deployments and nodes)")
      ->capture_default_str();
  app->add_option("--scheduler-config", f->scheduler_config,
                  "YAML file with the scheduler's settings: plugin weights, disabled plugins, scoring strategy, "
                  "percentage of nodes to score (see docs/scheduler.md)");
  store::AddStoreFlags(*app, f->store);
  apiserver::AddApiServerFlags(*app, f->api);
  kubelet::AddKubeletFlags(*app, f->kubelet);
  kubelet::AddKubeletApiFlags(*app, f->kubelet_api);
  service_proxy::AddServiceRoutingFlags(*app, f->service_routing);
  dns::AddNodeDnsFlags(*app, f->dns);
  controllers::AddControllerManagerFlags(*app, f->controller_manager);
  controllers::AddCoreControllerFlags(*app, f->core_controllers);
  observability::AddNetworkObservabilityFlags(*app, f->observability);
  log::AddFlags(*app, f->log);
  return [f] { return RunServer(*f); };
}

}  // namespace kelpie::cmd
