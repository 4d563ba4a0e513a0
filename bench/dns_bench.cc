// Cluster DNS throughput on loopback, one client sending UDP queries back to
// back: Kelpie answering a cluster name (zone of N services), Kelpie
// forwarding to an upstream, and the physical limit: a responder that only
// echoes the query back with QR set (no parsing, no lookup).
//
// usage: dns_bench [--seconds S] [--services N] [--smoke]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>

#include "common/log.h"
#include "control/dns/dns_server.h"

namespace {

using kelpie::dns::ClusterDnsView;
using kelpie::dns::DnsServer;
using kelpie::dns::DnsServerOptions;

sockaddr_in Loopback(uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

// Echoes each datagram back with the QR bit set.
class EchoResponder {
 public:
  EchoResponder() {
    fd_ = socket(AF_INET, SOCK_DGRAM, 0);
    auto a = Loopback(0);
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    socklen_t len = sizeof(a);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] {
      uint8_t buf[2048];
      while (!stop_) {
        pollfd p{fd_, POLLIN, 0};
        if (poll(&p, 1, 50) != 1) continue;
        sockaddr_in from{};
        socklen_t fl = sizeof(from);
        ssize_t n = recvfrom(fd_, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &fl);
        if (n < 12) continue;
        buf[2] |= 0x80;
        sendto(fd_, buf, n, 0, reinterpret_cast<sockaddr*>(&from), fl);
      }
    });
  }
  ~EchoResponder() {
    stop_ = true;
    thread_.join();
    close(fd_);
  }
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Queries per second for `seconds`, one outstanding query at a time.
double Rate(uint16_t port, const std::string& name, double seconds, int* failures) {
  kelpie::dns::Message m;
  m.header.rd = true;
  m.questions.push_back({name, kelpie::dns::rr::kA, kelpie::dns::kClassIn});
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  auto a = Loopback(port);
  connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  uint8_t buf[2048];
  long done = 0;
  auto start = std::chrono::steady_clock::now();
  auto end = start + std::chrono::duration<double>(seconds);
  for (uint16_t id = 1; std::chrono::steady_clock::now() < end; ++id) {
    m.header.id = id;
    auto q = *kelpie::dns::EncodeMessage(m);
    if (send(fd, q.data(), q.size(), 0) < 0) {
      ++*failures;
      continue;
    }
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 2000) != 1 || recv(fd, buf, sizeof(buf), 0) < 12) {
      ++*failures;
      continue;
    }
    ++done;
  }
  close(fd);
  return done / std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 3;
  int services = 1000;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--smoke") {
      seconds = 0.3;
      services = 10;
    } else if (arg == "--seconds" && i + 1 < argc) {
      seconds = std::stod(argv[++i]);
    } else if (arg == "--services" && i + 1 < argc) {
      services = std::stoi(argv[++i]);
    } else {
      std::cerr << "usage: dns_bench [--seconds S] [--services N] [--smoke]\n";
      return 2;
    }
  }
  spdlog::set_level(spdlog::level::warn);
  ClusterDnsView view{ClusterDnsView::Options{}};
  for (int i = 0; i < services; ++i) {
    kelpie::service_proxy::Service s;
    s.namespace_name = "bench";
    s.name = "svc-" + std::to_string(i);
    s.cluster_ips = {"10.43." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1)};
    view.OnServiceUpdate(s);
  }
  EchoResponder echo;
  DnsServerOptions o;
  o.address = "127.0.0.1";
  o.port = 0;
  o.upstreams = {{"127.0.0.1", echo.port()}};
  DnsServer server(o, view);
  if (!server.Start().ok()) {
    std::cerr << "cannot start the DNS server\n";
    return 1;
  }
  int failures = 0;
  const std::string cluster_name = "svc-" + std::to_string(services / 2) + ".bench.svc.cluster.local";
  double limit = Rate(echo.port(), cluster_name, seconds, &failures);
  double cluster = Rate(server.port(), cluster_name, seconds, &failures);
  double forwarded = Rate(server.port(), "example.test", seconds, &failures);
  server.Stop();
  std::printf("cluster DNS, one UDP client on loopback, %d services, %.1f s per row\n", services, seconds);
  std::printf("%-34s %12s %10s\n", "path", "queries/s", "vs echo");
  std::printf("%-34s %12.0f %9.2fx\n", "echo responder (physical limit)", limit, 1.0);
  std::printf("%-34s %12.0f %9.2fx\n", "kelpie, cluster name", cluster, cluster / limit);
  std::printf("%-34s %12.0f %9.2fx\n", "kelpie, forwarded to echo upstream", forwarded, forwarded / limit);
  std::printf("failed or timed-out queries: %d\n", failures);
  return failures == 0 ? 0 : 1;
}
