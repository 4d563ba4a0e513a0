// Prometheus families of network observability, read from the eBPF maps at
// scrape time (a custom Collectable: nothing is copied per packet or per
// event): flows, bytes and packets per pod, drops by kernel reason, TCP
// connect latency / RTT / lifetime / cwnd histograms from the kernel's log2
// histograms, TCP counters, map pressure and program run statistics.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "control/identity/identity_cache.h"
#include "dataplane/flow_program.h"
#include "dataplane/tcp_health_program.h"

namespace kelpie::metrics {

struct NetworkMetricsSources {
  const dataplane::FlowStatsReader* flows = nullptr;  // optional
  const dataplane::TcpHealthReader* tcp = nullptr;    // optional
  const identity::IdentityLookup* identities = nullptr;
  std::function<std::string(uint32_t)> drop_reason_name;
};

struct NetworkMetricsOptions {
  // Pods with their own series; the rest are summed under pod="other".
  size_t max_pod_series = 500;
};

// One histogram's Prometheus buckets from a kernel log2 histogram: slot i
// counts integer values v with 2^(i-1) <= v < 2^i, so "le 2^i * scale"
// holds slots 0..i. Buckets are emitted for slots [min_slot, max_slot]
// plus +Inf.
prometheus::ClientMetric::Histogram Log2ToHistogram(const kelpie_log2_hist& h, double scale, int min_slot,
                                                    int max_slot);

class NetworkMetricsCollector final : public prometheus::Collectable {
 public:
  NetworkMetricsCollector(NetworkMetricsSources sources, NetworkMetricsOptions options = {})
      : sources_(std::move(sources)), options_(options) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  void CollectFlows(std::vector<prometheus::MetricFamily>& out) const;
  void CollectTcp(std::vector<prometheus::MetricFamily>& out) const;
  void CollectPrograms(std::vector<prometheus::MetricFamily>& out) const;

  NetworkMetricsSources sources_;
  NetworkMetricsOptions options_;
};

}  // namespace kelpie::metrics
