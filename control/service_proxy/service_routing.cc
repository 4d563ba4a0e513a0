#include "control/service_proxy/service_routing.h"

#include <CLI/CLI.hpp>
#include <atomic>
#include <thread>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "control/service_proxy/service_cidr_route.h"
#include "control/service_proxy/service_proxy.h"
#include "dataplane/kernel_filesystems.h"
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
}

class ServiceRouting::Impl {
 public:
  ~Impl() { Stop(); }

  void Stop() {
    stopping_ = true;
    if (services_) services_->Stop();
    if (slices_) slices_->Stop();
    if (sync_waiter_.joinable()) sync_waiter_.join();
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
           report("service delete", proxy_->OnServiceDelete(o["metadata"].value("namespace", ""),
                                                            o["metadata"].value("name", "")));
         }});
    slices_->AddEventHandler(
        {[this, report](const nlohmann::json& o) { report("endpointslice", Update(o, false)); },
         [this, report](const nlohmann::json&, const nlohmann::json& o) { report("endpointslice", Update(o, false)); },
         [this, report](const nlohmann::json& o, bool) {
           report("endpointslice delete", proxy_->OnEndpointSliceDelete(o["metadata"].value("namespace", ""),
                                                                        o["metadata"].value("name", "")));
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
    });
    spdlog::info("service routing: socket load balancer on {} ({} pinned maps), service CIDR {} routed locally",
                 cgroup, lb_->reused_pins() ? "reusing" : "new", o.service_cidr);
    return absl::OkStatus();
  }

  size_t frontend_count() const { return proxy_ ? proxy_->frontend_count() : 0; }

 private:
  absl::Status Update(const nlohmann::json& object, bool is_service) {
    std::string text = object.dump();
    if (is_service) {
      auto s = DecodeService(text);
      if (!s.ok()) return s.status();
      return proxy_->OnServiceUpdate(*s);
    }
    auto e = DecodeEndpointSlice(text);
    if (!e.ok()) return e.status();
    return proxy_->OnEndpointSliceUpdate(*e);
  }

  std::unique_ptr<dataplane::SocketLbProgram> lb_;
  std::unique_ptr<ServiceProxy> proxy_;
  std::unique_ptr<client::RestClient> services_client_;
  std::unique_ptr<client::RestClient> slices_client_;
  std::unique_ptr<controllers::SharedInformer> services_;
  std::unique_ptr<controllers::SharedInformer> slices_;
  std::atomic<bool> stopping_{false};
  std::thread sync_waiter_;
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

}  // namespace kelpie::service_proxy
