#include "control/dns/node_dns.h"

#include <arpa/inet.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "common/subprocess.h"
#include "control/dns/cluster_dns_view.h"
#include "control/dns/dns_server.h"
#include "control/service_proxy/service_types.h"
#include "orchestrator/client/api_errors.h"
#include "orchestrator/client/rest_client.h"
#include "orchestrator/controllers/shared_informer.h"

namespace kelpie::dns {
namespace {

using nlohmann::json;

absl::Status RunIp(std::vector<std::string> args, bool tolerate_failure = false) {
  std::vector<std::string> argv = {"ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = RunSubprocess(argv);
  if (!r.ok()) return r.status();
  if (r->exit_code != 0 && !tolerate_failure) {
    std::string cmd;
    for (const auto& a : argv) absl::StrAppend(&cmd, cmd.empty() ? "" : " ", a);
    return absl::InternalError(absl::StrCat(cmd, ": ", r->stderr_text));
  }
  return absl::OkStatus();
}

absl::Status CreateUnlessExists(client::RestClient& c, const client::ResourceRef& ref, const json& obj) {
  auto r = c.Create(ref, "kube-system", obj);
  if (r.ok() || client::IsAlreadyExists(r.status())) return absl::OkStatus();
  return r.status();
}

}  // namespace

void AddNodeDnsFlags(CLI::App& app, NodeDnsOptions& options) {
  app.add_option("--dns", options.enabled,
                 "Serve cluster DNS on this node at --cluster-dns for --cluster-domain (needs root and port 53 "
                 "on that address)")
      ->capture_default_str();
  app.add_option("--dns-link", options.link_name, "Local link that carries the cluster DNS address")
      ->capture_default_str();
}

absl::Status EnsureKubeDnsService(client::RestClient& client, const std::string& address) {
  json ports = json::array({{{"name", "dns"}, {"port", 53}, {"protocol", "UDP"}, {"targetPort", 53}},
                            {{"name", "dns-tcp"}, {"port", 53}, {"protocol", "TCP"}, {"targetPort", 53}}});
  json service = {{"apiVersion", "v1"},
                  {"kind", "Service"},
                  {"metadata",
                   {{"name", "kube-dns"},
                    {"namespace", "kube-system"},
                    {"labels", {{"k8s-app", "kube-dns"}, {"kubernetes.io/name", "KelpieDNS"}}},
                    {"annotations",
                     {{"kelpie.io/served-by", "the node-local DNS of every node, at the cluster IP itself"}}}}},
                  {"spec", {{"type", "ClusterIP"}, {"clusterIP", address}, {"ports", ports}}}};
  KELPIE_RETURN_IF_ERROR(CreateUnlessExists(client, client::resources::kServices, service));
  json slice_ports = json::array({{{"name", "dns"}, {"port", 53}, {"protocol", "UDP"}},
                                  {{"name", "dns-tcp"}, {"port", 53}, {"protocol", "TCP"}}});
  json slice = {{"apiVersion", "discovery.k8s.io/v1"},
                {"kind", "EndpointSlice"},
                {"metadata",
                 {{"name", "kube-dns"},
                  {"namespace", "kube-system"},
                  {"labels",
                   {{"kubernetes.io/service-name", "kube-dns"},
                    {"endpointslice.kubernetes.io/managed-by", "dns.kelpie.io"}}}}},
                {"addressType", "IPv4"},
                {"endpoints", json::array({{{"addresses", json::array({address})}, {"conditions", {{"ready", true}}}}})},
                {"ports", slice_ports}};
  return CreateUnlessExists(client, client::resources::kEndpointSlices, slice);
}

absl::Status EnsureDnsLink(const std::string& link_name, const std::string& address) {
  struct in_addr parsed;
  if (::inet_pton(AF_INET, address.c_str(), &parsed) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("--cluster-dns \"", address, "\" is not an IPv4 address"));
  }
  // Already there from a previous run: "File exists" is fine.
  KELPIE_RETURN_IF_ERROR(RunIp({"link", "add", link_name, "type", "bridge"}, /*tolerate_failure=*/true));
  KELPIE_RETURN_IF_ERROR(RunIp({"addr", "replace", absl::StrCat(address, "/32"), "dev", link_name}));
  return RunIp({"link", "set", link_name, "up"});
}

absl::Status RemoveDnsLink(const std::string& link_name) {
  return RunIp({"link", "del", link_name}, /*tolerate_failure=*/true);
}

class NodeDns::Impl {
 public:
  ~Impl() { Stop(); }

  absl::Status Start(const NodeDnsOptions& o, http::HttpClientOptions client_options,
                     prometheus::Registry* registry) {
    options_ = o;
    auto upstreams = UpstreamsFromResolvConf(o.resolv_conf);
    if (!upstreams.ok()) {
      spdlog::warn("cluster DNS: no upstream resolvers ({}); names outside {} get SERVFAIL",
                   upstreams.status().message(), o.domain);
    }
    view_ = std::make_unique<ClusterDnsView>(ClusterDnsView::Options{.domain = o.domain});
    auto services_client = client::RestClient::Create(client_options);
    if (!services_client.ok()) return services_client.status();
    auto slices_client = client::RestClient::Create(client_options);
    if (!slices_client.ok()) return slices_client.status();
    services_client_ = std::move(*services_client);
    slices_client_ = std::move(*slices_client);

    KELPIE_RETURN_IF_ERROR(EnsureDnsLink(o.link_name, o.address));
    link_up_ = true;
    DnsServerOptions so;
    so.address = o.address;
    so.port = o.port;
    if (upstreams.ok()) so.upstreams = *upstreams;
    server_ = std::make_unique<DnsServer>(so, *view_, registry);
    if (absl::Status st = server_->Start(); !st.ok()) {
      return absl::Status(st.code(), absl::StrCat("serving DNS on ", o.address, ":", o.port, ": ", st.message()));
    }

    controllers::InformerOptions service_options;
    service_options.resource = client::resources::kServices;
    controllers::InformerOptions slice_options;
    slice_options.resource = client::resources::kEndpointSlices;
    services_ = std::make_unique<controllers::SharedInformer>(*services_client_, service_options);
    slices_ = std::make_unique<controllers::SharedInformer>(*slices_client_, slice_options);
    services_->AddEventHandler({[this](const json& obj) { OnService(obj, false); },
                                [this](const json&, const json& obj) { OnService(obj, false); },
                                [this](const json& obj, bool) { OnService(obj, true); }});
    slices_->AddEventHandler({[this](const json& obj) { OnSlice(obj, false); },
                              [this](const json&, const json& obj) { OnSlice(obj, false); },
                              [this](const json& obj, bool) { OnSlice(obj, true); }});
    services_->Start();
    slices_->Start();
    spdlog::info("cluster DNS: serving {} on {}:{} (link {}), {} upstream resolver(s)", o.domain, o.address,
                 server_->port(), o.link_name, so.upstreams.size());
    return absl::OkStatus();
  }

  void Stop() {
    if (services_) services_->Stop();
    if (slices_) slices_->Stop();
    if (server_) server_->Stop();
    if (link_up_) {
      if (absl::Status st = RemoveDnsLink(options_.link_name); !st.ok()) {
        spdlog::warn("cluster DNS: removing link {}: {}", options_.link_name, st.message());
      }
      link_up_ = false;
    }
  }

 private:
  void OnService(const json& obj, bool deleted) {
    auto s = service_proxy::DecodeService(obj.dump());
    if (!s.ok()) {
      spdlog::warn("cluster DNS: {}", s.status().message());
      return;
    }
    deleted ? view_->OnServiceDelete(*s) : view_->OnServiceUpdate(*s);
  }
  void OnSlice(const json& obj, bool deleted) {
    auto e = service_proxy::DecodeEndpointSlice(obj.dump());
    if (!e.ok()) {
      spdlog::warn("cluster DNS: {}", e.status().message());
      return;
    }
    deleted ? view_->OnEndpointSliceDelete(*e) : view_->OnEndpointSliceUpdate(*e);
  }

  NodeDnsOptions options_;
  bool link_up_ = false;
  std::unique_ptr<ClusterDnsView> view_;
  std::unique_ptr<DnsServer> server_;
  std::unique_ptr<client::RestClient> services_client_;
  std::unique_ptr<client::RestClient> slices_client_;
  std::unique_ptr<controllers::SharedInformer> services_;
  std::unique_ptr<controllers::SharedInformer> slices_;
};

NodeDns::NodeDns(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
NodeDns::~NodeDns() = default;

absl::StatusOr<std::unique_ptr<NodeDns>> NodeDns::Start(const NodeDnsOptions& options,
                                                        http::HttpClientOptions client,
                                                        prometheus::Registry* registry) {
  auto impl = std::make_unique<Impl>();
  if (absl::Status st = impl->Start(options, std::move(client), registry); !st.ok()) return st;
  return std::unique_ptr<NodeDns>(new NodeDns(std::move(impl)));
}

void NodeDns::Stop() { impl_->Stop(); }

}  // namespace kelpie::dns
