#include "tests/integration/observability/flow_test_env.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/subprocess.h"
#include "tests/integration/service_routing/service_routing_env.h"

namespace kelpie::observability_testing {
namespace {

using service_routing_testing::Ip;
using service_routing_testing::NetnsThreadScope;

sockaddr_in Addr(const std::string& ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  return a;
}

void SetTimeouts(int fd, int timeout_ms) {
  timeval tv{.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

uint16_t LocalPort(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof(a);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return 0;
  return ntohs(a.sin_port);
}

}  // namespace

absl::StatusOr<std::unique_ptr<PodPair>> PodPair::Create(const std::string& base, const std::string& prefix) {
  std::unique_ptr<PodPair> p(new PodPair());
  p->client_ = base + "-c";
  p->server_ = base + "-s";
  p->client_ip_ = prefix + ".1";
  p->server_ip_ = prefix + ".2";
  if (absl::Status s = Ip({"netns", "add", p->client_}); !s.ok()) return s;
  p->client_made_ = true;
  if (absl::Status s = Ip({"netns", "add", p->server_}); !s.ok()) return s;
  p->server_made_ = true;
  // The veth is made inside the client namespace, so it goes with it.
  for (auto& args : std::vector<std::vector<std::string>>{
           {"-n", p->client_, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", p->server_},
           {"-n", p->client_, "addr", "add", p->client_ip_ + "/24", "dev", "eth0", "nodad"},
           {"-n", p->server_, "addr", "add", p->server_ip_ + "/24", "dev", "eth0", "nodad"},
           {"-n", p->client_, "link", "set", "lo", "up"},
           {"-n", p->server_, "link", "set", "lo", "up"},
           {"-n", p->client_, "link", "set", "eth0", "up"},
           {"-n", p->server_, "link", "set", "eth0", "up"}}) {
    if (absl::Status s = Ip(args); !s.ok()) return s;
  }
  return p;
}

PodPair::~PodPair() {
  // Deleting a namespace deletes its veth end, and with it the peer.
  if (client_made_) (void)Ip({"netns", "del", client_});
  if (server_made_) (void)Ip({"netns", "del", server_});
}

absl::Status PodPair::ClientNft(const std::string& script) const {
  SubprocessOptions options;
  options.stdin_text = script;
  auto r = RunSubprocess({"ip", "netns", "exec", client_, "nft", "-f", "-"}, options);
  if (!r.ok()) return r.status();
  if (!r->Succeeded()) return absl::InternalError(absl::StrCat("nft: ", r->stderr_text));
  return absl::OkStatus();
}

absl::Status RunInNetns(const std::string& name, const std::function<void()>& fn) {
  bool entered = false;
  std::thread t([&] {
    NetnsThreadScope scope(name);
    entered = scope.ok();
    if (entered) fn();
  });
  t.join();
  if (!entered) return absl::InternalError("cannot enter netns " + name);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<SinkServer>> SinkServer::Start(const std::string& netns, const std::string& ip,
                                                               uint16_t port, size_t reply_bytes) {
  std::unique_ptr<SinkServer> s(new SinkServer());
  s->reply_bytes_ = reply_bytes;
  std::string error;
  absl::Status entered = RunInNetns(netns, [&] {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in a = Addr(ip, port);
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || ::listen(fd, 4096) != 0) {
      error = absl::StrCat("listening on ", ip, ":", port, ": ", std::strerror(errno));
      if (fd >= 0) ::close(fd);
      return;
    }
    s->fd_ = fd;
  });
  if (!entered.ok()) return entered;
  if (!error.empty()) return absl::InternalError(error);
  s->thread_ = std::thread([srv = s.get()] {
    std::vector<char> buf(64 * 1024);
    std::string reply(srv->reply_bytes_, 'r');
    while (!srv->stop_.load()) {
      pollfd p{.fd = srv->fd_, .events = POLLIN, .revents = 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int c = ::accept4(srv->fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      srv->connections_ += 1;
      SetTimeouts(c, 2000);
      // Bounded by the receive timeout: the client shuts its side down.
      while (true) {
        ssize_t n = ::recv(c, buf.data(), buf.size(), 0);
        if (n <= 0) break;
        srv->received_ += static_cast<uint64_t>(n);
      }
      size_t sent = 0;
      while (sent < reply.size()) {
        ssize_t n = ::send(c, reply.data() + sent, reply.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) break;
        sent += static_cast<size_t>(n);
      }
      ::close(c);
    }
  });
  return s;
}

SinkServer::~SinkServer() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (fd_ >= 0) ::close(fd_);
}

Exchange TcpExchange(const std::string& ip, uint16_t port, size_t send_bytes, int timeout_ms) {
  Exchange r;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return {errno, 0, 0};
  SetTimeouts(fd, timeout_ms);
  sockaddr_in a = Addr(ip, port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    r.error = errno;
    r.local_port = LocalPort(fd);
    ::close(fd);
    return r;
  }
  r.local_port = LocalPort(fd);
  std::string payload(send_bytes, 'q');
  size_t sent = 0;
  while (sent < payload.size()) {
    ssize_t n = ::send(fd, payload.data() + sent, payload.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      r.error = errno;
      ::close(fd);
      return r;
    }
    sent += static_cast<size_t>(n);
  }
  ::shutdown(fd, SHUT_WR);
  char buf[16 * 1024];
  while (true) {  // bounded: the server closes after its reply
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0) r.error = errno;
    if (n <= 0) break;
    r.received += static_cast<uint64_t>(n);
  }
  ::close(fd);
  return r;
}

Exchange TcpConnectAttempt(const std::string& ip, uint16_t port, int wait_ms) {
  Exchange r;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return {errno, 0, 0};
  sockaddr_in a = Addr(ip, port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 && errno != EINPROGRESS) r.error = errno;
  r.local_port = LocalPort(fd);
  if (r.error == 0) {
    pollfd p{.fd = fd, .events = POLLOUT, .revents = 0};
    int n = ::poll(&p, 1, wait_ms);
    if (n == 0) {
      r.error = ETIMEDOUT;
    } else {
      int err = 0;
      socklen_t len = sizeof(err);
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      r.error = err;
    }
  }
  ::close(fd);
  return r;
}

absl::StatusOr<uint16_t> UdpSend(const std::string& ip, uint16_t port, size_t bytes) {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::ErrnoToStatus(errno, "socket");
  sockaddr_in a = Addr(ip, port);
  std::string payload(bytes, 'u');
  if (::sendto(fd, payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof(a)) < 0) {
    int err = errno;
    ::close(fd);
    return absl::ErrnoToStatus(err, "sendto");
  }
  uint16_t local = LocalPort(fd);
  ::close(fd);
  return local;
}

}  // namespace kelpie::observability_testing
