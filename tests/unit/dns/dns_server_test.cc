// The DNS server on loopback: cluster answers over UDP and TCP, truncation,
// malformed packets, and forwarding to a fake upstream the test runs on
// 127.0.0.1 (no traffic leaves the machine).
#include "control/dns/dns_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "tests/testing/test_env.h"

namespace kelpie::dns {
namespace {

using Bytes = std::vector<uint8_t>;
using service_proxy::DecodeEndpointSlice;
using service_proxy::DecodeService;

struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

sockaddr_in Loopback(uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

bool WaitReadable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, timeout_ms) == 1;
}

std::optional<Bytes> UdpQuery(uint16_t port, const Bytes& query) {
  Fd s(socket(AF_INET, SOCK_DGRAM, 0));
  auto a = Loopback(port);
  if (sendto(s.fd, query.data(), query.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof(a)) < 0) return std::nullopt;
  if (!WaitReadable(s.fd, 5000)) return std::nullopt;
  Bytes buf(65535);
  ssize_t n = recv(s.fd, buf.data(), buf.size(), 0);
  if (n < 0) return std::nullopt;
  buf.resize(n);
  return buf;
}

bool ReadAll(int fd, uint8_t* p, size_t n) {
  while (n > 0) {
    if (!WaitReadable(fd, 5000)) return false;
    ssize_t r = read(fd, p, n);
    if (r <= 0) return false;
    p += r;
    n -= r;
  }
  return true;
}

std::optional<Bytes> TcpQuery(uint16_t port, const Bytes& query) {
  Fd s(socket(AF_INET, SOCK_STREAM, 0));
  auto a = Loopback(port);
  if (connect(s.fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return std::nullopt;
  Bytes out = {static_cast<uint8_t>(query.size() >> 8), static_cast<uint8_t>(query.size())};
  out.insert(out.end(), query.begin(), query.end());
  if (write(s.fd, out.data(), out.size()) != static_cast<ssize_t>(out.size())) return std::nullopt;
  uint8_t len[2];
  if (!ReadAll(s.fd, len, 2)) return std::nullopt;
  Bytes reply((len[0] << 8) | len[1]);
  if (!ReadAll(s.fd, reply.data(), reply.size())) return std::nullopt;
  return reply;
}

Bytes Query(const std::string& name, uint16_t type, uint16_t id = 0x4242, std::optional<uint16_t> edns = std::nullopt) {
  Message m;
  m.header.id = id;
  m.header.rd = true;
  m.questions.push_back({name, type, kClassIn});
  if (edns) m.additionals.push_back({"", rr::kOpt, *edns, 0, {}});
  return *EncodeMessage(m);
}

Message Parse(const std::optional<Bytes>& reply) {
  EXPECT_TRUE(reply.has_value());
  if (!reply) return {};
  auto m = ParseMessage(*reply);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.value_or(Message{});
}

// A fake upstream resolver on 127.0.0.1 (UDP and TCP on one port):
// "example.test" -> 192.0.2.1; "big.test" -> 100 A records, sent with TC
// over UDP and in full over TCP; anything else NXDOMAIN.
class FakeUpstream {
 public:
  FakeUpstream() {
    for (int attempt = 0; attempt < 20 && port_ == 0; ++attempt) {
      udp_ = socket(AF_INET, SOCK_DGRAM, 0);
      auto a = Loopback(0);
      bind(udp_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
      socklen_t len = sizeof(a);
      getsockname(udp_, reinterpret_cast<sockaddr*>(&a), &len);
      tcp_ = socket(AF_INET, SOCK_STREAM, 0);
      int one = 1;
      setsockopt(tcp_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
      if (bind(tcp_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 && listen(tcp_, 8) == 0) {
        port_ = ntohs(a.sin_port);
      } else {
        close(udp_);
        close(tcp_);
      }
    }
    thread_ = std::thread([this] { Run(); });
  }
  ~FakeUpstream() {
    stop_ = true;
    thread_.join();
    close(udp_);
    close(tcp_);
  }
  uint16_t port() const { return port_; }
  int udp_queries() const { return udp_queries_; }
  int tcp_queries() const { return tcp_queries_; }

 private:
  Bytes Answer(const Bytes& query, bool over_udp) {
    auto q = ParseMessage(query);
    Message r;
    if (!q.ok() || q->questions.empty()) return {};
    r.header.id = q->header.id;
    r.header.qr = true;
    r.header.rd = q->header.rd;
    r.header.ra = true;
    r.questions = q->questions;
    const std::string name = LowerName(q->questions[0].name);
    if (name == "example.test") {
      r.answers.push_back({name, rr::kA, kClassIn, 300, RdataA("192.0.2.1")});
    } else if (name == "big.test") {
      if (over_udp) {
        r.header.tc = true;
      } else {
        for (int i = 0; i < 100; ++i) {
          r.answers.push_back({name, rr::kA, kClassIn, 300, RdataA("198.51.100." + std::to_string(i))});
        }
      }
    } else {
      r.header.rcode = static_cast<uint8_t>(Rcode::kNxDomain);
    }
    return *EncodeMessage(r);
  }

  void Run() {
    while (!stop_) {
      pollfd fds[2] = {{udp_, POLLIN, 0}, {tcp_, POLLIN, 0}};
      if (poll(fds, 2, 50) <= 0) continue;
      if (fds[0].revents & POLLIN) {
        Bytes buf(65535);
        sockaddr_in from{};
        socklen_t len = sizeof(from);
        ssize_t n = recvfrom(udp_, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &len);
        if (n > 0) {
          ++udp_queries_;
          buf.resize(n);
          Bytes reply = Answer(buf, true);
          sendto(udp_, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&from), len);
        }
      }
      if (fds[1].revents & POLLIN) {
        Fd c(accept(tcp_, nullptr, nullptr));
        uint8_t len[2];
        if (c.fd < 0 || !ReadAll(c.fd, len, 2)) continue;
        Bytes query((len[0] << 8) | len[1]);
        if (!ReadAll(c.fd, query.data(), query.size())) continue;
        ++tcp_queries_;
        Bytes reply = Answer(query, false);
        Bytes out = {static_cast<uint8_t>(reply.size() >> 8), static_cast<uint8_t>(reply.size())};
        out.insert(out.end(), reply.begin(), reply.end());
        (void)!write(c.fd, out.data(), out.size());
      }
    }
  }

  int udp_ = -1;
  int tcp_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> udp_queries_{0};
  std::atomic<int> tcp_queries_{0};
  std::thread thread_;
};

class DnsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(upstream_.port(), 0);
    view_.OnServiceUpdate(*DecodeService(R"({"metadata":{"namespace":"shop","name":"web"},
      "spec":{"clusterIP":"10.43.0.20","ports":[{"name":"http","port":80}]}})"));
    view_.OnServiceUpdate(*DecodeService(R"({"metadata":{"namespace":"shop","name":"many"},
      "spec":{"clusterIP":"None","ports":[{"name":"http","port":80}]}})"));
    std::string endpoints;
    for (int i = 1; i <= 100; ++i) {
      if (i > 1) endpoints += ",";
      endpoints += R"({"addresses":["10.42.3.)" + std::to_string(i) + R"("]})";
    }
    view_.OnEndpointSliceUpdate(*DecodeEndpointSlice(R"({"metadata":{"namespace":"shop","name":"many-1",
      "labels":{"kubernetes.io/service-name":"many"}},"endpoints":[)" + endpoints +
                                                     R"(],"ports":[{"name":"http","port":8080}]})"));
    DnsServerOptions o;
    o.address = "127.0.0.1";
    o.port = 0;
    o.upstreams = {{"127.0.0.1", upstream_.port()}};
    o.upstream_timeout = std::chrono::milliseconds(1500);
    server_ = std::make_unique<DnsServer>(o, view_, &registry_);
    ASSERT_TRUE(server_->Start().ok());
  }
  void TearDown() override { server_->Stop(); }

  FakeUpstream upstream_;
  ClusterDnsView view_{ClusterDnsView::Options{}};
  prometheus::Registry registry_;
  std::unique_ptr<DnsServer> server_;
};

TEST_F(DnsServerTest, AnswersClusterNamesOverUdp) {
  Message a = Parse(UdpQuery(server_->port(), Query("web.shop.svc.cluster.local", rr::kA)));
  EXPECT_EQ(a.header.id, 0x4242);
  EXPECT_TRUE(a.header.qr && a.header.aa && a.header.rd);
  EXPECT_EQ(a.header.rcode, 0);
  ASSERT_EQ(a.answers.size(), 1u);
  EXPECT_EQ(AddressFromRdata(a.answers[0]), "10.43.0.20");
  EXPECT_EQ(a.answers[0].ttl, 5u);

  Message srv = Parse(UdpQuery(server_->port(), Query("_http._tcp.web.shop.svc.cluster.local", rr::kSrv)));
  ASSERT_EQ(srv.answers.size(), 1u);
  EXPECT_EQ(SrvFromRdata(srv.answers[0])->port, 80);

  Message ptr = Parse(UdpQuery(server_->port(), Query("20.0.43.10.in-addr.arpa", rr::kPtr)));
  ASSERT_EQ(ptr.answers.size(), 1u);
  EXPECT_EQ(NameFromRdata(ptr.answers[0]), "web.shop.svc.cluster.local");

  Message nx = Parse(UdpQuery(server_->port(), Query("nope.shop.svc.cluster.local", rr::kA)));
  EXPECT_EQ(nx.header.rcode, static_cast<uint8_t>(Rcode::kNxDomain));
  ASSERT_EQ(nx.authorities.size(), 1u);
  EXPECT_EQ(nx.authorities[0].type, rr::kSoa);

  Message nodata = Parse(UdpQuery(server_->port(), Query("web.shop.svc.cluster.local", rr::kAaaa)));
  EXPECT_EQ(nodata.header.rcode, 0);
  EXPECT_TRUE(nodata.answers.empty());
  ASSERT_EQ(nodata.authorities.size(), 1u);
  EXPECT_EQ(upstream_.udp_queries(), 0);  // none of these went upstream
}

TEST_F(DnsServerTest, TruncatesLargeUdpAnswersAndServesThemOverTcp) {
  Message udp = Parse(UdpQuery(server_->port(), Query("many.shop.svc.cluster.local", rr::kA)));
  EXPECT_TRUE(udp.header.tc);
  EXPECT_TRUE(udp.answers.empty());

  // With EDNS0 the client gets up to 1232 bytes: still too small for 100
  // records with their SRV targets, and the OPT is echoed.
  auto edns_reply = UdpQuery(server_->port(), Query("_http._tcp.many.shop.svc.cluster.local", rr::kSrv, 7, 4096));
  Message edns = Parse(edns_reply);
  EXPECT_TRUE(edns.header.tc);
  ASSERT_NE(edns.Opt(), nullptr);
  EXPECT_EQ(edns.Opt()->klass, kAdvertisedUdpSize);

  Message tcp = Parse(TcpQuery(server_->port(), Query("many.shop.svc.cluster.local", rr::kA)));
  EXPECT_FALSE(tcp.header.tc);
  EXPECT_EQ(tcp.answers.size(), 100u);
}

TEST_F(DnsServerTest, ForwardsOtherNamesToTheUpstream) {
  Message a = Parse(UdpQuery(server_->port(), Query("Example.test", rr::kA, 0x1111)));
  EXPECT_EQ(a.header.id, 0x1111);  // the client's id, not the forwarder's
  ASSERT_EQ(a.answers.size(), 1u);
  EXPECT_EQ(AddressFromRdata(a.answers[0]), "192.0.2.1");
  EXPECT_EQ(upstream_.udp_queries(), 1);

  Message nx = Parse(UdpQuery(server_->port(), Query("missing.test", rr::kA)));
  EXPECT_EQ(nx.header.rcode, static_cast<uint8_t>(Rcode::kNxDomain));

  // Unknown PTRs are not ours either.
  Message ptr = Parse(UdpQuery(server_->port(), Query("1.2.0.192.in-addr.arpa", rr::kPtr)));
  EXPECT_EQ(ptr.header.rcode, static_cast<uint8_t>(Rcode::kNxDomain));
  EXPECT_EQ(upstream_.udp_queries(), 3);

  // Truncated over UDP upstream: the forwarder retries over TCP, then has
  // to truncate for this 512-byte client, which retries over TCP itself.
  Message big_udp = Parse(UdpQuery(server_->port(), Query("big.test", rr::kA)));
  EXPECT_TRUE(big_udp.header.tc);
  EXPECT_GE(upstream_.tcp_queries(), 1);
  Message big_tcp = Parse(TcpQuery(server_->port(), Query("big.test", rr::kA)));
  EXPECT_FALSE(big_tcp.header.tc);
  EXPECT_EQ(big_tcp.answers.size(), 100u);

  prometheus::TextSerializer serializer;
  std::string metrics = serializer.Serialize(registry_.Collect());
  EXPECT_NE(metrics.find("kelpie_dns_queries_total{protocol=\"udp\",result=\"forwarded\"}"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("kelpie_dns_query_duration_seconds_count{source=\"upstream\"}"), std::string::npos);
}

TEST_F(DnsServerTest, MalformedPacketsGetFormerrOrAreDropped) {
  // A query whose question runs past the end: FORMERR with the same id.
  Bytes bad = {0xAB, 0xCD, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 5, 'a'};
  Message formerr = Parse(UdpQuery(server_->port(), bad));
  EXPECT_EQ(formerr.header.id, 0xABCD);
  EXPECT_EQ(formerr.header.rcode, static_cast<uint8_t>(Rcode::kFormErr));
  // A compression loop in the question: FORMERR too.
  Bytes loop = {0, 7, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1};
  EXPECT_EQ(Parse(UdpQuery(server_->port(), loop)).header.rcode, static_cast<uint8_t>(Rcode::kFormErr));
  // Garbage shorter than a header is dropped; the server still answers after.
  {
    Fd s(socket(AF_INET, SOCK_DGRAM, 0));
    auto a = Loopback(server_->port());
    uint8_t junk[3] = {1, 2, 3};
    sendto(s.fd, junk, sizeof(junk), 0, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    EXPECT_FALSE(WaitReadable(s.fd, 300));
  }
  Message ok = Parse(UdpQuery(server_->port(), Query("web.shop.svc.cluster.local", rr::kA)));
  EXPECT_EQ(ok.answers.size(), 1u);
}

TEST(DnsServerNoUpstreamTest, RefusesToForwardWithServfail) {
  ClusterDnsView view{ClusterDnsView::Options{}};
  DnsServerOptions o;
  o.address = "127.0.0.1";
  o.port = 0;
  DnsServer server(o, view);
  ASSERT_TRUE(server.Start().ok());
  Message m = Parse(UdpQuery(server.port(), Query("example.test", rr::kA)));
  EXPECT_EQ(m.header.rcode, static_cast<uint8_t>(Rcode::kServFail));
  Message nx = Parse(TcpQuery(server.port(), Query("x.cluster.local", rr::kA)));
  EXPECT_EQ(nx.header.rcode, static_cast<uint8_t>(Rcode::kNxDomain));
}

// A bound UDP socket that never answers: an upstream that times out.
struct SilentUpstream {
  Fd fd{socket(AF_INET, SOCK_DGRAM, 0)};
  uint16_t port = 0;
  SilentUpstream() {
    auto a = Loopback(0);
    bind(fd.fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    socklen_t len = sizeof(a);
    getsockname(fd.fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
};

TEST(DnsServerUpstreamFailureTest, TriesTheNextUpstreamAfterATimeout) {
  SilentUpstream silent;
  FakeUpstream fake;
  ClusterDnsView view{ClusterDnsView::Options{}};
  DnsServerOptions o;
  o.address = "127.0.0.1";
  o.port = 0;
  o.upstreams = {{"127.0.0.1", silent.port}, {"127.0.0.1", fake.port()}};
  o.upstream_timeout = std::chrono::milliseconds(300);
  DnsServer server(o, view);
  ASSERT_TRUE(server.Start().ok());
  Message m = Parse(UdpQuery(server.port(), Query("example.test", rr::kA)));
  ASSERT_EQ(m.answers.size(), 1u);
  EXPECT_EQ(AddressFromRdata(m.answers[0]), "192.0.2.1");
  EXPECT_TRUE(WaitReadable(silent.fd.fd, 0));  // the first upstream was asked

  // Only the silent one: SERVFAIL after the timeout.
  o.upstreams = {{"127.0.0.1", silent.port}};
  DnsServer lonely(o, view);
  ASSERT_TRUE(lonely.Start().ok());
  Message fail = Parse(UdpQuery(lonely.port(), Query("example.test", rr::kA)));
  EXPECT_EQ(fail.header.rcode, static_cast<uint8_t>(Rcode::kServFail));
}

TEST(DnsServerUpstreamFailureTest, StopsCleanlyWithForwardsInFlight) {
  SilentUpstream silent;
  ClusterDnsView view{ClusterDnsView::Options{}};
  DnsServerOptions o;
  o.address = "127.0.0.1";
  o.port = 0;
  o.upstreams = {{"127.0.0.1", silent.port}};
  o.upstream_timeout = std::chrono::milliseconds(10000);
  auto server = std::make_unique<DnsServer>(o, view);
  ASSERT_TRUE(server->Start().ok());
  Fd client(socket(AF_INET, SOCK_DGRAM, 0));
  auto a = Loopback(server->port());
  Bytes q = Query("example.test", rr::kA);
  for (int i = 0; i < 10; ++i) sendto(client.fd, q.data(), q.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  // TCP client with a forward in flight too.
  Fd tcp(socket(AF_INET, SOCK_STREAM, 0));
  ASSERT_EQ(connect(tcp.fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  Bytes framed = {0, static_cast<uint8_t>(q.size())};
  framed.insert(framed.end(), q.begin(), q.end());
  ASSERT_EQ(write(tcp.fd, framed.data(), framed.size()), static_cast<ssize_t>(framed.size()));
  for (int i = 0; i < 50 && !WaitReadable(silent.fd.fd, 0); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  auto start = std::chrono::steady_clock::now();
  server->Stop();
  server.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));  // did not wait for the timeout
}

TEST(ResolvConfTest, ParsesNameserversAndSkipsLoopback) {
  auto servers = ParseResolvConf("# comment\nsearch example.org\nnameserver 192.0.2.53\nnameserver\tfd00::53\n"
                                 "nameserver 127.0.0.53\nnameserver bogus\noptions edns0\n");
  ASSERT_EQ(servers.size(), 3u);
  EXPECT_EQ(servers[0].address, "192.0.2.53");
  EXPECT_EQ(servers[1].address, "fd00::53");
  kelpie::testing::TempDir dir;
  std::string path = dir.path() + "/resolv.conf";
  std::ofstream(path) << "nameserver 127.0.0.53\nnameserver ::1\nnameserver 192.0.2.53\n";
  auto upstreams = UpstreamsFromResolvConf(path);
  ASSERT_TRUE(upstreams.ok());
  ASSERT_EQ(upstreams->size(), 1u);
  EXPECT_EQ((*upstreams)[0].address, "192.0.2.53");
  EXPECT_FALSE(UpstreamsFromResolvConf(dir.path() + "/missing").ok());
}

// A real resolver client, when one that can pick a port is installed.
std::string RunCommand(const std::string& cmd) {
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return "";
  char buf[256] = {};
  std::string out;
  while (fgets(buf, sizeof(buf), p) != nullptr) out += buf;
  pclose(p);
  return out;
}

TEST_F(DnsServerTest, DigResolvesClusterNames) {
  if (std::system("command -v dig >/dev/null 2>&1") != 0) GTEST_SKIP() << "dig is not installed";
  const std::string dig = "dig +time=3 +tries=1 -p " + std::to_string(server_->port()) + " @127.0.0.1 ";
  EXPECT_EQ(RunCommand(dig + "+short web.shop.svc.cluster.local A"), "10.43.0.20\n");
  EXPECT_EQ(RunCommand(dig + "+short +tcp web.shop.svc.cluster.local A"), "10.43.0.20\n");
  EXPECT_EQ(RunCommand(dig + "+short _http._tcp.web.shop.svc.cluster.local SRV"), "0 100 80 web.shop.svc.cluster.local.\n");
  EXPECT_EQ(RunCommand(dig + "+short -x 10.43.0.20"), "web.shop.svc.cluster.local.\n");
  EXPECT_NE(RunCommand(dig + "nope.shop.svc.cluster.local A").find("status: NXDOMAIN"), std::string::npos);
  EXPECT_EQ(RunCommand(dig + "+short example.test A"), "192.0.2.1\n");  // via the fake upstream
  // dig retries the truncated UDP answer over TCP by itself.
  std::string many = RunCommand(dig + "+short many.shop.svc.cluster.local A");
  EXPECT_EQ(std::count(many.begin(), many.end(), '\n'), 100) << many;
}

}  // namespace
}  // namespace kelpie::dns
