#include "common/http/http_server.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <deque>
#include <list>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/http/asio_upgraded_connection.h"
#include "common/http/http_upgrade.h"
#include "common/http/tls_context.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace kelpie::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;

// A connection whose queued, unwritten response bytes exceed this is too slow
// to keep: it is closed rather than letting memory grow without bound.
constexpr size_t kMaxPendingWriteBytes = 64 * 1024 * 1024;

std::string StatusLine(int status) {
  auto reason = bhttp::obsolete_reason(static_cast<bhttp::status>(status));
  return absl::StrCat("HTTP/1.1 ", status, " ",
                      absl::string_view(reason.data(), reason.size()), "\r\n");
}

std::string FormatHead(int status, const HeaderList& headers, bool keep_alive,
                       std::optional<size_t> content_length) {
  std::string head = StatusLine(status);
  bool has_type = false;
  for (const auto& [k, v] : headers) {
    if (beast::iequals(k, "content-length") || beast::iequals(k, "transfer-encoding") ||
        beast::iequals(k, "connection")) {
      continue;  // framing is ours to decide
    }
    if (beast::iequals(k, "content-type")) has_type = true;
    absl::StrAppend(&head, k, ": ", v, "\r\n");
  }
  if (!has_type && content_length.value_or(1) > 0) {
    head += "Content-Type: text/plain; charset=utf-8\r\n";
  }
  if (content_length) {
    absl::StrAppend(&head, "Content-Length: ", *content_length, "\r\n");
  } else {
    head += "Transfer-Encoding: chunked\r\n";
  }
  if (!keep_alive) head += "Connection: close\r\n";
  head += "\r\n";
  return head;
}

class Session;

// Per-request completion handle given to handlers; forwards to the session's
// strand. Holds only a weak reference: a handler that outlives the
// connection writes into nothing.
class SessionResponder final : public HttpResponder,
                               public UpgradableResponder,
                               public std::enable_shared_from_this<SessionResponder> {
 public:
  SessionResponder(std::shared_ptr<Session> session, asio::any_io_executor executor)
      : session_(session), keep_alive_session_(std::move(session)), executor_(std::move(executor)) {}

  void Respond(HttpResponse response) override;
  void StartStream(int status, HeaderList headers) override;
  bool WriteChunk(std::string data) override;
  void EndStream() override;
  void OnAbort(std::function<void()> callback) override;
  void Upgrade(HttpResponse head, UpgradeHandler handler) override;

  // Called on the strand when the connection ends before completion.
  void Abort();
  void ReleasePending(size_t bytes) { pending_bytes_.fetch_sub(bytes); }

 private:
  std::weak_ptr<Session> session_;
  // A request in flight keeps its connection alive until the handler
  // completes it (or the connection is aborted), even when the handler
  // answers later from another thread.
  std::shared_ptr<Session> keep_alive_session_;
  asio::any_io_executor executor_;
  std::mutex mu_;
  bool completed_ = false;
  bool streaming_ = false;
  bool aborted_ = false;
  std::vector<std::function<void()>> on_abort_;
  std::atomic<size_t> pending_bytes_{0};
};

class ServerState;

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, ServerState* server);
  ~Session();

  void Run();
  void ServerShutdown();  // on the strand
  void ForceClose() { Close(); }  // on the strand

  // Strand-side operations driven by SessionResponder.
  void SendResponse(HttpResponse response);
  void SendStreamHead(int status, HeaderList headers);
  void SendChunk(std::string data, std::shared_ptr<SessionResponder> responder);
  void SendStreamEnd();
  void SendUpgrade(HttpResponse head, UpgradeHandler handler);
  asio::any_io_executor executor() { return stream_.get_executor(); }
  ssl::stream<beast::tcp_stream>& stream() { return stream_; }

 private:
  void OnDetect(beast::error_code ec, bool is_tls);
  void OnHandshake(beast::error_code ec, size_t used);
  void ReadRequest();
  void OnRead(beast::error_code ec, size_t bytes);
  void Dispatch();
  void Enqueue(std::string data, bool last_of_response);
  void WriteNext();
  void OnWrite(beast::error_code ec, size_t bytes);
  void WatchForClientClose();
  void DrainThenClose();
  void Close();

  ssl::stream<beast::tcp_stream> stream_;
  ServerState* server_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  PeerIdentity peer_;
  std::string remote_address_;

  enum class State { kHandshake, kReading, kHandling, kStreaming, kUpgraded, kClosed };
  State state_ = State::kHandshake;
  bool keep_alive_ = true;
  bool shutting_down_ = false;
  std::shared_ptr<SessionResponder> responder_;
  struct PendingWrite {
    std::string data;
    bool last_of_response;
    std::shared_ptr<SessionResponder> accounted_to;  // chunk bytes are counted against it
    size_t payload_bytes;
    // Written after `data` in the same gather write: a whole response's
    // body, so large bodies are not copied behind their head.
    std::string body = {};
  };
  std::deque<PendingWrite> writes_;
  bool writing_ = false;
  char probe_byte_ = 0;
  bool drain_before_close_ = false;
  size_t drained_bytes_ = 0;
  std::array<char, 65536> drain_buffer_;
};

class ServerState {
 public:
  ServerState(HttpServerOptions options, HttpHandler handler)
      : options_(std::move(options)),
        handler_(std::move(handler)),
        ssl_ctx_(ssl::context::tls_server) {}

  HttpServerOptions options_;
  HttpHandler handler_;
  asio::io_context ioc_;
  // Keeps the I/O threads running until Shutdown ends them: once the
  // acceptor is closed and no socket operation is pending the loop would
  // otherwise return, and an upgrade handler closing its connection (a
  // handler posted to the session's strand and waited for) would wait
  // forever.
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> keep_running_;
  ssl::context ssl_ctx_;
  std::optional<tcp::acceptor> acceptor_;

  std::mutex sessions_mu_;
  std::list<std::weak_ptr<Session>> sessions_;
  std::atomic<size_t> open_{0};
  std::atomic<bool> stopping_{false};

  // Threads running upgrade handlers; joined at shutdown after their
  // connections were closed.
  std::mutex upgrades_mu_;
  std::list<std::thread> upgrade_threads_;
  std::list<std::thread::id> finished_upgrades_;

  void StartUpgradeThread(std::function<void()> fn) {
    std::lock_guard<std::mutex> lock(upgrades_mu_);
    // Join what already finished so the list stays the size of live upgrades.
    for (auto id : finished_upgrades_) {
      for (auto it = upgrade_threads_.begin(); it != upgrade_threads_.end(); ++it) {
        if (it->get_id() == id) {
          it->join();
          upgrade_threads_.erase(it);
          break;
        }
      }
    }
    finished_upgrades_.clear();
    upgrade_threads_.emplace_back([this, fn = std::move(fn)]() mutable {
      {
        // Whatever the work holds is released before the thread counts as
        // finished: a joiner never waits on a destructor.
        auto work = std::move(fn);
        work();
      }
      std::lock_guard<std::mutex> l(upgrades_mu_);
      finished_upgrades_.push_back(std::this_thread::get_id());
    });
  }

  void JoinUpgradeThreads() {
    std::list<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(upgrades_mu_);
      threads.swap(upgrade_threads_);
      finished_upgrades_.clear();
    }
    for (auto& t : threads) t.join();
  }

  void Register(const std::shared_ptr<Session>& s) {
    std::lock_guard<std::mutex> lock(sessions_mu_);
    // Prune dead entries as we go so the list stays the size of live sessions.
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      it = it->expired() ? sessions_.erase(it) : std::next(it);
    }
    sessions_.push_back(s);
  }

  void Accept() {
    acceptor_->async_accept(asio::make_strand(ioc_), [this](beast::error_code ec,
                                                            tcp::socket socket) {
      if (ec) {
        if (ec == asio::error::operation_aborted || stopping_) return;
      } else if (!stopping_) {
        // Responses go out as several TLS records: without this the last
        // waits for the client's delayed ACK (Nagle), tens of milliseconds.
        beast::error_code nodelay_ec;
        socket.set_option(tcp::no_delay(true), nodelay_ec);
        auto session = std::make_shared<Session>(std::move(socket), this);
        Register(session);
        session->Run();
      }
      if (!stopping_) Accept();
    });
  }
};

void SessionResponder::Respond(HttpResponse response) {
  std::shared_ptr<Session> session;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (completed_ || streaming_ || aborted_) return;
    completed_ = true;
    session = std::move(keep_alive_session_);
  }
  asio::post(executor_, [s = std::move(session), r = std::move(response)]() mutable {
    if (s) s->SendResponse(std::move(r));
  });
}

void SessionResponder::StartStream(int status, HeaderList headers) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (completed_ || streaming_ || aborted_) return;
    streaming_ = true;
  }
  asio::post(executor_, [s = session_.lock(), status, h = std::move(headers)]() mutable {
    if (s) s->SendStreamHead(status, std::move(h));
  });
}

bool SessionResponder::WriteChunk(std::string data) {
  if (data.empty()) return true;  // an empty chunk would end the stream
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (aborted_ || !streaming_ || completed_) return false;
  }
  size_t size = data.size();
  if (pending_bytes_.fetch_add(size) + size > kMaxPendingWriteBytes) {
    // The client does not read as fast as we produce: drop the connection
    // rather than buffer without bound.
    pending_bytes_.fetch_sub(size);
    asio::post(executor_, [s = session_.lock()] {
      if (s) s->SendStreamEnd();
    });
    return false;
  }
  asio::post(executor_, [s = session_.lock(), d = std::move(data), self = shared_from_this()]() mutable {
    if (s) s->SendChunk(std::move(d), std::move(self));
  });
  return true;
}

void SessionResponder::EndStream() {
  std::shared_ptr<Session> session;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!streaming_ || completed_) return;
    completed_ = true;
    session = std::move(keep_alive_session_);
  }
  asio::post(executor_, [s = std::move(session)] {
    if (s) s->SendStreamEnd();
  });
}

void SessionResponder::Upgrade(HttpResponse head, UpgradeHandler handler) {
  std::shared_ptr<Session> session;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (completed_ || streaming_ || aborted_) return;
    completed_ = true;
    session = std::move(keep_alive_session_);
  }
  asio::post(executor_, [s = std::move(session), h = std::move(head), fn = std::move(handler)]() mutable {
    if (s) s->SendUpgrade(std::move(h), std::move(fn));
  });
}

void SessionResponder::OnAbort(std::function<void()> callback) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!aborted_) {
      on_abort_.push_back(std::move(callback));
      return;
    }
  }
  callback();
}

void SessionResponder::Abort() {
  // Dropped after the lock is released: it may be the session's last owner.
  std::shared_ptr<Session> session;
  std::vector<std::function<void()>> callbacks;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (aborted_) return;
    aborted_ = true;
    session = std::move(keep_alive_session_);
    callbacks.swap(on_abort_);
  }
  for (auto& cb : callbacks) cb();
}

Session::Session(tcp::socket socket, ServerState* server)
    : stream_(beast::tcp_stream(std::move(socket)), server->ssl_ctx_), server_(server) {
  server_->open_.fetch_add(1);
  beast::error_code ec;
  auto ep = beast::get_lowest_layer(stream_).socket().remote_endpoint(ec);
  if (!ec) remote_address_ = absl::StrCat(ep.address().to_string(), ":", ep.port());
}

Session::~Session() {
  if (responder_) responder_->Abort();
  server_->open_.fetch_sub(1);
}

void Session::Run() {
  // Start on the strand: everything this session does runs there.
  asio::dispatch(stream_.get_executor(), [self = shared_from_this()] {
    beast::get_lowest_layer(self->stream_).expires_after(std::chrono::seconds(10));
    beast::async_detect_ssl(beast::get_lowest_layer(self->stream_), self->buffer_,
                            [self](beast::error_code ec, bool is_tls) {
                              self->OnDetect(ec, is_tls);
                            });
  });
}

void Session::OnDetect(beast::error_code ec, bool is_tls) {
  if (ec || shutting_down_) return Close();
  if (!is_tls) {
    // Same answer as kube-apiserver gives a plain-HTTP client.
    static const std::string kPlainHttpAnswer =
        "HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
        "Client sent an HTTP request to an HTTPS server.\n";
    asio::async_write(beast::get_lowest_layer(stream_), asio::buffer(kPlainHttpAnswer),
                      [self = shared_from_this()](beast::error_code, size_t) { self->Close(); });
    return;
  }
  stream_.async_handshake(ssl::stream_base::server, buffer_.data(),
                          [self = shared_from_this()](beast::error_code ec, size_t used) {
                            self->OnHandshake(ec, used);
                          });
}

void Session::OnHandshake(beast::error_code ec, size_t used) {
  if (ec || shutting_down_) return Close();
  buffer_.consume(used);
  peer_ = PeerIdentityFromSsl(stream_.native_handle());
  ReadRequest();
}

void Session::ReadRequest() {
  if (shutting_down_) return Close();
  state_ = State::kReading;
  parser_.emplace();
  parser_->body_limit(server_->options_.max_body_bytes);
  parser_->header_limit(static_cast<uint32_t>(server_->options_.max_header_bytes));
  beast::get_lowest_layer(stream_).expires_after(server_->options_.idle_timeout);
  bhttp::async_read(stream_, buffer_, *parser_,
                    [self = shared_from_this()](beast::error_code ec, size_t bytes) {
                      self->OnRead(ec, bytes);
                    });
}

void Session::OnRead(beast::error_code ec, size_t) {
  if (ec == bhttp::error::body_limit) {
    state_ = State::kHandling;
    keep_alive_ = false;
    // The client may still be sending the body: read and drop it after
    // answering, so the client gets to read the 413 instead of a reset.
    drain_before_close_ = true;
    HttpResponse r;
    r.status = 413;
    r.SetHeader("Content-Type", "application/json");
    r.body = absl::StrCat(
        R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",)"
        R"("message":"the request body is larger than the limit of )",
        server_->options_.max_body_bytes, R"( bytes","reason":"RequestEntityTooLarge","code":413})");
    SendResponse(std::move(r));
    return;
  }
  if (ec) return Close();
  Dispatch();
}

void Session::Dispatch() {
  state_ = State::kHandling;
  beast::get_lowest_layer(stream_).expires_never();
  auto& msg = parser_->get();
  keep_alive_ = msg.keep_alive() && !shutting_down_;

  HttpRequest req;
  req.method = std::string(msg.method_string());
  req.target = std::string(msg.target());
  std::string_view target = req.target;
  size_t q = target.find('?');
  req.path = PercentDecode(target.substr(0, q), false);
  if (q != std::string_view::npos) req.query = std::string(target.substr(q + 1));
  req.headers.reserve(16);
  for (const auto& field : msg) {
    std::string name(field.name_string());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    req.headers.emplace_back(std::move(name), std::string(field.value()));
  }
  req.body = std::move(msg.body());
  req.peer = peer_;
  req.remote_address = remote_address_;

  responder_ = std::make_shared<SessionResponder>(shared_from_this(), stream_.get_executor());
  // A handler's bug must cost one request, not the server: an exception
  // escaping into the I/O loop would end the process.
  std::shared_ptr<SessionResponder> responder = responder_;
  try {
    server_->handler_(std::move(req), responder);
  } catch (const std::exception& e) {
    spdlog::error("HTTP handler failed: {}", e.what());
    responder->Respond(HttpResponse{500, {{"Content-Type", "text/plain"}}, "internal error\n"});
  }
}

void Session::SendResponse(HttpResponse response) {
  if (state_ != State::kHandling) return;
  std::string head = FormatHead(response.status, response.headers, keep_alive_, response.body.size());
  writes_.push_back({std::move(head), true, nullptr, 0, std::move(response.body)});
  WriteNext();
}

void Session::SendStreamHead(int status, HeaderList headers) {
  if (state_ != State::kHandling) return;
  state_ = State::kStreaming;
  Enqueue(FormatHead(status, headers, keep_alive_, std::nullopt), false);
  WatchForClientClose();
}

void Session::SendChunk(std::string data, std::shared_ptr<SessionResponder> responder) {
  if (state_ != State::kStreaming || responder != responder_) {
    responder->ReleasePending(data.size());
    return;
  }
  size_t size = data.size();
  char len[32];
  int n = std::snprintf(len, sizeof(len), "%zx\r\n", size);
  std::string framed;
  framed.reserve(static_cast<size_t>(n) + size + 2);
  framed.append(len, static_cast<size_t>(n));
  framed += data;
  framed += "\r\n";
  writes_.push_back({std::move(framed), false, std::move(responder), size});
  WriteNext();
}

// The connection after its 101: owned by the upgrade handler, keeps the
// session alive.
class SessionConnection final : public internal::AsioUpgradedConnection<ssl::stream<beast::tcp_stream>> {
 public:
  SessionConnection(std::shared_ptr<Session> session, std::string leftover)
      : AsioUpgradedConnection(session->stream(), session->executor(), std::move(leftover),
                               [s = session.get()] { s->ForceClose(); }),
        session_(std::move(session)) {}
  ~SessionConnection() override { Close(); }

 private:
  std::shared_ptr<Session> session_;
};

// Hands the shared connection to a handler that wants sole ownership.
class ForwardingConnection final : public UpgradedConnection {
 public:
  explicit ForwardingConnection(std::shared_ptr<UpgradedConnection> inner) : inner_(std::move(inner)) {}
  size_t Read(char* data, size_t size) override { return inner_->Read(data, size); }
  bool Write(std::string_view data) override { return inner_->Write(data); }
  void Close() override { inner_->Close(); }

 private:
  std::shared_ptr<UpgradedConnection> inner_;
};

void Session::SendUpgrade(HttpResponse head, UpgradeHandler handler) {
  if (state_ != State::kHandling) return;
  state_ = State::kUpgraded;
  responder_.reset();
  std::string text = StatusLine(head.status);
  for (const auto& [k, v] : head.headers) absl::StrAppend(&text, k, ": ", v, "\r\n");
  text += "\r\n";
  auto data = std::make_shared<std::string>(std::move(text));
  beast::get_lowest_layer(stream_).expires_never();
  asio::async_write(stream_, asio::buffer(*data),
                    [self = shared_from_this(), data, fn = std::move(handler)](beast::error_code ec, size_t) mutable {
                      if (ec || self->state_ != State::kUpgraded) return self->Close();
                      // Bytes the client sent right after its request (a
                      // first WebSocket frame) were read into the buffer.
                      std::string leftover = beast::buffers_to_string(self->buffer_.data());
                      self->buffer_.consume(self->buffer_.size());
                      auto conn = std::make_unique<SessionConnection>(self, std::move(leftover));
                      self->server_->StartUpgradeThread(
                          [fn = std::move(fn), c = std::shared_ptr<SessionConnection>(std::move(conn))]() mutable {
                            std::unique_ptr<UpgradedConnection> owned(new ForwardingConnection(std::move(c)));
                            fn(std::move(owned));
                          });
                    });
}

void Session::SendStreamEnd() {
  if (state_ != State::kStreaming) return;
  if (responder_) responder_->Abort();  // nothing more will be written
  keep_alive_ = false;  // the probe read may have consumed client bytes
  Enqueue("0\r\n\r\n", true);
}

void Session::Enqueue(std::string data, bool last_of_response) {
  writes_.push_back({std::move(data), last_of_response, nullptr, 0});
  WriteNext();
}

void Session::WriteNext() {
  if (writing_ || writes_.empty() || state_ == State::kClosed) return;
  writing_ = true;
  beast::get_lowest_layer(stream_).expires_after(server_->options_.write_timeout);
  std::array<asio::const_buffer, 2> buffers = {asio::buffer(writes_.front().data),
                                               asio::buffer(writes_.front().body)};
  asio::async_write(stream_, buffers, [self = shared_from_this()](beast::error_code ec, size_t bytes) {
    self->OnWrite(ec, bytes);
  });
}

void Session::OnWrite(beast::error_code ec, size_t) {
  writing_ = false;
  PendingWrite done = std::move(writes_.front());
  writes_.pop_front();
  if (done.accounted_to) done.accounted_to->ReleasePending(done.payload_bytes);
  if (ec) return Close();
  if (state_ == State::kStreaming || state_ == State::kHandling) {
    beast::get_lowest_layer(stream_).expires_never();
  }
  if (done.last_of_response) {
    responder_.reset();
    if (drain_before_close_) return DrainThenClose();
    if (!keep_alive_ || shutting_down_) return Close();
    return ReadRequest();
  }
  WriteNext();
}

void Session::WatchForClientClose() {
  // While streaming, a one-byte read notices the client hanging up (HTTP/1.1
  // clients send nothing more on a connection with a response in flight).
  // The read must not inherit the write timeout armed for the stream's head
  // (a read takes the expiry set when it starts): it would cut every stream
  // after write_timeout. Only the idle read timer is reset here; a pending
  // write keeps its own.
  beast::get_lowest_layer(stream_).expires_never();
  stream_.async_read_some(asio::buffer(&probe_byte_, 1),
                          [self = shared_from_this()](beast::error_code ec, size_t) {
                            if (self->state_ != State::kStreaming) return;
                            if (ec) {
                              self->Close();
                            } else {
                              self->WatchForClientClose();
                            }
                          });
}

void Session::DrainThenClose() {
  // Bounded in bytes and time: a client that never stops sending is cut off.
  constexpr size_t kMaxDrainBytes = 32 * 1024 * 1024;
  if (drained_bytes_ == 0) beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(5));
  stream_.async_read_some(asio::buffer(drain_buffer_),
                          [self = shared_from_this()](beast::error_code ec, size_t n) {
                            self->drained_bytes_ += n;
                            if (ec || self->drained_bytes_ > kMaxDrainBytes || self->shutting_down_) {
                              return self->Close();
                            }
                            self->DrainThenClose();
                          });
}

void Session::ServerShutdown() {
  shutting_down_ = true;
  keep_alive_ = false;
  switch (state_) {
    case State::kHandshake:
    case State::kReading:
      Close();
      break;
    case State::kStreaming:
      SendStreamEnd();
      break;
    case State::kUpgraded:
      Close();
      break;
    case State::kHandling:  // finishes, then closes (keep_alive_ is off)
    case State::kClosed:
      break;
  }
}

void Session::Close() {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  if (responder_) {
    responder_->Abort();
    responder_.reset();
  }
  beast::error_code ec;
  auto& sock = beast::get_lowest_layer(stream_).socket();
  sock.shutdown(tcp::socket::shutdown_both, ec);
  sock.close(ec);
}

class HttpServerImpl final : public HttpServer {
 public:
  explicit HttpServerImpl(std::unique_ptr<ServerState> state) : state_(std::move(state)) {}
  ~HttpServerImpl() override { Shutdown(std::chrono::milliseconds(0)); }

  absl::Status Listen() {
    auto& opts = state_->options_;
    KELPIE_RETURN_IF_ERROR(ConfigureServerTls(state_->ssl_ctx_.native_handle(), opts.tls));
    beast::error_code ec;
    auto address = asio::ip::make_address(opts.bind_address, ec);
    if (ec) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid bind address \"", opts.bind_address, "\": ", ec.message()));
    }
    tcp::endpoint ep(address, opts.port);
    state_->acceptor_.emplace(state_->ioc_);
    auto& acc = *state_->acceptor_;
    acc.open(ep.protocol(), ec);
    if (!ec) acc.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acc.bind(ep, ec);
    if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return absl::UnavailableError(absl::StrCat("cannot listen on ", opts.bind_address, ":",
                                                 opts.port, ": ", ec.message()));
    }
    port_ = acc.local_endpoint().port();
    state_->Accept();
    state_->keep_running_.emplace(state_->ioc_.get_executor());
    int n = std::max(1, opts.io_threads);
    for (int i = 0; i < n; ++i) {
      threads_.emplace_back([this] { state_->ioc_.run(); });
    }
    return absl::OkStatus();
  }

  uint16_t port() const override { return port_; }
  size_t open_connections() const override { return state_->open_.load(); }

  void Shutdown(std::chrono::milliseconds grace) override {
    std::lock_guard<std::mutex> lock(shutdown_mu_);
    if (threads_.empty()) return;
    state_->stopping_ = true;
    asio::post(state_->ioc_, [this] {
      beast::error_code ec;
      if (state_->acceptor_) state_->acceptor_->close(ec);
    });
    auto for_each_session = [this](auto fn) {
      std::vector<std::shared_ptr<Session>> live;
      {
        std::lock_guard<std::mutex> l(state_->sessions_mu_);
        for (auto& w : state_->sessions_) {
          if (auto s = w.lock()) live.push_back(std::move(s));
        }
      }
      for (auto& s : live) asio::post(s->executor(), [s, fn] { fn(*s); });
    };
    auto wait_for_sessions = [this](std::chrono::milliseconds limit) {
      auto deadline = std::chrono::steady_clock::now() + limit;
      while (state_->open_.load() > 0 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    };
    // Idle connections close and streams end now; requests being handled
    // get the grace period, then their connections are cut.
    for_each_session([](Session& s) { s.ServerShutdown(); });
    wait_for_sessions(grace);
    for_each_session([](Session& s) { s.ForceClose(); });
    // Upgrade handlers see their connections closed and return.
    state_->JoinUpgradeThreads();
    wait_for_sessions(std::chrono::seconds(1));
    state_->keep_running_.reset();
    state_->ioc_.stop();
    for (auto& t : threads_) t.join();
    threads_.clear();
    // Sessions still referenced by pending handlers die with the io_context's
    // queued operations, destroyed here.
    state_->acceptor_.reset();
  }

 private:
  std::unique_ptr<ServerState> state_;
  std::vector<std::thread> threads_;
  std::mutex shutdown_mu_;
  uint16_t port_ = 0;
};

}  // namespace

void UpgradeOrFail(HttpResponder& responder, HttpResponse head, UpgradeHandler handler) {
  if (auto* upgradable = dynamic_cast<UpgradableResponder*>(&responder)) {
    return upgradable->Upgrade(std::move(head), std::move(handler));
  }
  responder.Respond(HttpResponse{500, {{"Content-Type", "text/plain"}}, "this endpoint cannot switch protocols\n"});
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(HttpServerOptions options,
                                                              HttpHandler handler) {
  auto state = std::make_unique<ServerState>(std::move(options), std::move(handler));
  auto server = std::make_unique<HttpServerImpl>(std::move(state));
  KELPIE_RETURN_IF_ERROR(server->Listen());
  return std::unique_ptr<HttpServer>(std::move(server));
}

}  // namespace kelpie::http
