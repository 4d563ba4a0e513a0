#include "exporters/metrics/network_metrics_collector.h"

#include <cmath>
#include <limits>
#include <map>
#include <tuple>

#include "dataplane/program_stats.h"

namespace kelpie::metrics {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily Family(const char* name, const char* help, MetricType type) {
  MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  return f;
}

ClientMetric Value(MetricType type, double v, std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric m;
  m.label = std::move(labels);
  if (type == MetricType::Counter) m.counter.value = v;
  else m.gauge.value = v;
  return m;
}

}  // namespace

ClientMetric::Histogram Log2ToHistogram(const kelpie_log2_hist& h, double scale, int min_slot, int max_slot) {
  ClientMetric::Histogram out;
  uint64_t cumulative = 0;
  for (int i = 0; i <= max_slot && i < KELPIE_LOG2_SLOTS; ++i) {
    cumulative += h.slots[i];
    if (i < min_slot) continue;
    out.bucket.push_back({.cumulative_count = cumulative, .upper_bound = std::ldexp(1.0, i) * scale});
  }
  // +Inf holds every sample (count, not the slot sum: per-CPU reads of
  // slots and count can be a few events apart while traffic runs).
  uint64_t total = h.count;
  for (auto& b : out.bucket) total = std::max(total, b.cumulative_count);
  out.bucket.push_back({.cumulative_count = total, .upper_bound = std::numeric_limits<double>::infinity()});
  out.sample_count = total;
  out.sample_sum = static_cast<double>(h.sum) * scale;
  return out;
}

std::vector<MetricFamily> NetworkMetricsCollector::Collect() const {
  std::vector<MetricFamily> out;
  if (sources_.flows) CollectFlows(out);
  if (sources_.tcp) CollectTcp(out);
  CollectPrograms(out);
  return out;
}

void NetworkMetricsCollector::CollectFlows(std::vector<MetricFamily>& out) const {
  // Per pod (cgroup) totals; unknown cgroups and pods past the cap summed.
  using PodKey = std::tuple<std::string, std::string>;
  std::map<PodKey, kelpie_flow_cgroup_stats> per_pod;
  for (const auto& [cgroup, s] : sources_.flows->CgroupStats()) {
    PodKey key{"", ""};
    if (sources_.identities) {
      if (auto pod = sources_.identities->ByCgroup(cgroup)) key = {pod->namespace_name, pod->pod_name};
    }
    if (!per_pod.count(key) && per_pod.size() >= options_.max_pod_series) key = {"other", "other"};
    kelpie_flow_cgroup_stats& t = per_pod[key];
    t.flows_opened += s.flows_opened;
    t.flows_closed += s.flows_closed;
    t.tx_bytes += s.tx_bytes;
    t.rx_bytes += s.rx_bytes;
    t.tx_packets += s.tx_packets;
    t.rx_packets += s.rx_packets;
    t.drops += s.drops;
  }
  MetricFamily flows = Family("kelpie_flows_total", "Connections (flows) seen opening, by pod", MetricType::Counter);
  MetricFamily closed =
      Family("kelpie_flows_closed_total", "Connections (flows) seen closing, by pod", MetricType::Counter);
  MetricFamily bytes = Family("kelpie_flow_bytes_total", "IP bytes sent (tx) and received (rx) by pod",
                              MetricType::Counter);
  MetricFamily packets = Family("kelpie_flow_packets_total", "IP packets sent (tx) and received (rx) by pod",
                                MetricType::Counter);
  MetricFamily drops = Family("kelpie_flow_drops_total", "Packets of a pod's sockets the kernel dropped, by pod",
                              MetricType::Counter);
  for (const auto& [key, s] : per_pod) {
    std::vector<ClientMetric::Label> pod{{"namespace", std::get<0>(key)}, {"pod", std::get<1>(key)}};
    auto with = [&](const char* dir) {
      auto l = pod;
      l.push_back({"direction", dir});
      return l;
    };
    flows.metric.push_back(Value(MetricType::Counter, static_cast<double>(s.flows_opened), pod));
    closed.metric.push_back(Value(MetricType::Counter, static_cast<double>(s.flows_closed), pod));
    bytes.metric.push_back(Value(MetricType::Counter, static_cast<double>(s.tx_bytes), with("tx")));
    bytes.metric.push_back(Value(MetricType::Counter, static_cast<double>(s.rx_bytes), with("rx")));
    packets.metric.push_back(Value(MetricType::Counter, static_cast<double>(s.tx_packets), with("tx")));
    packets.metric.push_back(Value(MetricType::Counter, static_cast<double>(s.rx_packets), with("rx")));
    drops.metric.push_back(Value(MetricType::Counter, static_cast<double>(s.drops), pod));
  }
  for (auto* f : {&flows, &closed, &bytes, &packets, &drops}) out.push_back(std::move(*f));

  static const std::pair<kelpie_flow_skip_reason, const char*> kSkips[] = {
      {KELPIE_FLOW_SKIP_NOT_IPV4, "not_ipv4"},         {KELPIE_FLOW_SKIP_SHORT_PACKET, "short_packet"},
      {KELPIE_FLOW_SKIP_OTHER_PROTOCOL, "other_protocol"}, {KELPIE_FLOW_SKIP_FRAGMENT, "fragment"},
      {KELPIE_FLOW_SKIP_MAP_FULL, "flow_table_full"},   {KELPIE_FLOW_SKIP_RINGBUF_FULL, "ring_buffer_full"},
      {KELPIE_FLOW_SKIP_DROP_UNWATCHED, "drop_of_unwatched_socket"},
      {KELPIE_FLOW_SKIP_NOT_NETWORK_DROP, "not_a_network_drop"}};
  MetricFamily skips = Family("kelpie_flow_skips_total",
                              "Packets or events the flow programs skipped or lost, by reason (ring_buffer_full: "
                              "flow events lost because user space fell behind)",
                              MetricType::Counter);
  for (const auto& [reason, name] : kSkips) {
    skips.metric.push_back(
        Value(MetricType::Counter, static_cast<double>(sources_.flows->Skips(reason)), {{"reason", name}}));
  }
  out.push_back(std::move(skips));

  MetricFamily entries = Family("kelpie_bpf_map_entries", "Entries in an eBPF map", MetricType::Gauge);
  entries.metric.push_back(
      Value(MetricType::Gauge, static_cast<double>(sources_.flows->FlowTableEntries()), {{"map", "flows"}}));
  out.push_back(std::move(entries));
  MetricFamily capacity = Family("kelpie_bpf_map_max_entries", "Capacity of an eBPF map", MetricType::Gauge);
  capacity.metric.push_back(
      Value(MetricType::Gauge, static_cast<double>(sources_.flows->FlowTableCapacity()), {{"map", "flows"}}));
  out.push_back(std::move(capacity));
}

void NetworkMetricsCollector::CollectTcp(std::vector<MetricFamily>& out) const {
  const dataplane::TcpHealthReader& tcp = *sources_.tcp;
  auto histogram = [&](const char* name, const char* help, kelpie_tcp_hist which, double scale, int lo, int hi) {
    MetricFamily f = Family(name, help, MetricType::Histogram);
    ClientMetric m;
    m.histogram = Log2ToHistogram(tcp.Histogram(which), scale, lo, hi);
    f.metric.push_back(std::move(m));
    out.push_back(std::move(f));
  };
  histogram("kelpie_tcp_connect_duration_seconds", "TCP connect latency, SYN sent to established",
            KELPIE_TCP_HIST_CONNECT_NS, 1e-9, 10, 36);
  histogram("kelpie_tcp_rtt_seconds", "Smoothed TCP round-trip time, sampled from tcp_probe",
            KELPIE_TCP_HIST_SRTT_US, 1e-6, 0, 24);
  histogram("kelpie_tcp_connection_duration_seconds", "TCP connection lifetime, established to closed",
            KELPIE_TCP_HIST_LIFETIME_NS, 1e-9, 20, 42);
  histogram("kelpie_tcp_congestion_window_segments", "TCP congestion window, sampled from tcp_probe",
            KELPIE_TCP_HIST_CWND, 1.0, 0, 16);

  auto counter = [&](const char* name, const char* help, kelpie_tcp_counter which) {
    MetricFamily f = Family(name, help, MetricType::Counter);
    f.metric.push_back(Value(MetricType::Counter, static_cast<double>(tcp.Counter(which))));
    out.push_back(std::move(f));
  };
  counter("kelpie_tcp_retransmits_total", "TCP segments retransmitted", KELPIE_TCP_RETRANSMITS);
  counter("kelpie_tcp_connect_attempts_total", "TCP connects started (SYN sent)", KELPIE_TCP_CONNECT_ATTEMPTS);
  counter("kelpie_tcp_connect_failures_total", "TCP connects that failed (SYN sent to closed)",
          KELPIE_TCP_CONNECT_FAILURES);
  counter("kelpie_tcp_closes_total", "TCP connections closed after being established", KELPIE_TCP_CLOSES);
  counter("kelpie_tcp_probe_samples_total", "tcp_probe samples taken for the RTT and cwnd histograms",
          KELPIE_TCP_PROBE_SAMPLES);

  MetricFamily established =
      Family("kelpie_tcp_connections_established_total", "TCP connections established, by who connected",
             MetricType::Counter);
  established.metric.push_back(Value(MetricType::Counter, static_cast<double>(tcp.Counter(KELPIE_TCP_CONNECTS)),
                                     {{"direction", "outbound"}}));
  established.metric.push_back(Value(MetricType::Counter, static_cast<double>(tcp.Counter(KELPIE_TCP_ACCEPTS)),
                                     {{"direction", "inbound"}}));
  out.push_back(std::move(established));

  MetricFamily resets = Family("kelpie_tcp_resets_total", "TCP resets, by direction", MetricType::Counter);
  resets.metric.push_back(Value(MetricType::Counter, static_cast<double>(tcp.Counter(KELPIE_TCP_RESETS_SENT)),
                                {{"direction", "sent"}}));
  resets.metric.push_back(Value(MetricType::Counter,
                                static_cast<double>(tcp.Counter(KELPIE_TCP_RESETS_RECEIVED)),
                                {{"direction", "received"}}));
  out.push_back(std::move(resets));

  MetricFamily skipped = Family("kelpie_tcp_events_skipped_total",
                                "TCP tracepoint events not counted, by reason", MetricType::Counter);
  skipped.metric.push_back(Value(MetricType::Counter,
                                 static_cast<double>(tcp.Counter(KELPIE_TCP_SKIP_OTHER_CGROUP)),
                                 {{"reason", "other_cgroup"}}));
  skipped.metric.push_back(Value(MetricType::Counter,
                                 static_cast<double>(tcp.Counter(KELPIE_TCP_SKIP_SOCKET_MAP_FULL)),
                                 {{"reason", "socket_table_full"}}));
  out.push_back(std::move(skipped));

  // Drop reasons number in the hundreds at most: bounded by the kernel.
  MetricFamily drops = Family("kelpie_drops_total", "Packets the kernel dropped on this node, by drop reason",
                              MetricType::Counter);
  for (const auto& [reason, n] : tcp.DropCounts()) {
    std::string name = sources_.drop_reason_name ? sources_.drop_reason_name(reason) : std::to_string(reason);
    drops.metric.push_back(Value(MetricType::Counter, static_cast<double>(n), {{"reason", name}}));
  }
  out.push_back(std::move(drops));
}

void NetworkMetricsCollector::CollectPrograms(std::vector<MetricFamily>& out) const {
  std::vector<int> fds;
  if (sources_.flows) fds = sources_.flows->ProgramFds();
  if (sources_.tcp) {
    auto more = sources_.tcp->ProgramFds();
    fds.insert(fds.end(), more.begin(), more.end());
  }
  if (fds.empty()) return;
  MetricFamily runs = Family("kelpie_bpf_program_runs_total",
                             "Runs of an eBPF program (counted while BPF statistics are enabled)",
                             MetricType::Counter);
  MetricFamily time = Family("kelpie_bpf_program_run_seconds_total",
                             "Time spent in an eBPF program (counted while BPF statistics are enabled)",
                             MetricType::Counter);
  for (int fd : fds) {
    auto stats = dataplane::ReadProgramRunStats(fd);
    if (!stats.ok()) continue;
    runs.metric.push_back(
        Value(MetricType::Counter, static_cast<double>(stats->run_count), {{"program", stats->name}}));
    time.metric.push_back(
        Value(MetricType::Counter, static_cast<double>(stats->run_time_ns) * 1e-9, {{"program", stats->name}}));
  }
  out.push_back(std::move(runs));
  out.push_back(std::move(time));
}

}  // namespace kelpie::metrics
