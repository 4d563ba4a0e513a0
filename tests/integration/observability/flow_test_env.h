// Scoped kernel objects for the network observability tests and benchmark:
// two network namespaces ("pods") joined by a veth pair, a bounded TCP
// server inside one of them, and clients that make their sockets inside the
// other. Sockets keep the namespace they were made in, so only the thread
// that creates them enters it. Every destructor removes what its
// constructor made, also when a test fails.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"

namespace kelpie::observability_testing {

// netns `<base>-c` (client, eth0 <prefix>.1/24) and `<base>-s` (server,
// eth0 <prefix>.2/24) joined by a veth pair, `lo` up in both.
class PodPair {
 public:
  static absl::StatusOr<std::unique_ptr<PodPair>> Create(const std::string& base, const std::string& prefix);
  ~PodPair();
  const std::string& client_netns() const { return client_; }
  const std::string& server_netns() const { return server_; }
  const std::string& client_ip() const { return client_ip_; }
  const std::string& server_ip() const { return server_ip_; }
  // Runs `nft -f -` with `script` inside the client namespace (its rules go
  // with the namespace).
  absl::Status ClientNft(const std::string& script) const;

 private:
  PodPair() = default;
  std::string client_, server_, client_ip_, server_ip_;
  bool client_made_ = false, server_made_ = false;
};

// Runs `fn` on a fresh thread inside netns `name` and waits for it.
absl::Status RunInNetns(const std::string& name, const std::function<void()>& fn);

// Listens on ip:port inside `netns`. Per connection: reads until the
// client's shutdown (counting bytes), replies `reply_bytes` bytes, closes.
class SinkServer {
 public:
  static absl::StatusOr<std::unique_ptr<SinkServer>> Start(const std::string& netns, const std::string& ip,
                                                           uint16_t port, size_t reply_bytes);
  ~SinkServer();
  uint64_t bytes_received() const { return received_.load(); }
  uint64_t connections() const { return connections_.load(); }

 private:
  SinkServer() = default;
  int fd_ = -1;
  size_t reply_bytes_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> received_{0};
  std::atomic<uint64_t> connections_{0};
  std::thread thread_;
};

// One TCP exchange made from the calling thread (which must be inside the
// client namespace): connect, send `send_bytes`, shutdown(SHUT_WR), read to
// EOF, close. Returns 0 or the errno of the failing step. `local_port`
// receives the client's ephemeral port.
struct Exchange {
  int error = 0;
  uint16_t local_port = 0;
  uint64_t received = 0;
};
Exchange TcpExchange(const std::string& ip, uint16_t port, size_t send_bytes, int timeout_ms = 2000);

// A non-blocking connect that waits `wait_ms` for an answer and closes:
// used where the SYN is dropped, so connect() would otherwise block.
Exchange TcpConnectAttempt(const std::string& ip, uint16_t port, int wait_ms);

// Sends one UDP datagram of `bytes` to ip:port; returns the source port.
absl::StatusOr<uint16_t> UdpSend(const std::string& ip, uint16_t port, size_t bytes);

}  // namespace kelpie::observability_testing
