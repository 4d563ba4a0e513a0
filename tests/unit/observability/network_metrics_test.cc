// The scrape-time collector over fake map readers: family names, per-pod
// labels with the cardinality cap, log2 histograms as Prometheus buckets,
// drop reason names, and `promtool check metrics` on the exposition.
#include "exporters/metrics/network_metrics_collector.h"

#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include <cmath>
#include <cstring>

#include "common/subprocess.h"

namespace kelpie::metrics {
namespace {

class FakeFlows : public dataplane::FlowStatsReader {
 public:
  std::map<uint64_t, kelpie_flow_cgroup_stats> CgroupStats() const override { return stats; }
  uint64_t Skips(kelpie_flow_skip_reason reason) const override {
    return reason == KELPIE_FLOW_SKIP_RINGBUF_FULL ? 7 : 0;
  }
  uint64_t FlowTableEntries() const override { return 12; }
  uint64_t FlowTableCapacity() const override { return 65536; }
  std::map<uint64_t, kelpie_flow_cgroup_stats> stats;
};

class FakeTcp : public dataplane::TcpHealthReader {
 public:
  kelpie_log2_hist Histogram(kelpie_tcp_hist which) const override {
    kelpie_log2_hist h;
    std::memset(&h, 0, sizeof(h));
    if (which == KELPIE_TCP_HIST_CONNECT_NS) {
      h.slots[17] = 3;  // 65..131 us
      h.slots[20] = 1;  // 0.5..1 ms
      h.count = 4;
      h.sum = 3 * 100000 + 600000;
    }
    return h;
  }
  uint64_t Counter(kelpie_tcp_counter which) const override { return which == KELPIE_TCP_RETRANSMITS ? 9 : 1; }
  std::map<uint32_t, uint64_t> DropCounts() const override { return {{5, 4}, {2, 1}}; }
};

kelpie_flow_cgroup_stats Stats(uint64_t n) {
  return {.flows_opened = n, .flows_closed = n, .tx_bytes = 100 * n, .rx_bytes = 50 * n,
          .tx_packets = 2 * n, .rx_packets = n, .drops = 0};
}

TEST(NetworkMetricsTest, Log2HistogramBucketsAreCumulative) {
  kelpie_log2_hist h;
  std::memset(&h, 0, sizeof(h));
  h.slots[0] = 1;
  h.slots[3] = 2;
  h.slots[40] = 1;  // beyond the last bucket: only in +Inf
  h.count = 4;
  h.sum = 10;
  auto out = Log2ToHistogram(h, 0.5, 2, 5);
  ASSERT_EQ(out.bucket.size(), 5u);
  EXPECT_DOUBLE_EQ(out.bucket[0].upper_bound, 2.0);  // 2^2 * 0.5
  EXPECT_EQ(out.bucket[0].cumulative_count, 1u);
  EXPECT_EQ(out.bucket[1].cumulative_count, 3u);
  EXPECT_EQ(out.bucket[3].cumulative_count, 3u);
  EXPECT_TRUE(std::isinf(out.bucket[4].upper_bound));
  EXPECT_EQ(out.bucket[4].cumulative_count, 4u);
  EXPECT_EQ(out.sample_count, 4u);
  EXPECT_DOUBLE_EQ(out.sample_sum, 5.0);
}

TEST(NetworkMetricsTest, FamiliesPerPodDropsAndPromtool) {
  identity::IdentityCache identities;
  identities.UpsertPod({.uid = "u1", .namespace_name = "shop", .name = "web-1", .ips = {"10.42.0.7"}});
  identities.UpsertPod({.uid = "u2", .namespace_name = "shop", .name = "web-2", .ips = {"10.42.0.8"}});
  identities.SetPodCgroup("u1", 11);
  identities.SetPodCgroup("u2", 12);
  FakeFlows flows;
  flows.stats = {{11, Stats(1)}, {12, Stats(2)}, {13, Stats(4)}};  // 13: no pod known
  FakeTcp tcp;
  NetworkMetricsCollector collector(
      {.flows = &flows, .tcp = &tcp, .identities = &identities,
       .drop_reason_name = [](uint32_t r) { return r == 5 ? std::string("NETFILTER_DROP") : "NO_SOCKET"; }},
      {.max_pod_series = 2});
  std::string text = prometheus::TextSerializer().Serialize(collector.Collect());
  auto has = [&](const std::string& line) {
    EXPECT_NE(text.find(line + "\n"), std::string::npos) << "missing: " << line << "\n" << text;
  };
  has("kelpie_flows_total{namespace=\"shop\",pod=\"web-1\"} 1");
  has("kelpie_flows_total{namespace=\"shop\",pod=\"web-2\"} 2");
  // The unknown cgroup's series is past the cap of two: summed under "other".
  has("kelpie_flows_total{namespace=\"other\",pod=\"other\"} 4");
  has("kelpie_flow_bytes_total{namespace=\"shop\",pod=\"web-1\",direction=\"tx\"} 100");
  has("kelpie_flow_skips_total{reason=\"ring_buffer_full\"} 7");
  has("kelpie_bpf_map_entries{map=\"flows\"} 12");
  has("kelpie_bpf_map_max_entries{map=\"flows\"} 65536");
  has("kelpie_drops_total{reason=\"NETFILTER_DROP\"} 4");
  has("kelpie_drops_total{reason=\"NO_SOCKET\"} 1");
  has("kelpie_tcp_retransmits_total 9");
  has("kelpie_tcp_connect_duration_seconds_count 4");
  has("kelpie_tcp_connect_duration_seconds_bucket{le=\"0.000131072\"} 3");
  has("kelpie_tcp_connect_duration_seconds_bucket{le=\"+Inf\"} 4");
  has("kelpie_tcp_resets_total{direction=\"sent\"} 1");
  for (const char* family : {"kelpie_tcp_rtt_seconds", "kelpie_tcp_connection_duration_seconds",
                             "kelpie_tcp_congestion_window_segments", "kelpie_tcp_connections_established_total"}) {
    EXPECT_NE(text.find(std::string("# TYPE ") + family), std::string::npos) << family;
  }

  auto promtool = FindExecutable("promtool");
  ASSERT_TRUE(promtool.has_value()) << "promtool (Debian package prometheus) is a test dependency";
  SubprocessOptions options;
  options.stdin_text = text;
  auto r = RunSubprocess({*promtool, "check", "metrics"}, options);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->Succeeded()) << r->stdout_text << r->stderr_text;
  EXPECT_EQ(r->stdout_text + r->stderr_text, "");
}

}  // namespace
}  // namespace kelpie::metrics
