#include "exporters/observability/network_observability.h"

#include <dirent.h>
#include <sys/stat.h>

#include <functional>

#include "absl/strings/match.h"
#include "common/files.h"
#include "common/log.h"
#include "control/identity/identity_informers.h"
#include "dataplane/drop_reason_names.h"
#include "dataplane/program_stats.h"
#include "dataplane/ring_buffer_source.h"
#include "dataplane/tcp_health_program.h"
#include "exporters/flows/flow_pipeline.h"
#include "exporters/metrics/network_metrics_collector.h"
#include "orchestrator/client/rest_client.h"
#include "orchestrator/controllers/shared_informer.h"

namespace kelpie::observability {
namespace {

// Every folder id at and below `dir` (bounded depth: pod, container).
void CollectCgroupIds(const std::string& dir, int depth, std::vector<uint64_t>& out) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return;
  out.push_back(static_cast<uint64_t>(st.st_ino));
  if (depth == 0) return;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return;
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (e->d_type != DT_DIR || name == "." || name == "..") continue;
    CollectCgroupIds(dir + "/" + name, depth - 1, out);
  }
  ::closedir(d);
}

}  // namespace

struct NetworkObservability::Impl {
  NetworkObservabilityOptions options;
  identity::IdentityCache identities;
  std::unique_ptr<flows::FlowObserver> observer;
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  std::unique_ptr<dataplane::FlowProgram> flow_program;
  std::unique_ptr<dataplane::TcpHealthProgram> tcp_program;
  std::optional<dataplane::DropReasonNames> drop_names;
  std::optional<dataplane::BpfStatsEnabler> stats;
  std::unique_ptr<flows::FlowPipeline> pipeline;
  std::unique_ptr<flows::FlowLog> flow_log;  // subscribed to `observer`, so it goes first
  std::unique_ptr<client::RestClient> pods_client, services_client;
  std::unique_ptr<controllers::SharedInformer> pods, services;
  std::unique_ptr<ObservabilityEndpoint> endpoint;
  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  std::thread scanner;

  void Scan() {
    DIR* d = ::opendir(options.pod_cgroup_parent.c_str());
    if (d == nullptr) return;
    std::vector<std::pair<std::string, std::string>> pods_found;
    while (struct dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (e->d_type == DT_DIR && absl::StartsWith(name, "pod")) pods_found.emplace_back(name.substr(3), name);
    }
    ::closedir(d);
    for (const auto& [uid, folder] : pods_found) {
      std::vector<uint64_t> ids;
      CollectCgroupIds(options.pod_cgroup_parent + "/" + folder, 2, ids);
      for (uint64_t id : ids) {
        if (identities.HasCgroup(id)) continue;
        identities.SetPodCgroup(uid, id);
        if (absl::Status s = flow_program->WatchCgroupId(id); !s.ok()) spdlog::warn("flows: {}", s.message());
      }
    }
  }
};

NetworkObservability::NetworkObservability(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
NetworkObservability::~NetworkObservability() { Stop(); }

absl::StatusOr<std::unique_ptr<NetworkObservability>> NetworkObservability::Start(
    const NetworkObservabilityOptions& options, std::optional<http::HttpClientOptions> api,
    std::vector<std::shared_ptr<prometheus::Collectable>> extra_metrics) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->observer = std::make_unique<flows::FlowObserver>(options.flow_ring_capacity);
  if (absl::Status s = MakeDirectories(options.pod_cgroup_parent, 0755); !s.ok()) return s;

  auto tcp = dataplane::TcpHealthProgram::Start({});
  if (!tcp.ok()) return tcp.status();
  impl->tcp_program = std::move(*tcp);
  auto flows_program = dataplane::FlowProgram::Start(options.flow_program);
  if (!flows_program.ok()) return flows_program.status();
  impl->flow_program = std::move(*flows_program);
  if (absl::Status s = impl->flow_program->AttachCgroup(options.pod_cgroup_parent); !s.ok()) return s;
  if (auto names = dataplane::DropReasonNames::FromKernelBtf(); names.ok()) {
    impl->drop_names = std::move(*names);
  } else {
    spdlog::warn("drop reasons will be numbers: {}", names.status().message());
  }
  if (options.program_statistics) {
    if (auto stats = dataplane::BpfStatsEnabler::Enable(); stats.ok()) impl->stats = std::move(*stats);
  }
  Impl* raw = impl.get();
  auto drop_name = [raw](uint32_t reason) {
    return raw->drop_names ? raw->drop_names->Name(reason) : std::to_string(reason);
  };

  flows::FlowDecoder decoder(impl->identities, {.node_name = options.node_name,
                                                .drop_reason_name = drop_name,
                                                .monotonic_to_wall_ns = flows::MonotonicToWallOffsetNs()});
  impl->pipeline = std::make_unique<flows::FlowPipeline>(std::move(decoder), *impl->observer, *impl->registry,
                                                         flows::FlowPipelineOptions{options.max_service_series});
  auto source = dataplane::RingBufferSource::Create(impl->flow_program->events_fd(), [raw](std::string_view r) {
    raw->pipeline->Handle(r);
    return true;
  });
  if (!source.ok()) return source.status();
  if (options.flow_log) {
    auto log = flows::FlowLog::Start(*options.flow_log, *impl->observer, impl->registry.get());
    if (!log.ok()) return log.status();
    impl->flow_log = std::move(*log);
  }
  impl->pipeline->StartPolling(std::move(*source));

  if (api) {
    auto pods_client = client::RestClient::Create(*api);
    auto services_client = client::RestClient::Create(*api);
    if (!pods_client.ok()) return pods_client.status();
    if (!services_client.ok()) return services_client.status();
    impl->pods_client = std::move(*pods_client);
    impl->services_client = std::move(*services_client);
    controllers::InformerOptions po;
    po.resource = client::resources::kPods;
    impl->pods = std::make_unique<controllers::SharedInformer>(*impl->pods_client, po);
    controllers::InformerOptions so;
    so.resource = client::resources::kServices;
    impl->services = std::make_unique<controllers::SharedInformer>(*impl->services_client, so);
    identity::BindPodInformer(*impl->pods, impl->identities);
    identity::BindServiceInformer(*impl->services, impl->identities);
    impl->pods->Start();
    impl->services->Start();
  }

  auto collector = std::make_shared<metrics::NetworkMetricsCollector>(
      metrics::NetworkMetricsSources{.flows = impl->flow_program.get(),
                                     .tcp = impl->tcp_program.get(),
                                     .identities = &impl->identities,
                                     .drop_reason_name = drop_name},
      metrics::NetworkMetricsOptions{.max_pod_series = options.max_pod_series});
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables = {collector, impl->registry};
  collectables.insert(collectables.end(), extra_metrics.begin(), extra_metrics.end());
  auto endpoint = ObservabilityEndpoint::Start(options.endpoint, std::move(collectables), impl->observer.get());
  if (!endpoint.ok()) return endpoint.status();
  impl->endpoint = std::move(*endpoint);

  impl->Scan();
  impl->scanner = std::thread([raw] {
    std::unique_lock<std::mutex> lock(raw->mu);
    while (!raw->cv.wait_for(lock, raw->options.cgroup_scan_interval, [raw] { return raw->stopping; })) {
      lock.unlock();
      raw->Scan();
      lock.lock();
    }
  });
  return std::unique_ptr<NetworkObservability>(new NetworkObservability(std::move(impl)));
}

identity::IdentityCache& NetworkObservability::identities() { return impl_->identities; }
flows::FlowObserver& NetworkObservability::observer() { return *impl_->observer; }
uint16_t NetworkObservability::port() const { return impl_->endpoint->port(); }
const std::string& NetworkObservability::ca_file() const { return impl_->endpoint->ca_file(); }
void NetworkObservability::ScanPodCgroups() { impl_->Scan(); }

void NetworkObservability::Stop() {
  if (!impl_) return;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->stopping) return;
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  if (impl_->scanner.joinable()) impl_->scanner.join();
  if (impl_->endpoint) impl_->endpoint->Shutdown();
  if (impl_->pods) impl_->pods->Stop();
  if (impl_->services) impl_->services->Stop();
  if (impl_->pipeline) impl_->pipeline->Stop();
  if (impl_->flow_log) impl_->flow_log->Stop();
}

}  // namespace kelpie::observability
