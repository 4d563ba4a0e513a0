// Network observability overhead and capacity, in one run:
//   1. TCP connect + request + close rate between two network namespaces,
//      flow observability off vs on (flow + TCP health programs attached,
//      the user-space pipeline consuming the events): the ratio is the
//      overhead (goal: <= 5%).
//   2. Bulk throughput of one connection, off vs on (goal: <= 2%).
//   3. Flow events the user-space pipeline handles per second on one core
//      (decode with identity, observer ring, counters; goal >= 1M/s).
//   4. Scrape time of ~10k series from the collector (goal <= 100 ms).
// Needs root for 1 and 2 (exit code 77 when not root).
//   flow_observability_bench [--smoke] [--seconds S] [--bulk-mb N]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <prometheus/text_serializer.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "dataplane/flow_program.h"
#include "dataplane/ring_buffer_source.h"
#include "dataplane/tcp_health_program.h"
#include "exporters/flows/flow_pipeline.h"
#include "exporters/metrics/network_metrics_collector.h"
#include "tests/integration/observability/flow_test_env.h"
#include "tests/integration/service_routing/service_routing_env.h"

namespace kelpie {
namespace {

using Clock = std::chrono::steady_clock;
using namespace observability_testing;

double Since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// Connections per second for `seconds`, from the client namespace.
double ConnectRate(const PodPair& pods, double seconds) {
  uint64_t n = 0;
  double elapsed = 0;
  (void)RunInNetns(pods.client_netns(), [&] {
    auto start = Clock::now();
    while ((elapsed = Since(start)) < seconds) {
      if (TcpExchange(pods.server_ip(), 8080, 16).error == 0) ++n;
    }
  });
  return elapsed > 0 ? static_cast<double>(n) / elapsed : 0;
}

double BulkMegabytesPerSecond(const PodPair& pods, size_t megabytes) {
  double mbps = 0;
  (void)RunInNetns(pods.client_netns(), [&] {
    auto start = Clock::now();
    Exchange x = TcpExchange(pods.server_ip(), 8080, megabytes << 20, 30000);
    if (x.error == 0) mbps = static_cast<double>(megabytes) / Since(start);
  });
  return mbps;
}

// The programs and the pipeline of a node, on the benchmark's cgroup.
struct Observability {
  identity::IdentityCache identities;
  flows::FlowObserver observer{10000};
  prometheus::Registry registry;
  std::unique_ptr<dataplane::FlowProgram> flows;
  std::unique_ptr<dataplane::TcpHealthProgram> tcp;
  std::unique_ptr<flows::FlowPipeline> pipeline;
};

absl::StatusOr<std::unique_ptr<Observability>> StartObservability(const std::string& cgroup) {
  auto o = std::make_unique<Observability>();
  auto flows = dataplane::FlowProgram::Start({});
  if (!flows.ok()) return flows.status();
  o->flows = std::move(*flows);
  if (absl::Status s = o->flows->AttachCgroup(cgroup); !s.ok()) return s;
  auto tcp = dataplane::TcpHealthProgram::Start({});
  if (!tcp.ok()) return tcp.status();
  o->tcp = std::move(*tcp);
  o->pipeline = std::make_unique<flows::FlowPipeline>(
      flows::FlowDecoder(o->identities, {.node_name = "bench", .drop_reason_name = nullptr,
                                         .monotonic_to_wall_ns = flows::MonotonicToWallOffsetNs()}),
      o->observer, o->registry);
  Observability* raw = o.get();
  auto source = dataplane::RingBufferSource::Create(o->flows->events_fd(), [raw](std::string_view r) {
    raw->pipeline->Handle(r);
    return true;
  });
  if (!source.ok()) return source.status();
  o->pipeline->StartPolling(std::move(*source));
  return o;
}

double PipelineEventsPerSecond(size_t events) {
  identity::IdentityCache identities;
  for (int i = 0; i < 200; ++i) {
    identities.UpsertPod({.uid = absl::StrCat("u", i), .namespace_name = "bench", .name = absl::StrCat("pod-", i),
                          .labels = {{"app", absl::StrCat("app-", i % 10)}},
                          .ips = {absl::StrCat("10.42.", i / 250, ".", i % 250 + 1)}});
    identities.SetPodCgroup(absl::StrCat("u", i), 1000 + i);
  }
  for (int i = 0; i < 10; ++i) {
    identities.UpsertService({.namespace_name = "bench", .name = absl::StrCat("svc-", i),
                              .cluster_ips = {absl::StrCat("10.43.0.", i + 1)},
                              .selector = {{"app", absl::StrCat("app-", i)}}});
  }
  flows::FlowObserver observer(10000);
  prometheus::Registry registry;
  flows::FlowPipeline pipeline(flows::FlowDecoder(identities, {.node_name = "bench"}), observer, registry);
  std::vector<kelpie_flow_event> records(1024);
  for (size_t i = 0; i < records.size(); ++i) {
    kelpie_flow_event& e = records[i];
    std::memset(&e, 0, sizeof(e));
    e.key.cgroup_id = 1000 + i % 200;
    e.key.local_ip = htonl(0x0a2a0000u | static_cast<uint32_t>(i % 200 + 1));
    e.key.remote_ip = htonl(0x0a2a0000u | static_cast<uint32_t>((i * 7) % 200 + 1));
    e.key.local_port = static_cast<uint16_t>(30000 + i);
    e.key.remote_port = 8080;
    e.key.protocol = IPPROTO_TCP;
    e.stats.origin = KELPIE_ORIGIN_LOCAL;
    e.stats.tx_bytes = 1000 + i;
    e.stats.tcp_flags_tx = 0x13;
    e.type = i % 2 ? KELPIE_FLOW_CLOSE : KELPIE_FLOW_OPEN;
    e.verdict = KELPIE_VERDICT_FORWARDED;
  }
  auto start = Clock::now();
  for (size_t i = 0; i < events; ++i) {
    const kelpie_flow_event& e = records[i % records.size()];
    pipeline.Handle(std::string_view(reinterpret_cast<const char*>(&e), sizeof(e)));
  }
  return static_cast<double>(events) / Since(start);
}

class ManyPods : public dataplane::FlowStatsReader {
 public:
  explicit ManyPods(int n) {
    for (int i = 0; i < n; ++i) stats_[static_cast<uint64_t>(5000 + i)] = {1, 1, 100, 100, 2, 2, 0};
  }
  std::map<uint64_t, kelpie_flow_cgroup_stats> CgroupStats() const override { return stats_; }
  uint64_t Skips(kelpie_flow_skip_reason) const override { return 0; }
  uint64_t FlowTableEntries() const override { return 0; }
  uint64_t FlowTableCapacity() const override { return 65536; }

 private:
  std::map<uint64_t, kelpie_flow_cgroup_stats> stats_;
};

// Median time of Collect + text serialization; `series` receives the count.
double ScrapeSeconds(int pods, size_t& series) {
  identity::IdentityCache identities;
  for (int i = 0; i < pods; ++i) {
    identities.UpsertPod({.uid = absl::StrCat("u", i), .namespace_name = "bench", .name = absl::StrCat("pod-", i)});
    identities.SetPodCgroup(absl::StrCat("u", i), static_cast<uint64_t>(5000 + i));
  }
  ManyPods reader(pods);
  metrics::NetworkMetricsCollector collector({.flows = &reader, .identities = &identities},
                                             {.max_pod_series = static_cast<size_t>(pods)});
  std::vector<double> times;
  for (int round = 0; round < 5; ++round) {
    auto start = Clock::now();
    std::string text = prometheus::TextSerializer().Serialize(collector.Collect());
    times.push_back(Since(start));
    series = 0;
    for (size_t at = 0; at < text.size(); at = text.find('\n', at) + 1) {
      if (text[at] != '#') ++series;
      if (text.find('\n', at) == std::string::npos) break;
    }
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

int Run(int argc, char** argv) {
  bool smoke = false;
  double seconds = 3;
  size_t bulk_mb = 256;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--smoke") {
      smoke = true;
      seconds = 0.3;
      bulk_mb = 8;
    } else if (a == "--seconds" && i + 1 < argc) {
      seconds = std::stod(argv[++i]);
    } else if (a == "--bulk-mb" && i + 1 < argc) {
      bulk_mb = std::stoul(argv[++i]);
    } else {
      std::cerr << "usage: flow_observability_bench [--smoke] [--seconds S] [--bulk-mb N]\n";
      return 2;
    }
  }
  size_t events = smoke ? 100000 : 3000000;
  double pipeline_rate = PipelineEventsPerSecond(events);
  size_t series = 0;
  double scrape = ScrapeSeconds(smoke ? 150 : 1430, series);

  double conn_off = 0, conn_on = 0, bulk_off = 0, bulk_on = 0;
  bool privileged = ::geteuid() == 0;
  if (privileged) {
    std::string base = absl::StrCat("kobb", ::getpid() % 100000);
    auto cg = service_routing_testing::TestCgroup::Create(base + "-cg");
    if (!cg.ok() || !(*cg)->Enter().ok()) {
      std::cerr << "test cgroup: " << (cg.ok() ? "cannot enter" : cg.status().ToString()) << "\n";
      return 1;
    }
    auto pods = PodPair::Create(base, "10.213.11");
    if (!pods.ok()) {
      std::cerr << pods.status() << "\n";
      return 1;
    }
    auto server = SinkServer::Start((*pods)->server_netns(), (*pods)->server_ip(), 8080, 16);
    if (!server.ok()) {
      std::cerr << server.status() << "\n";
      return 1;
    }
    // Alternate off / on twice to spread the machine's noise over both.
    for (int round = 0; round < 2; ++round) {
      conn_off += ConnectRate(**pods, seconds / 2);
      bulk_off += BulkMegabytesPerSecond(**pods, bulk_mb / 2);
      auto on = StartObservability((*cg)->path());
      if (!on.ok()) {
        std::cerr << "observability: " << on.status() << "\n";
        return 1;
      }
      conn_on += ConnectRate(**pods, seconds / 2);
      bulk_on += BulkMegabytesPerSecond(**pods, bulk_mb / 2);
      (*on)->pipeline->Stop();
    }
    conn_off /= 2, conn_on /= 2, bulk_off /= 2, bulk_on /= 2;
  }

  auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
  std::printf("\nNetwork observability: kelpie (flows + TCP health on) vs the same traffic with it off\n\n");
  std::printf("%-40s | %16s | %16s | %8s | %s\n", "measure", "off (anchor)", "kelpie on", "ratio", "goal");
  std::printf("-----------------------------------------+------------------+------------------+----------+------------\n");
  if (privileged) {
    std::printf("%-40s | %16.0f | %16.0f | %7.3fx | >= 0.95x\n", "connect+request+close (conn/s)", conn_off, conn_on,
                ratio(conn_on, conn_off));
    std::printf("%-40s | %16.0f | %16.0f | %7.3fx | >= 0.98x\n", "bulk throughput (MB/s)", bulk_off, bulk_on,
                ratio(bulk_on, bulk_off));
  } else {
    std::printf("%-40s | %16s | %16s | %8s |\n", "connect rate, bulk throughput", "needs root", "", "");
  }
  std::printf("\n%-40s | %16s | %16s | %8s\n", "capacity", "goal (anchor)", "kelpie", "ratio");
  std::printf("-----------------------------------------+------------------+------------------+----------\n");
  std::printf("%-40s | %16.0f | %16.0f | %7.2fx\n", "pipeline flow events/s (one core)", 1e6, pipeline_rate,
              ratio(pipeline_rate, 1e6));
  std::printf("%-40s | %16.1f | %16.1f | %7.2fx\n", absl::StrCat("scrape of ", series, " series (ms)").c_str(), 100.0,
              scrape * 1000, ratio(100.0, scrape * 1000));
  std::printf("(scrape ratio: goal / measured, > 1 is better)\n");
  if (!privileged) return 77;
  return conn_on > 0 && bulk_on > 0 ? 0 : 1;
}

}  // namespace
}  // namespace kelpie

int main(int argc, char** argv) { return kelpie::Run(argc, argv); }
