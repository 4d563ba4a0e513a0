#include "exporters/flows/flow_pipeline.h"

#include <cstring>

#include "common/log.h"

namespace kelpie::flows {

FlowPipeline::FlowPipeline(FlowDecoder decoder, FlowObserver& observer, prometheus::Registry& registry,
                           FlowPipelineOptions options)
    : decoder_(std::move(decoder)),
      observer_(observer),
      options_(options),
      service_connections_(prometheus::BuildCounter()
                               .Name("kelpie_service_connections_total")
                               .Help("Connections to a service's backends seen closing, by service")
                               .Register(registry)),
      service_bytes_(prometheus::BuildCounter()
                         .Name("kelpie_service_bytes_total")
                         .Help("IP bytes of closed connections to a service, by direction as seen by the client")
                         .Register(registry)) {
  auto& events = prometheus::BuildCounter()
                     .Name("kelpie_flow_events_total")
                     .Help("Flow events from the kernel handled by the node's flow pipeline, by type")
                     .Register(registry);
  for (FlowEventType t : {FlowEventType::kOpen, FlowEventType::kUpdate, FlowEventType::kClose, FlowEventType::kDrop}) {
    events_by_type_[static_cast<int>(t)] = &events.Add({{"type", EventTypeName(t)}});
  }
  invalid_ = &prometheus::BuildCounter()
                  .Name("kelpie_flow_events_invalid_total")
                  .Help("Ring-buffer records that were not flow events")
                  .Register(registry)
                  .Add({});
}

FlowPipeline::~FlowPipeline() { Stop(); }

FlowPipeline::ServiceCounters& FlowPipeline::CountersFor(const std::string& service) {
  std::lock_guard<std::mutex> lock(services_mu_);
  auto it = services_.find(service);
  if (it != services_.end()) return it->second;
  std::string key = service;
  if (services_.size() >= options_.max_service_series) {
    key = "other/other";
    if (auto other = services_.find(key); other != services_.end()) return other->second;
  }
  size_t slash = key.find('/');
  prometheus::Labels labels{{"namespace", key.substr(0, slash)}, {"service", key.substr(slash + 1)}};
  prometheus::Labels sent = labels, received = labels;
  sent["direction"] = "sent";
  received["direction"] = "received";
  ServiceCounters c{&service_connections_.Add(labels), &service_bytes_.Add(sent), &service_bytes_.Add(received)};
  return services_.emplace(key, c).first->second;
}

void FlowPipeline::Handle(std::string_view record) {
  if (record.size() != sizeof(kelpie_flow_event)) {
    invalid_->Increment();
    return;
  }
  kelpie_flow_event event;
  std::memcpy(&event, record.data(), sizeof(event));
  Flow flow = decoder_.Decode(event);
  events_by_type_[static_cast<int>(flow.type)]->Increment();
  // Connections are counted once, from the client's record of them.
  if (flow.type == FlowEventType::kClose && flow.egress && !flow.destination_service.empty()) {
    ServiceCounters& c = CountersFor(flow.destination_service);
    c.connections->Increment();
    c.bytes_sent->Increment(static_cast<double>(flow.bytes_sent));
    c.bytes_received->Increment(static_cast<double>(flow.bytes_received));
  }
  observer_.Add(std::move(flow));
  handled_.fetch_add(1, std::memory_order_relaxed);
}

void FlowPipeline::StartPolling(std::unique_ptr<dataplane::EventSource> source) {
  source_ = std::move(source);
  thread_ = std::thread([this] {
    while (!stop_.load()) {
      auto n = source_->Poll(std::chrono::milliseconds(100));
      if (!n.ok()) {
        spdlog::warn("flow events: {}", n.status().message());
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
  });
}

void FlowPipeline::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

}  // namespace kelpie::flows
