// Port-forward into a pod's network namespace: SPDY/3.1 streams (direct or
// tunneled in WebSocket messages) and the WebSocket channel protocol.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "orchestrator/kubelet/server/spdy.h"
#include "orchestrator/kubelet/server/stream_sessions.h"
#include "orchestrator/kubelet/server/websocket.h"

namespace kelpie::kubelet {

absl::StatusOr<int> ConnectInNetns(const std::string& netns_path, int port) {
  int sock = -1;
  std::string error;
  // The socket is made on a short-lived thread that enters the pod's
  // namespace; it keeps that namespace after the thread is gone, and no
  // other thread of the process changes namespace.
  std::thread t([&] {
    int ns = ::open(netns_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (ns < 0) {
      error = absl::StrCat("cannot open the pod's network namespace: ", strerror(errno));
      return;
    }
    if (::setns(ns, CLONE_NEWNET) != 0) {
      error = absl::StrCat("cannot enter the pod's network namespace: ", strerror(errno));
      ::close(ns);
      return;
    }
    ::close(ns);
    sock = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sock < 0) error = absl::StrCat("socket: ", strerror(errno));
  });
  t.join();
  if (sock < 0) return absl::UnavailableError(error);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(sock, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int e = errno;
    ::close(sock);
    return absl::UnavailableError(absl::StrCat("failed to connect to localhost:", port,
                                               " inside the pod's network namespace: ", strerror(e)));
  }
  return sock;
}

namespace {

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Where SPDY bytes travel: the raw connection, or WebSocket binary messages.
class SpdyTransport {
 public:
  SpdyTransport(http::UpgradedConnection& conn, bool tunneled) : conn_(conn) {
    if (tunneled) ws_ = std::make_unique<WebSocketConnection>(conn);
  }
  std::optional<std::string> Read() {
    if (ws_) return ws_->ReadMessage();
    std::string buf(32 * 1024, '\0');
    size_t n = conn_.Read(buf.data(), buf.size());
    if (n == 0) return std::nullopt;
    buf.resize(n);
    return buf;
  }
  bool Write(std::string_view data) {
    std::lock_guard<std::mutex> lock(mu_);
    return ws_ ? ws_->WriteMessage(data) : conn_.Write(data);
  }
  void Close() {
    if (ws_) {
      ws_->Close();
    } else {
      conn_.Close();
    }
  }

 private:
  http::UpgradedConnection& conn_;
  std::unique_ptr<WebSocketConnection> ws_;
  std::mutex mu_;
};

// One forwarded connection: the data and error streams of one request id.
struct Forward {
  std::string request_id;
  int port = 0;
  uint32_t data_stream = 0;
  uint32_t error_stream = 0;
  int fd = -1;
  std::thread pump;
  bool started = false;
};

class SpdyPortForwardSession {
 public:
  SpdyPortForwardSession(http::UpgradedConnection& conn, bool tunneled, std::string netns)
      : transport_(conn, tunneled), netns_(std::move(netns)) {}

  void Run(const std::atomic<bool>& stopping) {
    SpdyFrameDecoder decoder;
    while (!stopping.load()) {
      auto bytes = transport_.Read();
      if (!bytes) break;
      if (absl::Status st = decoder.Feed(*bytes); !st.ok()) {
        spdlog::debug("port-forward: {}", st.message());
        break;
      }
      bool goaway = false;
      while (auto frame = decoder.Next()) {
        if (!Handle(*frame)) goaway = true;
      }
      if (goaway) break;
    }
    transport_.Close();
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [id, f] : forwards_) {
      if (f->fd >= 0) ::shutdown(f->fd, SHUT_RDWR);
    }
    for (auto& [id, f] : forwards_) {
      if (f->pump.joinable()) f->pump.join();
      if (f->fd >= 0) ::close(f->fd);
    }
  }

 private:
  bool Handle(const SpdyFrame& frame) {
    if (!frame.control) {
      auto it = by_stream_.find(frame.stream_id);
      if (it == by_stream_.end()) return true;
      Forward& f = *it->second;
      if (frame.stream_id == f.data_stream && f.fd >= 0) {
        if (!frame.payload.empty()) SendAll(f.fd, frame.payload);
        if (frame.flags & kSpdyFlagFin) ::shutdown(f.fd, SHUT_WR);
      }
      return true;
    }
    switch (frame.type) {
      case SpdyType::kSynStream: {
        // stream id, associated stream id, priority and slot, then headers.
        if (frame.payload.size() < 10) return false;
        auto headers = inflater_.Decompress(std::string_view(frame.payload).substr(10));
        if (!headers.ok()) {
          spdlog::debug("port-forward: {}", headers.status().message());
          return false;
        }
        transport_.Write(EncodeSpdySynReply(frame.stream_id, deflater_.Compress({}), false));
        std::string type, port, request_id;
        for (const auto& [k, v] : *headers) {
          if (k == "streamtype") type = v;
          if (k == "port") port = v;
          if (k == "requestid") request_id = v;
        }
        std::shared_ptr<Forward> f;
        {
          std::lock_guard<std::mutex> lock(mu_);
          auto& slot = forwards_[request_id];
          if (!slot) slot = std::make_shared<Forward>();
          f = slot;
        }
        f->request_id = request_id;
        if (type == "data") f->data_stream = frame.stream_id;
        if (type == "error") f->error_stream = frame.stream_id;
        int p = 0;
        if (absl::SimpleAtoi(port, &p)) f->port = p;
        by_stream_[frame.stream_id] = f;
        if (f->data_stream != 0 && f->error_stream != 0 && !f->started) Start(f);
        return true;
      }
      case SpdyType::kPing:
        transport_.Write(EncodeSpdyControl(SpdyType::kPing, 0, frame.payload));
        return true;
      case SpdyType::kRstStream: {
        auto it = by_stream_.find(frame.stream_id);
        if (it != by_stream_.end() && it->second->fd >= 0) ::shutdown(it->second->fd, SHUT_RDWR);
        return true;
      }
      case SpdyType::kGoAway:
        return false;
      default:  // SETTINGS, WINDOW_UPDATE, HEADERS: nothing to do
        return true;
    }
  }

  void Start(const std::shared_ptr<Forward>& f) {
    f->started = true;
    if (f->port < 1 || f->port > 65535) {
      Fail(*f, absl::StrCat("invalid port \"", f->port, "\""));
      return;
    }
    auto fd = ConnectInNetns(netns_, f->port);
    if (!fd.ok()) {
      Fail(*f, std::string(fd.status().message()));
      return;
    }
    f->fd = *fd;
    Forward* raw = f.get();
    f->pump = std::thread([this, raw] {
      std::string buf(32 * 1024, '\0');
      while (true) {
        ssize_t n = ::recv(raw->fd, buf.data(), buf.size(), 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        if (!transport_.Write(EncodeSpdyData(raw->data_stream, std::string_view(buf.data(), static_cast<size_t>(n)), false))) break;
      }
      // The pod side closed: end both streams so the client's copy ends.
      transport_.Write(EncodeSpdyData(raw->data_stream, "", true));
      transport_.Write(EncodeSpdyData(raw->error_stream, "", true));
    });
  }

  void Fail(Forward& f, const std::string& message) {
    spdlog::debug("port-forward to port {}: {}", f.port, message);
    transport_.Write(EncodeSpdyData(f.error_stream, message, true));
    transport_.Write(EncodeSpdyData(f.data_stream, "", true));
  }

  SpdyTransport transport_;
  std::string netns_;
  SpdyHeaderDecompressor inflater_;
  SpdyHeaderCompressor deflater_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Forward>> forwards_;
  std::map<uint32_t, std::shared_ptr<Forward>> by_stream_;
};

}  // namespace

void RunSpdyPortForward(http::UpgradedConnection& conn, bool tunneled, const std::string& netns_path,
                        const std::atomic<bool>& stopping) {
  SpdyPortForwardSession session(conn, tunneled, netns_path);
  session.Run(stopping);
}

void RunWebSocketPortForward(http::UpgradedConnection& conn, const std::string& netns_path,
                             const std::vector<int>& ports) {
  WebSocketConnection ws(conn);
  auto port_prefix = [](char channel, int port) {
    std::string m(1, channel);
    m.push_back(static_cast<char>(port & 0xFF));
    m.push_back(static_cast<char>((port >> 8) & 0xFF));
    return m;
  };
  std::vector<int> fds(ports.size(), -1);
  for (size_t i = 0; i < ports.size(); ++i) {
    char data_ch = static_cast<char>(2 * i), err_ch = static_cast<char>(2 * i + 1);
    ws.WriteMessage(port_prefix(data_ch, ports[i]));
    ws.WriteMessage(port_prefix(err_ch, ports[i]));
    auto fd = ConnectInNetns(netns_path, ports[i]);
    if (!fd.ok()) {
      ws.WriteMessage(std::string(1, err_ch) + std::string(fd.status().message()));
    } else {
      fds[i] = *fd;
    }
  }
  std::vector<std::thread> pumps;
  for (size_t i = 0; i < ports.size(); ++i) {
    if (fds[i] < 0) continue;
    pumps.emplace_back([&, i] {
      std::string buf(32 * 1024 + 1, '\0');
      buf[0] = static_cast<char>(2 * i);
      while (true) {
        ssize_t n = ::recv(fds[i], buf.data() + 1, buf.size() - 1, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        if (!ws.WriteMessage(std::string_view(buf.data(), static_cast<size_t>(n) + 1))) break;
      }
    });
  }
  while (auto message = ws.ReadMessage()) {
    if (message->empty()) continue;
    size_t channel = static_cast<uint8_t>((*message)[0]);
    if (channel % 2 != 0 || channel / 2 >= ports.size() || fds[channel / 2] < 0) continue;
    std::string_view data = std::string_view(*message).substr(1);
    if (!data.empty()) SendAll(fds[channel / 2], data);
  }
  for (int fd : fds) {
    if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
  }
  for (auto& t : pumps) t.join();
  for (int fd : fds) {
    if (fd >= 0) ::close(fd);
  }
  ws.Close();
}

}  // namespace kelpie::kubelet
