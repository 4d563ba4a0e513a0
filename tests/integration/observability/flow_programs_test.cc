// The flow and TCP health BPF programs against real traffic: two network
// namespaces joined by a veth, sockets made by this process inside them
// while it sits in a test cgroup the flow programs are attached to (never
// the host's root cgroup). Needs root.
#include <arpa/inet.h>
#include <errno.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "dataplane/drop_reason_names.h"
#include "dataplane/flow_program.h"
#include "dataplane/program_stats.h"
#include "dataplane/ring_buffer_source.h"
#include "dataplane/tcp_health_program.h"
#include "tests/integration/observability/flow_test_env.h"
#include "tests/integration/service_routing/service_routing_env.h"
#include "tests/testing/test_env.h"

namespace kelpie {
namespace {

using namespace observability_testing;
using dataplane::FlowProgram;
using dataplane::TcpHealthProgram;

constexpr uint16_t kServerPort = 8080;
constexpr uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kAck = 0x10;

uint32_t Ipv4(const std::string& ip) {
  in_addr a{};
  ::inet_pton(AF_INET, ip.c_str(), &a);
  return a.s_addr;
}

class FlowProgramsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    KELPIE_REQUIRE_PRIVILEGES();
    std::string base = absl::StrCat("kobs", ::getpid() % 100000);
    auto cg = service_routing_testing::TestCgroup::Create(base + "-cg");
    ASSERT_TRUE(cg.ok()) << cg.status();
    cgroup_ = std::move(*cg);
    ASSERT_TRUE(cgroup_->Enter().ok());
    auto id = dataplane::CgroupIdOfPath(cgroup_->path());
    ASSERT_TRUE(id.ok()) << id.status();
    cgroup_id_ = *id;
    auto pods = PodPair::Create(base, "10.213.7");
    ASSERT_TRUE(pods.ok()) << pods.status();
    pods_ = std::move(*pods);
  }

  void StartFlows(dataplane::FlowProgramOptions options = {}) {
    auto flows = FlowProgram::Start(options);
    ASSERT_TRUE(flows.ok()) << flows.status();
    flows_ = std::move(*flows);
    ASSERT_TRUE(flows_->AttachCgroup(cgroup_->path()).ok());
    auto source = dataplane::RingBufferSource::Create(flows_->events_fd(), [this](std::string_view record) {
      if (record.size() == sizeof(kelpie_flow_event)) {
        kelpie_flow_event e;
        std::memcpy(&e, record.data(), sizeof(e));
        events_.push_back(e);
      }
      return true;
    });
    ASSERT_TRUE(source.ok()) << source.status();
    source_ = std::move(*source);
  }

  void StartTcpHealth() {
    auto tcp = TcpHealthProgram::Start({.filter_cgroup_id = cgroup_id_, .probe_sample_every = 1});
    ASSERT_TRUE(tcp.ok()) << tcp.status();
    tcp_ = std::move(*tcp);
  }

  // Polls the ring buffer until an event matches `pred` (bounded: 5 s).
  std::optional<kelpie_flow_event> WaitFor(const std::function<bool(const kelpie_flow_event&)>& pred) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    size_t seen = 0;
    while (true) {
      for (; seen < events_.size(); ++seen) {
        if (pred(events_[seen])) return events_[seen];
      }
      if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
      (void)source_->Poll(std::chrono::milliseconds(100));
    }
  }

  // The client side's record of the connection from local_port.
  std::function<bool(const kelpie_flow_event&)> ClientFlow(uint16_t local_port, uint32_t type) {
    return [=, this](const kelpie_flow_event& e) {
      return e.type == type && e.key.protocol == IPPROTO_TCP && e.key.cgroup_id == cgroup_id_ &&
             e.key.local_ip == Ipv4(pods_->client_ip()) && e.key.remote_ip == Ipv4(pods_->server_ip()) &&
             e.key.local_port == local_port && e.key.remote_port == kServerPort;
    };
  }

  Exchange ClientExchange(size_t send_bytes) {
    Exchange r;
    EXPECT_TRUE(RunInNetns(pods_->client_netns(), [&] {
                  r = TcpExchange(pods_->server_ip(), kServerPort, send_bytes);
                }).ok());
    return r;
  }

  // Members in teardown order (last first): programs before the cgroup they
  // watch, the namespaces before the cgroup the process leaves.
  std::unique_ptr<service_routing_testing::TestCgroup> cgroup_;
  uint64_t cgroup_id_ = 0;
  std::unique_ptr<PodPair> pods_;
  std::unique_ptr<FlowProgram> flows_;
  std::unique_ptr<TcpHealthProgram> tcp_;
  std::vector<kelpie_flow_event> events_;
  std::unique_ptr<dataplane::RingBufferSource> source_;
};

TEST_F(FlowProgramsTest, TcpExchangeReportsOpenAndCloseWithBytesOnBothEnds) {
  ASSERT_NO_FATAL_FAILURE(StartFlows());
  auto server = SinkServer::Start(pods_->server_netns(), pods_->server_ip(), kServerPort, 3000);
  ASSERT_TRUE(server.ok()) << server.status();
  Exchange x = ClientExchange(5000);
  ASSERT_EQ(x.error, 0) << std::strerror(x.error);
  ASSERT_EQ(x.received, 3000u);

  auto open = WaitFor(ClientFlow(x.local_port, KELPIE_FLOW_OPEN));
  ASSERT_TRUE(open.has_value()) << "no OPEN event for the client's connection";
  EXPECT_EQ(open->stats.origin, KELPIE_ORIGIN_LOCAL);
  EXPECT_EQ(open->verdict, KELPIE_VERDICT_FORWARDED);

  auto close = WaitFor(ClientFlow(x.local_port, KELPIE_FLOW_CLOSE));
  ASSERT_TRUE(close.has_value()) << "no CLOSE event for the client's connection";
  const kelpie_flow_stats& s = close->stats;
  // IP packet lengths: the payload plus at most 64 header bytes a packet.
  EXPECT_GE(s.tx_bytes, 5000u);
  EXPECT_LE(s.tx_bytes, 5000u + 64 * s.tx_packets);
  EXPECT_GE(s.tx_packets, 3u);  // SYN, data, FIN at least
  EXPECT_EQ(s.tcp_flags_tx & (kSyn | kFin | kAck), kSyn | kFin | kAck);
  EXPECT_EQ(s.tcp_flags_rx & (kSyn | kAck), kSyn | kAck);
  EXPECT_GE(s.last_seen_ns, s.first_seen_ns);
  EXPECT_EQ(s.closed, 1u);

  // The server's socket is in the same cgroup: its record is the mirror.
  auto server_close = WaitFor([&](const kelpie_flow_event& e) {
    return e.type == KELPIE_FLOW_CLOSE && e.key.local_port == kServerPort && e.key.remote_port == x.local_port;
  });
  ASSERT_TRUE(server_close.has_value()) << "no CLOSE event for the server's connection";
  EXPECT_EQ(server_close->stats.origin, KELPIE_ORIGIN_REMOTE);
  EXPECT_EQ(server_close->stats.rx_bytes, s.tx_bytes);
  EXPECT_EQ(server_close->stats.tx_bytes, s.rx_bytes);

  auto totals = flows_->CgroupStats();
  ASSERT_TRUE(totals.count(cgroup_id_));
  EXPECT_GE(totals[cgroup_id_].flows_opened, 2u);
  EXPECT_GE(totals[cgroup_id_].flows_closed, 2u);
  EXPECT_GE(totals[cgroup_id_].tx_bytes, s.tx_bytes + server_close->stats.tx_bytes);
  EXPECT_GE(flows_->FlowTableEntries(), 2u);
  EXPECT_EQ(flows_->FlowTableCapacity(), 65536u);
}

TEST_F(FlowProgramsTest, RefusedConnectionClosesWithReset) {
  ASSERT_NO_FATAL_FAILURE(StartFlows());
  ASSERT_NO_FATAL_FAILURE(StartTcpHealth());
  Exchange x = ClientExchange(10);  // nobody listens
  ASSERT_EQ(x.error, ECONNREFUSED);
  auto close = WaitFor(ClientFlow(x.local_port, KELPIE_FLOW_CLOSE));
  ASSERT_TRUE(close.has_value()) << "no CLOSE event for the refused connection";
  EXPECT_TRUE(close->stats.tcp_flags_rx & kRst);
  EXPECT_EQ(close->stats.tx_packets, 1u);  // the SYN
  EXPECT_EQ(tcp_->Counter(KELPIE_TCP_CONNECT_ATTEMPTS), 1u);
  EXPECT_EQ(tcp_->Counter(KELPIE_TCP_CONNECT_FAILURES), 1u);
  EXPECT_EQ(tcp_->Counter(KELPIE_TCP_CONNECTS), 0u);
  EXPECT_EQ(tcp_->Counter(KELPIE_TCP_RESETS_RECEIVED), 1u);
}

TEST_F(FlowProgramsTest, DroppedSynCarriesTheKernelDropReasonAndIsRetransmitted) {
  ASSERT_NO_FATAL_FAILURE(StartFlows());
  ASSERT_NO_FATAL_FAILURE(StartTcpHealth());
  auto names = dataplane::DropReasonNames::FromKernelBtf();
  ASSERT_TRUE(names.ok()) << names.status();
  // nftables in the client namespace drops its SYNs to port 9099.
  ASSERT_TRUE(pods_
                  ->ClientNft("table ip kelpie_test {\n"
                              "  chain out { type filter hook output priority 0; tcp dport 9099 drop; }\n"
                              "}\n")
                  .ok());
  Exchange x;
  // The first SYN retransmission comes after 1 s.
  ASSERT_TRUE(RunInNetns(pods_->client_netns(), [&] { x = TcpConnectAttempt(pods_->server_ip(), 9099, 1500); }).ok());
  EXPECT_EQ(x.error, ETIMEDOUT);
  auto drop = WaitFor([&](const kelpie_flow_event& e) {
    return e.type == KELPIE_FLOW_DROP && e.key.local_port == x.local_port && e.key.remote_port == 9099;
  });
  ASSERT_TRUE(drop.has_value()) << "no DROP event";
  EXPECT_EQ(drop->verdict, KELPIE_VERDICT_DROPPED);
  EXPECT_EQ(names->Name(drop->stats.last_drop_reason), "NETFILTER_DROP");
  EXPECT_EQ(drop->key.cgroup_id, cgroup_id_);
  EXPECT_GE(flows_->CgroupStats()[cgroup_id_].drops, 2u);  // SYN and its retransmission

  uint32_t netfilter_drop = 0;
  for (uint32_t r = 0; r < KELPIE_DROP_REASON_SLOTS; ++r) {
    if (names->Name(r) == "NETFILTER_DROP") netfilter_drop = r;
  }
  ASSERT_NE(netfilter_drop, 0u);
  EXPECT_GE(tcp_->DropCounts()[netfilter_drop], 2u);
  EXPECT_GE(tcp_->Counter(KELPIE_TCP_RETRANSMITS), 1u);
  EXPECT_EQ(tcp_->Counter(KELPIE_TCP_CONNECT_ATTEMPTS), 1u);
}

TEST_F(FlowProgramsTest, TcpHealthMeasuresConnectLifetimeAndRtt) {
  ASSERT_NO_FATAL_FAILURE(StartTcpHealth());
  auto server = SinkServer::Start(pods_->server_netns(), pods_->server_ip(), kServerPort, 200000);
  ASSERT_TRUE(server.ok()) << server.status();
  constexpr int kConnections = 5;
  for (int i = 0; i < kConnections; ++i) {
    Exchange x = ClientExchange(100000);
    ASSERT_EQ(x.error, 0) << std::strerror(x.error);
  }
  EXPECT_EQ(tcp_->Counter(KELPIE_TCP_CONNECT_ATTEMPTS), kConnections);
  EXPECT_EQ(tcp_->Counter(KELPIE_TCP_CONNECTS), kConnections);
  EXPECT_EQ(tcp_->Counter(KELPIE_TCP_ACCEPTS), kConnections);
  EXPECT_EQ(tcp_->Counter(KELPIE_TCP_CONNECT_FAILURES), 0u);
  kelpie_log2_hist connect = tcp_->Histogram(KELPIE_TCP_HIST_CONNECT_NS);
  EXPECT_EQ(connect.count, kConnections);
  EXPECT_GT(connect.sum, 0u);
  uint64_t in_slots = 0;
  for (uint64_t n : connect.slots) in_slots += n;
  EXPECT_EQ(in_slots, connect.count);
  EXPECT_GE(tcp_->Histogram(KELPIE_TCP_HIST_LIFETIME_NS).count, 1u);
  EXPECT_GT(tcp_->Counter(KELPIE_TCP_PROBE_SAMPLES), 0u);
  kelpie_log2_hist rtt = tcp_->Histogram(KELPIE_TCP_HIST_SRTT_US);
  EXPECT_EQ(rtt.count, tcp_->Counter(KELPIE_TCP_PROBE_SAMPLES));
  EXPECT_GT(tcp_->Histogram(KELPIE_TCP_HIST_CWND).sum, 0u);
}

TEST_F(FlowProgramsTest, UdpDatagramOpensAFlow) {
  ASSERT_NO_FATAL_FAILURE(StartFlows());
  uint16_t port = 0;
  ASSERT_TRUE(RunInNetns(pods_->client_netns(), [&] {
                auto p = UdpSend(pods_->server_ip(), 5353, 100);
                if (p.ok()) port = *p;
              }).ok());
  ASSERT_NE(port, 0);
  auto open = WaitFor([&](const kelpie_flow_event& e) {
    return e.type == KELPIE_FLOW_OPEN && e.key.protocol == IPPROTO_UDP && e.key.local_port == port &&
           e.key.remote_port == 5353;
  });
  ASSERT_TRUE(open.has_value());
  EXPECT_EQ(open->stats.origin, KELPIE_ORIGIN_LOCAL);
}

TEST_F(FlowProgramsTest, LongConnectionGetsPeriodicUpdates) {
  ASSERT_NO_FATAL_FAILURE(StartFlows({.report_interval_ns = 100ULL * 1000 * 1000}));
  auto server = SinkServer::Start(pods_->server_netns(), pods_->server_ip(), kServerPort, 10);
  ASSERT_TRUE(server.ok()) << server.status();
  uint16_t port = 0;
  ASSERT_TRUE(RunInNetns(pods_->client_netns(), [&] {
                int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                sockaddr_in a{};
                a.sin_family = AF_INET;
                a.sin_port = htons(kServerPort);
                a.sin_addr.s_addr = Ipv4(pods_->server_ip());
                if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
                  sockaddr_in l{};
                  socklen_t len = sizeof(l);
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&l), &len);
                  port = ntohs(l.sin_port);
                  for (int i = 0; i < 4; ++i) {  // 4 sends 150 ms apart
                    (void)::send(fd, "tick", 4, MSG_NOSIGNAL);
                    ::usleep(150 * 1000);
                  }
                }
                ::close(fd);
              }).ok());
  ASSERT_NE(port, 0);
  auto update = WaitFor(ClientFlow(port, KELPIE_FLOW_UPDATE));
  ASSERT_TRUE(update.has_value()) << "no UPDATE event for a 600 ms connection with a 100 ms interval";
  EXPECT_GT(update->stats.tx_bytes, 0u);
  EXPECT_EQ(update->stats.closed, 0u);
}

TEST_F(FlowProgramsTest, FullRingBufferIsCountedAndNeverBlocksTheWorkload) {
  // One page of ring buffer holds ~28 events; nobody reads it meanwhile.
  ASSERT_NO_FATAL_FAILURE(StartFlows({.ring_buffer_bytes = static_cast<uint32_t>(::getpagesize())}));
  auto server = SinkServer::Start(pods_->server_netns(), pods_->server_ip(), kServerPort, 10);
  ASSERT_TRUE(server.ok()) << server.status();
  constexpr int kConnections = 60;
  for (int i = 0; i < kConnections; ++i) {
    Exchange x = ClientExchange(10);
    ASSERT_EQ(x.error, 0) << "connection " << i << ": " << std::strerror(x.error);
  }
  EXPECT_GT(flows_->Skips(KELPIE_FLOW_SKIP_RINGBUF_FULL), 0u);
  // The kernel still counted every connection, both ends.
  EXPECT_GE(flows_->CgroupStats()[cgroup_id_].flows_opened, 2u * kConnections);
}

TEST_F(FlowProgramsTest, ProgramRunStatisticsCountRuns) {
  ASSERT_NO_FATAL_FAILURE(StartFlows());
  auto enabler = dataplane::BpfStatsEnabler::Enable();
  ASSERT_TRUE(enabler.ok()) << enabler.status();
  auto server = SinkServer::Start(pods_->server_netns(), pods_->server_ip(), kServerPort, 10);
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_EQ(ClientExchange(10).error, 0);
  uint64_t runs = 0;
  bool saw_egress = false;
  for (int fd : flows_->ProgramFds()) {
    auto stats = dataplane::ReadProgramRunStats(fd);
    ASSERT_TRUE(stats.ok()) << stats.status();
    if (stats->name == "flow_egress") {
      saw_egress = true;
      runs = stats->run_count;
    }
  }
  EXPECT_TRUE(saw_egress);
  EXPECT_GE(runs, 3u);
}

}  // namespace
}  // namespace kelpie
