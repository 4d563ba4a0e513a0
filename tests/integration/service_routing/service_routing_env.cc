#include "tests/integration/service_routing/service_routing_env.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/subprocess.h"
#include "dataplane/kernel_filesystems.h"

namespace kelpie::service_routing_testing {
namespace {

std::string Format(const sockaddr_in& a) {
  char buf[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &a.sin_addr, buf, sizeof(buf));
  return absl::StrCat(buf, ":", ntohs(a.sin_port));
}

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

}  // namespace

absl::Status Ip(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = RunSubprocess(argv);
  if (!r.ok()) return r.status();
  if (!r->Succeeded()) {
    std::string cmd;
    for (const auto& a : argv) absl::StrAppend(&cmd, a, " ");
    return absl::InternalError(absl::StrCat(cmd, ": ", r->stderr_text));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<BackendNetns>> BackendNetns::Create(const std::string& name,
                                                                   const std::string& prefix, int addresses) {
  std::unique_ptr<BackendNetns> n(new BackendNetns());
  n->name_ = name;
  n->veth_ = name.substr(0, 13) + "h";
  if (absl::Status s = Ip({"netns", "add", name}); !s.ok()) return s;
  n->netns_made_ = true;
  if (absl::Status s = Ip({"link", "add", n->veth_, "type", "veth", "peer", "name", "eth0", "netns", name}); !s.ok()) {
    return s;
  }
  n->veth_made_ = true;
  for (auto& args : std::vector<std::vector<std::string>>{
           {"addr", "add", prefix + ".1/24", "dev", n->veth_},
           {"link", "set", n->veth_, "up"},
           {"-n", name, "link", "set", "lo", "up"},
           {"-n", name, "link", "set", "eth0", "up"}}) {
    if (absl::Status s = Ip(args); !s.ok()) return s;
  }
  for (int i = 0; i < addresses; ++i) {
    std::string ip = absl::StrCat(prefix, ".", i + 2);
    if (absl::Status s = Ip({"-n", name, "addr", "add", ip + "/24", "dev", "eth0", "nodad"}); !s.ok()) return s;
    n->addresses_.push_back(ip);
  }
  return n;
}

BackendNetns::~BackendNetns() {
  if (veth_made_) (void)Ip({"link", "del", veth_});
  if (netns_made_) (void)Ip({"netns", "del", name_});
}

NetnsThreadScope::NetnsThreadScope(const std::string& name) {
  original_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  int target = ::open(("/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC);
  ok_ = original_ >= 0 && target >= 0 && ::setns(target, CLONE_NEWNET) == 0;
  if (target >= 0) ::close(target);
}

NetnsThreadScope::~NetnsThreadScope() {
  if (original_ >= 0) {
    ::setns(original_, CLONE_NEWNET);
    ::close(original_);
  }
}

absl::StatusOr<std::unique_ptr<EchoServers>> EchoServers::Start(const std::string& netns,
                                                                const std::vector<std::string>& addresses,
                                                                uint16_t tcp_port, uint16_t udp_port,
                                                                bool client_closes_first) {
  std::unique_ptr<EchoServers> e(new EchoServers());
  // Sockets are made inside the netns by a short-lived thread; a socket
  // keeps its namespace, so the serving threads need not enter it.
  std::string error;
  std::thread maker([&] {
    NetnsThreadScope scope(netns);
    if (!scope.ok()) {
      error = "cannot enter netns " + netns;
      return;
    }
    for (const auto& ip : addresses) {
      for (int type : {SOCK_STREAM, SOCK_DGRAM}) {
        int fd = ::socket(AF_INET, type | SOCK_CLOEXEC, 0);
        int one = 1;
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        sockaddr_in a = Addr(ip, type == SOCK_STREAM ? tcp_port : udp_port);
        if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
            (type == SOCK_STREAM && ::listen(fd, 4096) != 0)) {
          error = absl::StrCat("binding ", ip, ": ", std::strerror(errno));
          if (fd >= 0) ::close(fd);
          return;
        }
        e->fds_.push_back(fd);
      }
    }
  });
  maker.join();
  if (!error.empty()) return absl::InternalError(error);
  for (size_t i = 0; i < e->fds_.size(); ++i) {
    int fd = e->fds_[i];
    std::string ip = addresses[i / 2];
    bool tcp = i % 2 == 0;
    e->threads_.emplace_back([fd, ip, tcp, client_closes_first, stop = &e->stop_] {
      char buf[512];
      while (!stop->load()) {
        pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
        if (::poll(&p, 1, 100) <= 0) continue;
        if (tcp) {
          int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
          if (c < 0) continue;
          SetTimeouts(c, 1000);
          (void)::recv(c, buf, sizeof(buf), 0);
          (void)::send(c, ip.data(), ip.size(), MSG_NOSIGNAL);
          // Bounded by the 1 s receive timeout.
          if (client_closes_first) (void)::recv(c, buf, sizeof(buf), 0);
          ::close(c);
        } else {
          sockaddr_in from{};
          socklen_t len = sizeof(from);
          ssize_t n = ::recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from), &len);
          if (n >= 0) ::sendto(fd, ip.data(), ip.size(), 0, reinterpret_cast<sockaddr*>(&from), len);
        }
      }
    });
  }
  return e;
}

EchoServers::~EchoServers() {
  stop_ = true;
  for (auto& t : threads_) t.join();
  for (int fd : fds_) ::close(fd);
}

absl::StatusOr<std::unique_ptr<TestCgroup>> TestCgroup::Create(const std::string& name) {
  dataplane::CgroupV2Root root = dataplane::DetectCgroupV2Root();
  if (root.layout == dataplane::CgroupLayout::kNone) return absl::FailedPreconditionError("no cgroup v2 hierarchy");
  std::unique_ptr<TestCgroup> c(new TestCgroup());
  c->path_ = root.path + "/" + name;
  if (::mkdir(c->path_.c_str(), 0755) != 0) {
    return absl::InternalError(absl::StrCat("mkdir ", c->path_, ": ", std::strerror(errno)));
  }
  // "0::/some/path" is this process's cgroup v2.
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("0::", 0) == 0) c->original_ = root.path + line.substr(3);
  }
  return c;
}

absl::Status TestCgroup::Enter() {
  std::string pid = std::to_string(::getpid());
  // cgroupfs files are written in place (no temp file and rename).
  std::ofstream out(path_ + "/cgroup.procs");
  out << pid;
  out.close();
  if (!out) return absl::InternalError("cannot move into " + path_);
  entered_ = true;
  return absl::OkStatus();
}

TestCgroup::~TestCgroup() {
  if (entered_ && !original_.empty()) {
    std::ofstream out(original_ + "/cgroup.procs");
    out << ::getpid();
  }
  // rmdir needs the folder empty of processes; retry briefly while the
  // kernel finishes the move.
  for (int i = 0; i < 50 && ::rmdir(path_.c_str()) != 0 && errno == EBUSY; ++i) ::usleep(20000);
}

absl::StatusOr<std::unique_ptr<PrivateBpffs>> PrivateBpffs::Mount() {
  const char* tmp = std::getenv("TMPDIR");
  std::string templ = absl::StrCat(tmp ? tmp : "/tmp", "/kelpie-bpffs-XXXXXX");
  if (::mkdtemp(templ.data()) == nullptr) return absl::InternalError("mkdtemp failed");
  std::unique_ptr<PrivateBpffs> b(new PrivateBpffs());
  b->path_ = templ;
  if (::mount("bpf", templ.c_str(), "bpf", 0, nullptr) != 0) {
    int err = errno;
    return absl::InternalError(absl::StrCat("mounting bpffs on ", templ, ": ", std::strerror(err)));
  }
  return b;
}

PrivateBpffs::~PrivateBpffs() {
  if (path_.empty()) return;
  ::umount2(path_.c_str(), MNT_DETACH);
  ::rmdir(path_.c_str());
}

ConnectResult TcpRequest(const std::string& ip, uint16_t port, int timeout_ms) {
  ConnectResult r;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return {errno, "", ""};
  SetTimeouts(fd, timeout_ms);
  sockaddr_in a = Addr(ip, port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    r.error = errno;
    ::close(fd);
    return r;
  }
  sockaddr_in peer{};
  socklen_t len = sizeof(peer);
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) == 0) r.peer = Format(peer);
  (void)::send(fd, "hi\n", 3, MSG_NOSIGNAL);
  char buf[256];
  for (int i = 0; i < 16; ++i) {  // bounded: the server closes after one reply
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0) {
      r.error = errno;
      break;
    }
    if (n == 0) break;
    r.reply.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return r;
}

DatagramResult UdpRequest(const std::string& ip, uint16_t port, int timeout_ms) {
  DatagramResult r;
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return {errno, "", ""};
  SetTimeouts(fd, timeout_ms);
  sockaddr_in a = Addr(ip, port);
  if (::sendto(fd, "hi", 2, 0, reinterpret_cast<sockaddr*>(&a), sizeof(a)) < 0) {
    r.error = errno;
    ::close(fd);
    return r;
  }
  char buf[256];
  sockaddr_in from{};
  socklen_t len = sizeof(from);
  ssize_t n = ::recvfrom(fd, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &len);
  if (n < 0) {
    r.error = errno;
  } else {
    r.reply.assign(buf, static_cast<size_t>(n));
    r.source = Format(from);
  }
  ::close(fd);
  return r;
}


namespace {

int BindPeerEcho(int type, const std::string& address, uint16_t port) {
  int fd = ::socket(AF_INET, type | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a = Addr(address, port);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

std::string PeerText(const sockaddr_in& peer) {
  char buf[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &peer.sin_addr, buf, sizeof(buf));
  return buf;
}

}  // namespace

PeerEchoServer::PeerEchoServer(const std::string& netns, const std::string& address, uint16_t port) {
  std::thread([&] {
    NetnsThreadScope scope(netns);
    if (!scope.ok()) return;
    tcp_ = BindPeerEcho(SOCK_STREAM, address, port);
    udp_ = BindPeerEcho(SOCK_DGRAM, address, port);
    if (tcp_ >= 0) ::listen(tcp_, 64);
  }).join();
  if (tcp_ >= 0 && udp_ >= 0) {
    thread_ = std::thread([this, address] { Serve(address); });
  }
}

PeerEchoServer::~PeerEchoServer() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (tcp_ >= 0) ::close(tcp_);
  if (udp_ >= 0) ::close(udp_);
}

void PeerEchoServer::Serve(const std::string& address) {
  while (!stop_) {
    pollfd fds[2] = {{tcp_, POLLIN, 0}, {udp_, POLLIN, 0}};
    if (::poll(fds, 2, 100) <= 0) continue;
    char buf[256];
    sockaddr_in peer = {};
    socklen_t len = sizeof(peer);
    if (fds[0].revents & POLLIN) {
      int c = ::accept4(tcp_, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC);
      if (c >= 0) {
        timeval tv = {.tv_sec = 1, .tv_usec = 0};
        ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        (void)::recv(c, buf, sizeof(buf), 0);
        std::string reply = absl::StrCat(address, " ", PeerText(peer), "\n");
        (void)::send(c, reply.data(), reply.size(), MSG_NOSIGNAL);
        ::close(c);
      }
    }
    if (fds[1].revents & POLLIN) {
      len = sizeof(peer);
      ssize_t n = ::recvfrom(udp_, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&peer), &len);
      if (n >= 0) {
        std::string reply = absl::StrCat(address, " ", PeerText(peer), "\n");
        (void)::sendto(udp_, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&peer), len);
      }
    }
  }
}

}  // namespace kelpie::service_routing_testing
