// Prometheus metrics of the NodePort dataplane (kelpie_nodeport_*), fed from
// the program's per-CPU reason counters and map walks on the agent's slow
// timer (the counters live in the kernel; a scrape sees the last refresh).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kelpie/nodeport_abi.h"

namespace prometheus {
class Registry;
class Counter;
class Gauge;
class Histogram;
}  // namespace prometheus

namespace kelpie::service_proxy {

// The label value of a kelpie_np_reason ("new_connection", "drop_no_backend", ...).
const char* NodePortReasonName(uint32_t reason);

struct NodePortMapCapacity {
  uint32_t frontends = KELPIE_NP_DEFAULT_MAX_FRONTENDS;
  uint32_t backends = KELPIE_NP_DEFAULT_MAX_BACKENDS;
  uint32_t conntrack = KELPIE_NP_DEFAULT_MAX_CT;
};

class NodePortMetrics {
 public:
  NodePortMetrics(prometheus::Registry& registry, NodePortMapCapacity capacity);

  // Totals per reason as ReasonCounts() returns them. The kernel counters
  // only grow while the map lives; when they restart lower (new maps), the
  // new totals are added as they are.
  void UpdateReasons(const std::vector<uint64_t>& totals);
  void UpdateState(size_t frontends, size_t backends, size_t conntrack_entries, size_t node_addresses,
                   size_t interfaces);
  void ObserveGc(size_t removed, double seconds);

 private:
  NodePortMapCapacity capacity_;
  std::array<prometheus::Counter*, KELPIE_NP_REASON_MAX> packets_{};
  std::array<uint64_t, KELPIE_NP_REASON_MAX> last_{};
  prometheus::Gauge* frontends_ = nullptr;
  prometheus::Gauge* conntrack_entries_ = nullptr;
  prometheus::Gauge* pressure_frontends_ = nullptr;
  prometheus::Gauge* pressure_backends_ = nullptr;
  prometheus::Gauge* pressure_conntrack_ = nullptr;
  prometheus::Gauge* node_addresses_ = nullptr;
  prometheus::Gauge* interfaces_ = nullptr;
  prometheus::Counter* gc_removed_ = nullptr;
  prometheus::Histogram* gc_duration_ = nullptr;
};

}  // namespace kelpie::service_proxy
