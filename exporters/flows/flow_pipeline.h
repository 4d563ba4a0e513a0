// The user-space half of the flow path: kernel flow events (raw ring-buffer
// records) are decoded with pod identity, stored in the FlowObserver and
// counted per service. One thread polls the event source; per-event work is
// a decode, one ring insert and a few cached counter increments.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "dataplane/ring_buffer_source.h"
#include "exporters/flows/flow_decoder.h"
#include "exporters/flows/flow_observer.h"

namespace kelpie::flows {

struct FlowPipelineOptions {
  // Distinct (namespace, service) label sets before the rest is counted
  // under service="other" (bounded label cardinality).
  size_t max_service_series = 1000;
};

class FlowPipeline {
 public:
  FlowPipeline(FlowDecoder decoder, FlowObserver& observer, prometheus::Registry& registry,
               FlowPipelineOptions options = {});
  ~FlowPipeline();

  // Handles one ring-buffer record (a kelpie_flow_event); records of the
  // wrong size are counted as invalid and skipped.
  void Handle(std::string_view record);

  // Polls `source` on a thread of its own until Stop(). The source's
  // callback must call Handle (see MakeRingBufferSource).
  void StartPolling(std::unique_ptr<dataplane::EventSource> source);
  void Stop();

  uint64_t events_handled() const { return handled_.load(std::memory_order_relaxed); }

 private:
  struct ServiceCounters {
    prometheus::Counter* connections;
    prometheus::Counter* bytes_sent;
    prometheus::Counter* bytes_received;
  };
  ServiceCounters& CountersFor(const std::string& service);

  FlowDecoder decoder_;
  FlowObserver& observer_;
  FlowPipelineOptions options_;
  prometheus::Counter* events_by_type_[4];
  prometheus::Counter* invalid_;
  prometheus::Family<prometheus::Counter>& service_connections_;
  prometheus::Family<prometheus::Counter>& service_bytes_;
  std::mutex services_mu_;
  std::unordered_map<std::string, ServiceCounters> services_;
  std::atomic<uint64_t> handled_{0};
  std::unique_ptr<dataplane::EventSource> source_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace kelpie::flows
