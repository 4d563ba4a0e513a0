#include "control/service_proxy/node_port_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace kelpie::service_proxy {

const char* NodePortReasonName(uint32_t reason) {
  switch (reason) {
    case KELPIE_NP_NEW_CONNECTION:
      return "new_connection";
    case KELPIE_NP_CT_FORWARD:
      return "ct_forward";
    case KELPIE_NP_CT_REPLY:
      return "ct_reply";
    case KELPIE_NP_DROP_NO_BACKEND:
      return "drop_no_backend";
    case KELPIE_NP_DROP_BACKEND_MISSING:
      return "drop_backend_missing";
    case KELPIE_NP_DROP_SNAT_EXHAUSTED:
      return "drop_snat_exhausted";
    case KELPIE_NP_DROP_CT_FULL:
      return "drop_ct_full";
    case KELPIE_NP_FIB_PASS:
      return "fib_pass";
    case KELPIE_NP_DROP_NAT_FAILED:
      return "drop_nat_failed";
    default:
      return "unknown";
  }
}

NodePortMetrics::NodePortMetrics(prometheus::Registry& registry, NodePortMapCapacity capacity)
    : capacity_(capacity) {
  auto& packets = prometheus::BuildCounter()
                      .Name("kelpie_nodeport_packets_total")
                      .Help("Packets the NodePort tc program handled, by outcome (new_connection: first packet of a "
                            "translated flow; ct_forward/ct_reply: packets of tracked flows; drop_*: dropped; "
                            "fib_pass: translated but left to the stack)")
                      .Register(registry);
  for (uint32_t r = 0; r < KELPIE_NP_REASON_MAX; ++r) packets_[r] = &packets.Add({{"reason", NodePortReasonName(r)}});
  frontends_ = &prometheus::BuildGauge()
                    .Name("kelpie_nodeport_frontends")
                    .Help("NodePort and externalIP frontends programmed on this node")
                    .Register(registry)
                    .Add({});
  conntrack_entries_ = &prometheus::BuildGauge()
                            .Name("kelpie_nodeport_conntrack_entries")
                            .Help("Entries in the NodePort connection tracking map (two per flow)")
                            .Register(registry)
                            .Add({});
  auto& pressure = prometheus::BuildGauge()
                       .Name("kelpie_nodeport_map_pressure")
                       .Help("Entries / capacity of the NodePort maps")
                       .Register(registry);
  pressure_frontends_ = &pressure.Add({{"map", "np_frontends"}});
  pressure_backends_ = &pressure.Add({{"map", "np_backends"}});
  pressure_conntrack_ = &pressure.Add({{"map", "np_conntrack"}});
  node_addresses_ = &prometheus::BuildGauge()
                         .Name("kelpie_nodeport_node_addresses")
                         .Help("Node addresses NodePorts are served on (IPv4 addresses of the NodePort interfaces)")
                         .Register(registry)
                         .Add({});
  interfaces_ = &prometheus::BuildGauge()
                     .Name("kelpie_nodeport_interfaces")
                     .Help("Interfaces the NodePort program is attached to")
                     .Register(registry)
                     .Add({});
  gc_removed_ = &prometheus::BuildCounter()
                     .Name("kelpie_nodeport_conntrack_gc_removed_total")
                     .Help("Conntrack entries removed by the idle sweep")
                     .Register(registry)
                     .Add({});
  gc_duration_ = &prometheus::BuildHistogram()
                      .Name("kelpie_nodeport_conntrack_gc_duration_seconds")
                      .Help("Duration of one conntrack sweep")
                      .Register(registry)
                      .Add({}, prometheus::Histogram::BucketBoundaries{0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5});
}

void NodePortMetrics::UpdateReasons(const std::vector<uint64_t>& totals) {
  for (size_t r = 0; r < totals.size() && r < packets_.size(); ++r) {
    uint64_t delta = totals[r] >= last_[r] ? totals[r] - last_[r] : totals[r];
    if (delta != 0) packets_[r]->Increment(static_cast<double>(delta));
    last_[r] = totals[r];
  }
}

void NodePortMetrics::UpdateState(size_t frontends, size_t backends, size_t conntrack_entries,
                                  size_t node_addresses, size_t interfaces) {
  frontends_->Set(static_cast<double>(frontends));
  conntrack_entries_->Set(static_cast<double>(conntrack_entries));
  pressure_frontends_->Set(static_cast<double>(frontends) / capacity_.frontends);
  pressure_backends_->Set(static_cast<double>(backends) / capacity_.backends);
  pressure_conntrack_->Set(static_cast<double>(conntrack_entries) / capacity_.conntrack);
  node_addresses_->Set(static_cast<double>(node_addresses));
  interfaces_->Set(static_cast<double>(interfaces));
}

void NodePortMetrics::ObserveGc(size_t removed, double seconds) {
  if (removed != 0) gc_removed_->Increment(static_cast<double>(removed));
  gc_duration_->Observe(seconds);
}

}  // namespace kelpie::service_proxy
