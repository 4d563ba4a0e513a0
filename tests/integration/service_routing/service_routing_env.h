// Scoped kernel objects for service routing tests and the benchmark: a
// network namespace with backend addresses behind a veth, TCP/UDP echo
// servers inside it that answer with their own address, a test cgroup v2
// folder the calling process moves into, and a private bpffs. Every
// destructor removes what its constructor made, also when a test fails.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"

namespace kelpie::service_routing_testing {

// Runs `ip args...`; fails with its stderr.
absl::Status Ip(const std::vector<std::string>& args);

// netns `name` with `lo` up and a veth to the host: host side
// <prefix>.1/24, namespace side <prefix>.2 ... <prefix>.(1+addresses)/24.
class BackendNetns {
 public:
  static absl::StatusOr<std::unique_ptr<BackendNetns>> Create(const std::string& name, const std::string& prefix,
                                                              int addresses);
  ~BackendNetns();
  const std::string& name() const { return name_; }
  const std::vector<std::string>& addresses() const { return addresses_; }
  std::string host_veth() const { return veth_; }

 private:
  BackendNetns() = default;
  std::string name_;
  std::string veth_;
  std::vector<std::string> addresses_;
  bool netns_made_ = false;
  bool veth_made_ = false;
};

// Moves the calling thread into netns `name` for its lifetime.
class NetnsThreadScope {
 public:
  explicit NetnsThreadScope(const std::string& name);
  ~NetnsThreadScope();
  bool ok() const { return ok_; }

 private:
  int original_ = -1;
  bool ok_ = false;
};

// One thread per address serving TCP (reply: own address, then close) and
// one per address serving UDP (reply to each datagram with own address),
// inside netns `netns`. With `client_closes_first` the TCP server waits for
// the client's close before closing, so TIME_WAIT stays on the client
// (benchmarks: a server-side TIME_WAIT would reject reused client ports
// behind DNAT, whose timestamps and sequence numbers are keyed on the VIP).
class EchoServers {
 public:
  static absl::StatusOr<std::unique_ptr<EchoServers>> Start(const std::string& netns,
                                                            const std::vector<std::string>& addresses,
                                                            uint16_t tcp_port, uint16_t udp_port,
                                                            bool client_closes_first = false);
  ~EchoServers();

 private:
  EchoServers() = default;
  std::atomic<bool> stop_{false};
  std::vector<int> fds_;
  std::vector<std::thread> threads_;
};

// Answers every TCP connection and UDP datagram on address:port (inside
// netns) with "<own address> <peer address>\n", so a client learns which
// backend served it and which source address the backend saw.
class PeerEchoServer {
 public:
  PeerEchoServer(const std::string& netns, const std::string& address, uint16_t port);
  ~PeerEchoServer();
  bool ok() const { return thread_.joinable(); }

 private:
  void Serve(const std::string& address);
  int tcp_ = -1;
  int udp_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// A cgroup v2 folder under the v2 root; the process moves in on Enter() and
// back to its original cgroup on destruction, then the folder goes.
class TestCgroup {
 public:
  static absl::StatusOr<std::unique_ptr<TestCgroup>> Create(const std::string& name);
  ~TestCgroup();
  const std::string& path() const { return path_; }
  absl::Status Enter();

 private:
  TestCgroup() = default;
  std::string path_;
  std::string original_;
  bool entered_ = false;
};

// A private bpffs instance mounted on a fresh folder (pins made in it are
// invisible elsewhere); unmounted and removed on destruction.
class PrivateBpffs {
 public:
  static absl::StatusOr<std::unique_ptr<PrivateBpffs>> Mount();
  ~PrivateBpffs();
  const std::string& path() const { return path_; }

 private:
  PrivateBpffs() = default;
  std::string path_;
};

// TCP: connects to ip:port, sends a line, reads the reply until EOF.
// Returns the reply or the errno of the failing step.
struct ConnectResult {
  int error = 0;
  std::string reply;
  std::string peer;  // getpeername after connect, "ip:port"
};
ConnectResult TcpRequest(const std::string& ip, uint16_t port, int timeout_ms = 2000);

// UDP: sendto ip:port from an unconnected socket, recvfrom the reply;
// `source` is the reply's source address as the application sees it.
struct DatagramResult {
  int error = 0;
  std::string reply;
  std::string source;
};
DatagramResult UdpRequest(const std::string& ip, uint16_t port, int timeout_ms = 2000);

}  // namespace kelpie::service_routing_testing
