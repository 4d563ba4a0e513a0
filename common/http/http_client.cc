#include "common/http/http_client.h"

#include <openssl/ssl.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <mutex>
#include <vector>
#include <optional>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/http/asio_upgraded_connection.h"
#include "common/http/http_upgrade.h"
#include "common/status_macros.h"

namespace kelpie::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;

struct Endpoint {
  std::string host;
  std::string port;
};

absl::StatusOr<Endpoint> ParseServer(const std::string& server) {
  absl::string_view s = server;
  if (!absl::ConsumePrefix(&s, "https://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("server address \"", server, "\" must start with https://"));
  }
  while (!s.empty() && s.back() == '/') s.remove_suffix(1);
  Endpoint ep;
  if (!s.empty() && s.front() == '[') {  // [v6]:port
    size_t close = s.find(']');
    if (close == absl::string_view::npos) return absl::InvalidArgumentError("bad IPv6 address");
    ep.host = std::string(s.substr(1, close - 1));
    s.remove_prefix(close + 1);
    ep.port = absl::ConsumePrefix(&s, ":") ? std::string(s) : "443";
  } else {
    size_t colon = s.rfind(':');
    ep.host = std::string(s.substr(0, colon));
    ep.port = colon == absl::string_view::npos ? "443" : std::string(s.substr(colon + 1));
  }
  int port;
  if (ep.host.empty() || !absl::SimpleAtoi(ep.port, &port) || port <= 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("invalid server address \"", server, "\""));
  }
  return ep;
}

using Stream = ssl::stream<beast::tcp_stream>;

class HttpClientImpl final : public HttpClient {
 public:
  HttpClientImpl(HttpClientOptions options, Endpoint ep)
      : options_(std::move(options)), endpoint_(std::move(ep)), ctx_(ssl::context::tls_client) {}

  absl::Status Init() { return ConfigureClientTls(ctx_.native_handle(), options_.tls); }

  absl::StatusOr<HttpResponse> Do(const ClientRequest& request) override {
    // Concurrent callers each take a kept-alive connection of their own from
    // the pool (or open one), so requests from several threads (controller
    // workers) run in parallel instead of queueing on one connection. One
    // retry on a fresh connection when a pooled one was closed by the server
    // in the meantime; then the other pooled ones are stale too.
    for (int attempt = 0; attempt < 2; ++attempt) {
      std::optional<Connection> conn;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (!idle_.empty()) {
          conn.emplace(std::move(idle_.back()));
          idle_.pop_back();
        }
      }
      const bool reused = conn.has_value();
      if (!conn) {
        auto c = Connect();
        if (!c.ok()) return c.status();
        conn.emplace(std::move(*c));
      }
      auto result = RoundTrip(*conn->stream, request, nullptr);
      if (result.ok()) {
        if (result->keep_alive) {
          std::lock_guard<std::mutex> lock(mu_);
          if (idle_.size() < kMaxIdleConnections) idle_.push_back(std::move(*conn));
        }
        return std::move(result->response);
      }
      if (!reused) return result.status();
      std::lock_guard<std::mutex> lock(mu_);
      idle_.clear();
    }
    return absl::UnavailableError("connection closed");
  }

  absl::StatusOr<HttpResponse> Stream(
      const ClientRequest& request, const std::function<bool(std::string_view)>& on_data) override {
    KELPIE_ASSIGN_OR_RETURN(auto conn, Connect());
    KELPIE_ASSIGN_OR_RETURN(auto result, RoundTrip(*conn.stream, request, &on_data));
    return std::move(result.response);
  }

  absl::StatusOr<HttpResponse> Stream(const ClientRequest& request,
                                      const std::function<bool(std::string_view)>& on_data,
                                      StreamCanceller& canceller) override {
    return Stream(request, nullptr, on_data, canceller);
  }

  absl::StatusOr<HttpResponse> Stream(const ClientRequest& request,
                                      const std::function<void(const HttpResponse&)>& on_head,
                                      const std::function<bool(std::string_view)>& on_data,
                                      StreamCanceller& canceller) {
    if (canceller.cancelled()) return absl::CancelledError("the stream was cancelled");
    KELPIE_ASSIGN_OR_RETURN(auto conn, Connect());
    asio::io_context* ioc = conn.ioc.get();
    ::kelpie::http::Stream* stream = conn.stream.get();
    // The cancel runs on the stream's own I/O loop (this thread, inside
    // RoundTrip), so it never races the operations it cancels.
    canceller.Attach([ioc, stream] {
      asio::post(*ioc, [stream] {
        beast::error_code ignored;
        beast::get_lowest_layer(*stream).socket().shutdown(tcp::socket::shutdown_both, ignored);
        beast::get_lowest_layer(*stream).cancel();
      });
    });
    auto result = RoundTrip(*conn.stream, request, &on_data, on_head ? &on_head : nullptr);
    canceller.Detach();
    if (!result.ok()) {
      if (canceller.cancelled()) return absl::CancelledError("the stream was cancelled");
      return result.status();
    }
    return std::move(result->response);
  }

  absl::StatusOr<UpgradeResult> Upgrade(const ClientRequest& request) {
    KELPIE_ASSIGN_OR_RETURN(auto conn, Connect());
    bhttp::request<bhttp::string_body> req;
    req.method_string(request.method);
    req.target(request.target);
    req.version(11);
    req.set(bhttp::field::host, endpoint_.host);
    if (!options_.bearer_token.empty()) req.set(bhttp::field::authorization, "Bearer " + options_.bearer_token);
    for (const auto& [k, v] : request.headers) req.set(k, v);
    req.body() = request.body;
    req.prepare_payload();
    auto& ioc = *conn.ioc;
    auto& stream = *conn.stream;
    beast::error_code ec;
    auto& tcp_stream = beast::get_lowest_layer(stream);
    tcp_stream.expires_after(options_.request_timeout);
    bhttp::async_write(stream, req, [&](beast::error_code e, size_t) { ec = e; });
    ioc.run();
    ioc.restart();
    if (ec) return TransportError("send request", ec);
    beast::flat_buffer buffer;
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(16 * 1024 * 1024);
    bhttp::async_read_header(stream, buffer, parser, [&](beast::error_code e, size_t) { ec = e; });
    ioc.run();
    ioc.restart();
    if (ec) return TransportError("read response header", ec);
    UpgradeResult result;
    auto& msg = parser.get();
    result.response.status = static_cast<int>(msg.result_int());
    for (const auto& field : msg) {
      result.response.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
    if (result.response.status != 101) {
      bhttp::async_read(stream, buffer, parser, [&](beast::error_code e, size_t) { ec = e; });
      ioc.run();
      ioc.restart();
      if (ec && ec != bhttp::error::end_of_stream && ec != asio::error::eof) return TransportError("read response", ec);
      result.response.body = std::move(parser.get().body());
      return result;
    }
    tcp_stream.expires_never();
    std::string leftover = beast::buffers_to_string(buffer.data());
    result.connection = std::make_unique<DialedConnection>(std::move(conn), std::move(leftover));
    return result;
  }

 private:
  struct Connection {
    std::unique_ptr<asio::io_context> ioc;
    std::unique_ptr<::kelpie::http::Stream> stream;
  };

  // A client connection after its 101: its own I/O thread runs the loop.
  class DialedConnection final : public internal::AsioUpgradedConnection<::kelpie::http::Stream> {
   public:
    DialedConnection(Connection conn, std::string leftover)
        : AsioUpgradedConnection(*conn.stream, conn.ioc->get_executor(), std::move(leftover),
                                 [s = conn.stream.get()] {
                                   beast::error_code ignored;
                                   beast::get_lowest_layer(*s).socket().shutdown(tcp::socket::shutdown_both, ignored);
                                   beast::get_lowest_layer(*s).close();
                                 }),
          conn_(std::move(conn)),
          work_(asio::make_work_guard(*conn_.ioc)),
          thread_([ioc = conn_.ioc.get()] { ioc->run(); }) {}
    ~DialedConnection() override {
      Close();
      work_.reset();
      conn_.ioc->stop();
      thread_.join();
    }

   private:
    Connection conn_;
    asio::executor_work_guard<asio::io_context::executor_type> work_;
    std::thread thread_;
  };
  struct RoundTripResult {
    HttpResponse response;
    bool keep_alive;
  };

  absl::StatusOr<Connection> Connect() {
    Connection c;
    c.ioc = std::make_unique<asio::io_context>();
    c.stream = std::make_unique<::kelpie::http::Stream>(*c.ioc, ctx_);
    tcp::resolver resolver(*c.ioc);
    beast::error_code ec;
    auto results = resolver.resolve(endpoint_.host, endpoint_.port, ec);
    if (ec) {
      return absl::UnavailableError(
          absl::StrCat("cannot resolve ", endpoint_.host, ": ", ec.message()));
    }
    auto& tcp_stream = beast::get_lowest_layer(*c.stream);
    tcp_stream.expires_after(options_.connect_timeout);
    tcp_stream.async_connect(results, [&](beast::error_code e, const tcp::endpoint&) { ec = e; });
    c.ioc->run();
    c.ioc->restart();
    if (ec) {
      return absl::UnavailableError(
          absl::StrCat("cannot connect to ", options_.server, ": ", ec.message()));
    }
    // A request goes out as several TLS records (headers, body); with
    // Nagle's algorithm the last one waits for the server's delayed ACK,
    // which added ~40-100 ms to every request with a body of a few KiB.
    beast::error_code nodelay_ec;
    tcp_stream.socket().set_option(tcp::no_delay(true), nodelay_ec);
    std::string sni = options_.tls.server_name.empty() ? endpoint_.host : options_.tls.server_name;
    SSL* ssl = c.stream->native_handle();
    beast::error_code addr_ec;
    asio::ip::make_address(sni, addr_ec);
    if (addr_ec) SSL_set_tlsext_host_name(ssl, sni.c_str());  // SNI for names only
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    if (!addr_ec) {
      X509_VERIFY_PARAM_set1_ip_asc(param, sni.c_str());
    } else {
      X509_VERIFY_PARAM_set1_host(param, sni.c_str(), 0);
    }
    c.stream->async_handshake(ssl::stream_base::client, [&](beast::error_code e) { ec = e; });
    c.ioc->run();
    c.ioc->restart();
    if (ec) {
      return absl::UnavailableError(absl::StrCat("TLS handshake with ", options_.server,
                                                 " failed: ", ec.message()));
    }
    return c;
  }

  absl::StatusOr<RoundTripResult> RoundTrip(
      ::kelpie::http::Stream& stream, const ClientRequest& request,
      const std::function<bool(std::string_view)>* on_data,
      const std::function<void(const HttpResponse&)>* on_head = nullptr) {
    auto& ioc = static_cast<asio::io_context&>(stream.get_executor().context());
    bhttp::request<bhttp::string_body> req;
    req.method_string(request.method);
    req.target(request.target);
    req.version(11);
    req.set(bhttp::field::host, endpoint_.host);
    req.set(bhttp::field::user_agent, "kelpie");
    if (!options_.bearer_token.empty()) {
      req.set(bhttp::field::authorization, "Bearer " + options_.bearer_token);
    }
    for (const auto& [k, v] : request.headers) req.set(k, v);
    req.body() = request.body;
    req.prepare_payload();

    beast::error_code ec;
    auto& tcp_stream = beast::get_lowest_layer(stream);
    tcp_stream.expires_after(options_.request_timeout);
    bhttp::async_write(stream, req, [&](beast::error_code e, size_t) { ec = e; });
    ioc.run();
    ioc.restart();
    if (ec) return TransportError("send request", ec);

    beast::flat_buffer buffer;
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    if (on_data == nullptr) {
      bhttp::async_read(stream, buffer, parser, [&](beast::error_code e, size_t) { ec = e; });
      ioc.run();
      ioc.restart();
      if (ec) return TransportError("read response", ec);
    } else {
      tcp_stream.expires_never();
      bhttp::async_read_header(stream, buffer, parser, [&](beast::error_code e, size_t) { ec = e; });
      ioc.run();
      ioc.restart();
      if (ec) return TransportError("read response header", ec);
      if (on_head != nullptr) {
        HttpResponse head;
        head.status = static_cast<int>(parser.get().result_int());
        for (const auto& field : parser.get()) {
          head.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
        }
        (*on_head)(head);
      }
      // Hand each arriving body piece over and clear it, so a long stream
      // does not accumulate.
      while (!parser.is_done()) {
        bhttp::async_read_some(stream, buffer, parser, [&](beast::error_code e, size_t) { ec = e; });
        ioc.run();
        ioc.restart();
        std::string& body = parser.get().body();
        if (!body.empty()) {
          bool more = (*on_data)(body);
          body.clear();
          if (!more) break;
        }
        if (ec == bhttp::error::end_of_stream || ec == asio::error::eof) break;
        if (ec) return TransportError("read response body", ec);
      }
    }
    RoundTripResult result;
    auto& msg = parser.get();
    result.response.status = static_cast<int>(msg.result_int());
    for (const auto& field : msg) {
      result.response.headers.emplace_back(std::string(field.name_string()),
                                           std::string(field.value()));
    }
    if (on_data == nullptr) result.response.body = std::move(msg.body());
    result.keep_alive = msg.keep_alive();
    return result;
  }

  absl::Status TransportError(std::string_view what, const beast::error_code& ec) {
    if (ec == beast::error::timeout) {
      return absl::DeadlineExceededError(
          absl::StrCat(std::string(what), " to ", options_.server, ": timed out"));
    }
    return absl::UnavailableError(
        absl::StrCat(std::string(what), " to ", options_.server, ": ", ec.message()));
  }

  HttpClientOptions options_;
  Endpoint endpoint_;
  ssl::context ctx_;
  // Enough for a controller's parallel creates (64 in flight) to reuse
  // their connections from one batch to the next instead of handshaking.
  static constexpr size_t kMaxIdleConnections = 64;
  std::mutex mu_;
  std::vector<Connection> idle_;
};

class ClientOwnedConnection final : public UpgradedConnection {
 public:
  ClientOwnedConnection(std::shared_ptr<HttpClientImpl> client, std::unique_ptr<UpgradedConnection> inner)
      : client_(std::move(client)), inner_(std::move(inner)) {}
  size_t Read(char* data, size_t size) override { return inner_->Read(data, size); }
  bool Write(std::string_view data) override { return inner_->Write(data); }
  void Close() override { inner_->Close(); }

 private:
  std::shared_ptr<HttpClientImpl> client_;  // destroyed after inner_
  std::unique_ptr<UpgradedConnection> inner_;
};

}  // namespace

void StreamCanceller::Cancel() {
  std::function<void()> cancel;
  {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_ = true;
    cancel = cancel_;
  }
  if (cancel) cancel();
}

bool StreamCanceller::cancelled() {
  std::lock_guard<std::mutex> lock(mu_);
  return cancelled_;
}

void StreamCanceller::Attach(std::function<void()> cancel) {
  bool already;
  {
    std::lock_guard<std::mutex> lock(mu_);
    cancel_ = cancel;
    already = cancelled_;
  }
  if (already) cancel();
}

void StreamCanceller::Detach() {
  std::lock_guard<std::mutex> lock(mu_);
  cancel_ = nullptr;
}

absl::StatusOr<UpgradeResult> DialUpgrade(const HttpClientOptions& options, const ClientRequest& request) {
  KELPIE_ASSIGN_OR_RETURN(Endpoint ep, ParseServer(options.server));
  auto client = std::make_shared<HttpClientImpl>(options, std::move(ep));
  KELPIE_RETURN_IF_ERROR(client->Init());
  KELPIE_ASSIGN_OR_RETURN(UpgradeResult result, client->Upgrade(request));
  if (result.connection) {
    // The connection's TLS session uses the client's context: keep it.
    result.connection = std::make_unique<ClientOwnedConnection>(client, std::move(result.connection));
  }
  return result;
}

absl::StatusOr<HttpResponse> StreamWithHead(const HttpClientOptions& options, const ClientRequest& request,
                                            const std::function<void(const HttpResponse&)>& on_head,
                                            const std::function<bool(std::string_view)>& on_data,
                                            StreamCanceller& canceller) {
  KELPIE_ASSIGN_OR_RETURN(Endpoint ep, ParseServer(options.server));
  HttpClientImpl client(options, std::move(ep));
  KELPIE_RETURN_IF_ERROR(client.Init());
  return client.Stream(request, on_head, on_data, canceller);
}

absl::StatusOr<std::unique_ptr<HttpClient>> HttpClient::Create(HttpClientOptions options) {
  KELPIE_ASSIGN_OR_RETURN(Endpoint ep, ParseServer(options.server));
  auto client = std::make_unique<HttpClientImpl>(std::move(options), std::move(ep));
  KELPIE_RETURN_IF_ERROR(client->Init());
  return std::unique_ptr<HttpClient>(std::move(client));
}

}  // namespace kelpie::http
