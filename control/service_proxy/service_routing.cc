#include "control/service_proxy/service_routing.h"

#include <CLI/CLI.hpp>
#include <net/if.h>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "control/service_proxy/node_addresses.h"
#include "control/service_proxy/node_port_metrics.h"
#include "control/service_proxy/node_port_proxy.h"
#include "control/service_proxy/service_cidr_route.h"
#include "control/service_proxy/service_proxy.h"
#include "dataplane/kernel_filesystems.h"
#include "dataplane/nodeport_program.h"
#include "dataplane/socket_lb_program.h"
#include "orchestrator/controllers/shared_informer.h"
#include "orchestrator/client/rest_client.h"

namespace kelpie::service_proxy {

void AddServiceRoutingFlags(CLI::App& app, ServiceRoutingOptions& options) {
  app.add_option("--service-routing", options.enabled,
                 "Route Services with the eBPF socket load balancer on this node (in place of kube-proxy)")
      ->capture_default_str();
  app.add_option("--service-routing-cgroup", options.cgroup_path,
                 "cgroup v2 folder the load balancer attaches to (default: the cgroup v2 root, so every "
                 "process on the node is served)");
  app.add_option("--bpffs", options.bpffs, "bpffs mount for pinned maps (mounted when absent)")
      ->capture_default_str();
  app.add_option("--maglev-table-size", options.maglev_table_size,
                 "0: random backend selection; a prime such as 16381: Maglev consistent hashing")
      ->capture_default_str();
  app.add_option("--nodeport-interfaces", options.nodeport_interfaces,
                 "External interfaces that serve NodePorts and externalIPs (tc program; NodePorts listen on their "
                 "IPv4 addresses); \"default-route\" is the interface of the default route. Default: none (no "
                 "NodePort)")
      ->delimiter(',');
  app.add_option("--nodeport-backend-interfaces", options.nodeport_backend_interfaces,
                 "Interfaces facing local backends, where their replies arrive (the pod bridge); attached when "
                 "present")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--nodeport-conntrack-entries", options.nodeport_conntrack_entries,
                 "Size of the NodePort connection tracking map (two entries per flow)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--service-routing-maintenance-interval", options.maintenance_interval_s,
                 "Seconds between NodePort conntrack sweeps, node address checks and map metric refreshes")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
}

class ServiceRouting::Impl {
 public:
  ~Impl() { Stop(); }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(wake_mu_);
      stopping_ = true;
    }
    wake_.notify_all();
    if (services_) services_->Stop();
    if (slices_) slices_->Stop();
    if (sync_waiter_.joinable()) sync_waiter_.join();
    if (maintenance_.joinable()) maintenance_.join();
  }

  absl::Status Start(const ServiceRoutingOptions& o, http::HttpClientOptions client_options,
                     prometheus::Registry& registry) {
    if (absl::Status st = dataplane::EnsureBpffs(o.bpffs); !st.ok()) return st;
    std::string cgroup = o.cgroup_path;
    if (cgroup.empty()) {
      auto root = dataplane::DetectCgroupV2Root();
      if (root.layout == dataplane::CgroupLayout::kNone) {
        return absl::FailedPreconditionError("no cgroup v2 hierarchy to attach service routing to");
      }
      cgroup = root.path;
    }
    std::string pin = o.pin_name.empty() ? o.node_name : o.pin_name;
    dataplane::SocketLbOptions lo;
    lo.pin_dir = absl::StrCat(o.bpffs, "/kelpie/", pin);
    lo.cgroup_path = cgroup;
    auto lb = dataplane::SocketLbProgram::Install(lo);
    if (!lb.ok()) return lb.status();
    lb_ = std::move(*lb);
    ServiceProxyOptions po;
    po.node_name = o.node_name;
    po.maglev_table_size = o.maglev_table_size;
    proxy_ = std::make_unique<ServiceProxy>(lb_->maps(), registry, po);
    if (absl::Status st = proxy_->Restore(); !st.ok()) return st;
    if (!o.nodeport_interfaces.empty()) {
      if (absl::Status st = StartNodePort(o, lo.pin_dir, registry); !st.ok()) return st;
    }
    if (o.route_service_cidr) {
      if (absl::Status st = EnsureServiceCidrRoute(o.service_cidr); !st.ok()) return st;
    }
    auto services_client = client::RestClient::Create(client_options);
    auto slices_client = client::RestClient::Create(client_options);
    if (!services_client.ok()) return services_client.status();
    if (!slices_client.ok()) return slices_client.status();
    services_client_ = std::move(*services_client);
    slices_client_ = std::move(*slices_client);
    controllers::InformerOptions service_options;
    service_options.resource = client::resources::kServices;
    controllers::InformerOptions slice_options;
    slice_options.resource = client::resources::kEndpointSlices;
    services_ = std::make_unique<controllers::SharedInformer>(*services_client_, service_options);
    slices_ = std::make_unique<controllers::SharedInformer>(*slices_client_, slice_options);
    auto report = [](const char* what, const absl::Status& st) {
      if (!st.ok()) spdlog::warn("service routing: {}: {}", what, st.ToString());
    };
    services_->AddEventHandler(
        {[this, report](const nlohmann::json& o) { report("service", Update(o, true)); },
         [this, report](const nlohmann::json&, const nlohmann::json& o) { report("service", Update(o, true)); },
         [this, report](const nlohmann::json& o, bool) {
           std::string ns = o["metadata"].value("namespace", "");
           std::string name = o["metadata"].value("name", "");
           report("service delete", proxy_->OnServiceDelete(ns, name));
           if (node_ports_) report("nodeport service delete", node_ports_->OnServiceDelete(ns, name));
         }});
    slices_->AddEventHandler(
        {[this, report](const nlohmann::json& o) { report("endpointslice", Update(o, false)); },
         [this, report](const nlohmann::json&, const nlohmann::json& o) { report("endpointslice", Update(o, false)); },
         [this, report](const nlohmann::json& o, bool) {
           std::string ns = o["metadata"].value("namespace", "");
           std::string name = o["metadata"].value("name", "");
           report("endpointslice delete", proxy_->OnEndpointSliceDelete(ns, name));
           if (node_ports_) report("nodeport endpointslice delete", node_ports_->OnEndpointSliceDelete(ns, name));
         }});
    services_->Start();
    slices_->Start();
    // Both informers delivered their first full list: stale entries of a
    // previous run may go (the proxy applies what it collected meanwhile).
    sync_waiter_ = std::thread([this] {
      while (!services_->WaitForSync(std::chrono::milliseconds(500)) ||
             !slices_->WaitForSync(std::chrono::milliseconds(500))) {
        if (stopping_.load()) return;
      }
      if (absl::Status st = proxy_->OnInitialSyncDone(); !st.ok()) {
        spdlog::warn("service routing: initial sync: {}", st.ToString());
      }
      if (node_ports_) {
        if (absl::Status st = node_ports_->OnInitialSyncDone(); !st.ok()) {
          spdlog::warn("service routing: NodePort initial sync: {}", st.ToString());
        }
      }
    });
    maintenance_ = std::thread([this, interval = std::chrono::seconds(o.maintenance_interval_s)] {
      std::unique_lock<std::mutex> lock(wake_mu_);
      while (!stopping_) {
        lock.unlock();
        Maintain();
        lock.lock();
        wake_.wait_for(lock, interval, [this] { return stopping_.load(); });
      }
    });
    spdlog::info("service routing: socket load balancer on {} ({} pinned maps), service CIDR {} routed locally",
                 cgroup, lb_->reused_pins() ? "reusing" : "new", o.service_cidr);
    return absl::OkStatus();
  }

  size_t frontend_count() const { return proxy_ ? proxy_->frontend_count() : 0; }
  size_t nodeport_frontend_count() const { return node_ports_ ? node_ports_->frontend_count() : 0; }

 private:
  absl::Status StartNodePort(const ServiceRoutingOptions& o, const std::string& pin_dir,
                             prometheus::Registry& registry) {
    auto external = ResolveNodePortInterfaces(o.nodeport_interfaces);
    if (!external.ok()) return external.status();
    external_interfaces_ = *external;
    backend_interfaces_ = o.nodeport_backend_interfaces;
    dataplane::NodePortOptions no;
    no.pin_dir = pin_dir;
    no.interfaces = external_interfaces_;
    no.max_conntrack = o.nodeport_conntrack_entries;
    auto program = dataplane::NodePortProgram::Install(no);
    if (!program.ok()) return program.status();
    nodeport_ = std::move(*program);
    AttachMissingInterfaces();
    auto addresses = InterfaceIpv4Addresses(external_interfaces_);
    if (!addresses.ok()) return addresses.status();
    if (addresses->empty()) {
      spdlog::warn("service routing: NodePort interfaces {} have no IPv4 address yet",
                   absl::StrJoin(external_interfaces_, ","));
    }
    NodePortProxyOptions po;
    po.node_name = o.node_name;
    node_ports_ = std::make_unique<NodePortProxy>(*nodeport_, po);
    if (absl::Status st = node_ports_->Restore(); !st.ok()) return st;
    if (absl::Status st = node_ports_->SetNodeAddresses(*addresses); !st.ok()) return st;
    // Pods and node processes reach <node address>:<nodePort> through the
    // socket balancer (their packets never cross the external interfaces).
    if (absl::Status st = proxy_->SetNodeAddresses(*addresses); !st.ok()) return st;
    nodeport_metrics_ = std::make_unique<NodePortMetrics>(
        registry, NodePortMapCapacity{.frontends = no.max_frontends, .backends = no.max_backends,
                                      .conntrack = no.max_conntrack});
    spdlog::info("service routing: NodePort program on {} ({} pinned maps), node addresses {}",
                 absl::StrJoin(external_interfaces_, ","), nodeport_->reused_pins() ? "reusing" : "new",
                 absl::StrJoin(*addresses, ","));
    return absl::OkStatus();
  }

  // Interfaces that appeared (the pod bridge comes with the first pod) or
  // were recreated get the program.
  void AttachMissingInterfaces() {
    std::vector<std::string> all = external_interfaces_;
    all.insert(all.end(), backend_interfaces_.begin(), backend_interfaces_.end());
    for (const std::string& name : all) {
      if (name.empty() || nodeport_->IsAttached(name) || if_nametoindex(name.c_str()) == 0) continue;
      if (absl::Status st = nodeport_->Attach(name); !st.ok()) {
        spdlog::warn("service routing: NodePort: {}", st.ToString());
      } else {
        spdlog::info("service routing: NodePort program attached to {}", name);
      }
    }
  }

  // The slow timer: socket LB LRU pressure; NodePort interfaces, node
  // addresses, conntrack sweep and metrics.
  void Maintain() {
    if (absl::Status st = proxy_->RefreshLruPressure(); !st.ok()) {
      spdlog::warn("service routing: map pressure: {}", st.ToString());
    }
    if (!nodeport_) return;
    AttachMissingInterfaces();
    auto addresses = InterfaceIpv4Addresses(external_interfaces_);
    if (addresses.ok()) {
      std::vector<std::string> before = node_ports_->node_addresses();
      if (absl::Status st = node_ports_->SetNodeAddresses(*addresses); !st.ok()) {
        spdlog::warn("service routing: NodePort node addresses: {}", st.ToString());
      } else if (before != node_ports_->node_addresses()) {
        spdlog::info("service routing: NodePort node addresses now {}", absl::StrJoin(*addresses, ","));
      }
      if (absl::Status st = proxy_->SetNodeAddresses(*addresses); !st.ok()) {
        spdlog::warn("service routing: node addresses in the socket balancer: {}", st.ToString());
      }
    }
    auto start = std::chrono::steady_clock::now();
    auto removed = nodeport_->CollectGarbage(dataplane::ConntrackTimeouts{});
    if (removed.ok()) {
      nodeport_metrics_->ObserveGc(*removed,
                                   std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    } else {
      spdlog::warn("service routing: NodePort conntrack sweep: {}", removed.status().ToString());
    }
    if (auto reasons = nodeport_->ReasonCounts(); reasons.ok()) nodeport_metrics_->UpdateReasons(*reasons);
    auto entries = nodeport_->ConntrackEntryCount();
    size_t interfaces = 0;
    for (const auto* list : {&external_interfaces_, &backend_interfaces_}) {
      for (const std::string& name : *list) interfaces += nodeport_->IsAttached(name) ? 1 : 0;
    }
    nodeport_metrics_->UpdateState(node_ports_->frontend_count(), node_ports_->backend_count(),
                                   entries.ok() ? *entries : 0, node_ports_->node_addresses().size(), interfaces);
  }

  absl::Status Update(const nlohmann::json& object, bool is_service) {
    std::string text = object.dump();
    if (is_service) {
      auto s = DecodeService(text);
      if (!s.ok()) return s.status();
      absl::Status st = proxy_->OnServiceUpdate(*s);
      if (node_ports_) {
        absl::Status np = node_ports_->OnServiceUpdate(*s);
        if (st.ok()) st = np;
      }
      return st;
    }
    auto e = DecodeEndpointSlice(text);
    if (!e.ok()) return e.status();
    absl::Status st = proxy_->OnEndpointSliceUpdate(*e);
    if (node_ports_) {
      absl::Status np = node_ports_->OnEndpointSliceUpdate(*e);
      if (st.ok()) st = np;
    }
    return st;
  }

  std::unique_ptr<dataplane::SocketLbProgram> lb_;
  std::unique_ptr<ServiceProxy> proxy_;
  std::unique_ptr<dataplane::NodePortProgram> nodeport_;
  std::unique_ptr<NodePortProxy> node_ports_;
  std::unique_ptr<NodePortMetrics> nodeport_metrics_;
  std::vector<std::string> external_interfaces_;
  std::vector<std::string> backend_interfaces_;
  std::unique_ptr<client::RestClient> services_client_;
  std::unique_ptr<client::RestClient> slices_client_;
  std::unique_ptr<controllers::SharedInformer> services_;
  std::unique_ptr<controllers::SharedInformer> slices_;
  std::atomic<bool> stopping_{false};
  std::mutex wake_mu_;
  std::condition_variable wake_;
  std::thread sync_waiter_;
  std::thread maintenance_;
};

ServiceRouting::ServiceRouting(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ServiceRouting::~ServiceRouting() = default;

absl::StatusOr<std::unique_ptr<ServiceRouting>> ServiceRouting::Start(const ServiceRoutingOptions& options,
                                                                      http::HttpClientOptions client,
                                                                      prometheus::Registry& registry) {
  auto impl = std::make_unique<Impl>();
  if (absl::Status st = impl->Start(options, std::move(client), registry); !st.ok()) return st;
  return std::unique_ptr<ServiceRouting>(new ServiceRouting(std::move(impl)));
}

void ServiceRouting::Stop() { impl_->Stop(); }
size_t ServiceRouting::frontend_count() const { return impl_->frontend_count(); }
size_t ServiceRouting::nodeport_frontend_count() const { return impl_->nodeport_frontend_count(); }

}  // namespace kelpie::service_proxy
