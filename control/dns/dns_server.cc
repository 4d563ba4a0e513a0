#include "control/dns/dns_server.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <boost/asio.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/log.h"

namespace kelpie::dns {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;
using asio::ip::udp;
using Bytes = std::vector<uint8_t>;

std::vector<Upstream> ParseResolvConf(const std::string& text) {
  std::vector<Upstream> out;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    std::vector<std::string> words = absl::StrSplit(line, absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
    if (words.size() < 2 || words[0] != "nameserver") continue;
    boost::system::error_code ec;
    std::string address = words[1];
    auto percent = address.find('%');  // fe80::1%eth0: zone ids are not supported
    if (percent != std::string::npos) continue;
    asio::ip::make_address(address, ec);
    if (ec) continue;
    out.push_back({address, 53});
  }
  return out;
}

absl::StatusOr<std::vector<Upstream>> UpstreamsFromResolvConf(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read resolv.conf ", path));
  std::stringstream text;
  text << in.rdbuf();
  std::vector<Upstream> out;
  for (auto& u : ParseResolvConf(text.str())) {
    if (asio::ip::make_address(u.address).is_loopback()) continue;
    out.push_back(std::move(u));
  }
  return out;
}

class DnsServer::Impl {
 public:
  Impl(DnsServerOptions options, const ClusterDnsView& view, prometheus::Registry* registry)
      : options_(std::move(options)), view_(view), udp_(io_), acceptor_(io_), rng_(std::random_device{}()) {
    if (registry != nullptr) {
      queries_ = &prometheus::BuildCounter()
                      .Name("kelpie_dns_queries_total")
                      .Help("DNS queries handled, by transport and result")
                      .Register(*registry);
      latency_ = &prometheus::BuildHistogram()
                      .Name("kelpie_dns_query_duration_seconds")
                      .Help("Time from receiving a DNS query to having its answer, by source of the answer")
                      .Register(*registry);
    }
  }

  ~Impl() { Stop(); }

  absl::Status Start() {
    boost::system::error_code ec;
    auto address = asio::ip::make_address(options_.address, ec);
    if (ec) return absl::InvalidArgumentError(absl::StrCat("bad DNS listen address ", options_.address));
    // UDP and TCP must share one port number; with port 0 retry until the
    // kernel's UDP choice is also free for TCP.
    for (int attempt = 0; attempt < 20; ++attempt) {
      udp_ = udp::socket(io_);
      acceptor_ = tcp::acceptor(io_);
      udp_.open(address.is_v4() ? udp::v4() : udp::v6(), ec);
      if (!ec) udp_.bind(udp::endpoint(address, options_.port), ec);
      if (ec) return absl::UnavailableError(absl::StrCat("DNS UDP bind ", options_.address, ":", options_.port, ": ", ec.message()));
      uint16_t port = udp_.local_endpoint().port();
      acceptor_.open(address.is_v4() ? tcp::v4() : tcp::v6(), ec);
      if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
      if (!ec) acceptor_.bind(tcp::endpoint(address, port), ec);
      if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
      if (!ec) {
        port_ = port;
        break;
      }
      if (options_.port != 0) return absl::UnavailableError(absl::StrCat("DNS TCP bind ", options_.address, ":", port, ": ", ec.message()));
    }
    if (port_ == 0) return absl::UnavailableError("no port free for both UDP and TCP");
    asio::co_spawn(io_, UdpLoop(), asio::detached);
    asio::co_spawn(io_, AcceptLoop(), asio::detached);
    thread_ = std::thread([this] { io_.run(); });
    spdlog::info("cluster DNS serving {} on {}:{} with {} upstream(s)", view_.domain(), options_.address, port_,
              options_.upstreams.size());
    return absl::OkStatus();
  }

  void Stop() {
    if (!thread_.joinable()) return;
    asio::post(io_, [this] {
      boost::system::error_code ec;
      udp_.close(ec);
      acceptor_.close(ec);
      io_.stop();
    });
    thread_.join();
  }

  uint16_t port() const { return port_; }

 private:
  enum class Transport { kUdp, kTcp };

  void Count(Transport t, const char* result) {
    if (queries_ != nullptr) queries_->Add({{"protocol", t == Transport::kUdp ? "udp" : "tcp"}, {"result", result}}).Increment();
  }
  void Observe(const char* source, std::chrono::steady_clock::time_point start) {
    if (latency_ == nullptr) return;
    static const prometheus::Histogram::BucketBoundaries kBuckets = {0.0001, 0.0005, 0.001, 0.005, 0.01,
                                                                     0.05,   0.1,    0.5,   1,     2.5};
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    latency_->Add({{"source", source}}, kBuckets).Observe(s);
  }

  // A reply carrying only the question (or nothing when it was unreadable).
  static Bytes Bare(const Header& query_header, const std::vector<Question>& questions, Rcode rcode) {
    Message m;
    m.header.id = query_header.id;
    m.header.qr = true;
    m.header.opcode = query_header.opcode;
    m.header.rd = query_header.rd;
    m.header.ra = true;
    m.header.rcode = static_cast<uint8_t>(rcode);
    m.questions = questions;
    auto bytes = EncodeMessage(m);
    if (bytes.ok()) return *bytes;
    m.questions.clear();
    return *EncodeMessage(m);
  }

  // Header + question of a reply with TC set and every record dropped.
  static std::optional<Bytes> TruncateRaw(const Bytes& reply) {
    auto end = QuestionSectionEnd(reply.data(), reply.size());
    if (!end.ok()) return std::nullopt;
    Bytes out(reply.begin(), reply.begin() + *end);
    out[2] |= 0x02;  // TC
    for (int i = 6; i < 12; ++i) out[i] = 0;
    return out;
  }

  // The reply to one query, or nullopt to drop it.
  awaitable<std::optional<Bytes>> Handle(Bytes query, Transport transport) {
    const auto start = std::chrono::steady_clock::now();
    auto header = ParseHeader(query.data(), query.size());
    if (!header.ok() || header->qr) {
      Count(transport, "dropped");
      co_return std::nullopt;
    }
    auto message = ParseMessage(query);
    if (!message.ok()) {
      Count(transport, "formerr");
      co_return Bare(*header, {}, Rcode::kFormErr);
    }
    if (header->opcode != 0) {
      Count(transport, "notimp");
      co_return Bare(*header, message->questions, Rcode::kNotImp);
    }
    if (message->questions.size() != 1) {
      Count(transport, "formerr");
      co_return Bare(*header, message->questions, Rcode::kFormErr);
    }
    const size_t limit = transport == Transport::kUdp ? ClientUdpLimit(*message) : 0xFFFF;
    const Question& q = message->questions[0];
    std::optional<ZoneAnswer> zone;
    if (q.klass == kClassIn || q.klass == rr::kAny) zone = view_.Resolve(q);
    if (zone) {
      Message reply;
      reply.header = Header{header->id, true, 0, true, false, header->rd, true, false, header->cd, static_cast<uint8_t>(zone->rcode)};
      reply.questions = message->questions;
      reply.answers = std::move(zone->answers);
      reply.authorities = std::move(zone->authorities);
      reply.additionals = std::move(zone->additionals);
      if (message->Opt() != nullptr) reply.additionals.push_back({"", rr::kOpt, kAdvertisedUdpSize, 0, {}});
      auto bytes = EncodeMessage(reply);
      if (bytes.ok() && bytes->size() > limit) {
        reply.header.tc = true;
        reply.answers.clear();
        reply.authorities.clear();
        std::erase_if(reply.additionals, [](const ResourceRecord& r) { return r.type != rr::kOpt; });
        bytes = EncodeMessage(reply);
      }
      Observe("cluster", start);
      if (!bytes.ok()) {
        Count(transport, "servfail");
        co_return Bare(*header, message->questions, Rcode::kServFail);
      }
      Count(transport, zone->rcode == Rcode::kNxDomain ? "nxdomain"
                       : reply.header.tc                ? "truncated"
                       : reply.answers.empty()          ? "nodata"
                                                        : "answered");
      co_return std::move(*bytes);
    }
    if (options_.upstreams.empty() || inflight_forwards_ >= kMaxInflightForwards) {
      Count(transport, "servfail");
      co_return Bare(*header, message->questions, Rcode::kServFail);
    }
    ++inflight_forwards_;
    std::optional<Bytes> answer = co_await Forward(query, transport);
    --inflight_forwards_;
    Observe("upstream", start);
    if (!answer) {
      Count(transport, "servfail");
      co_return Bare(*header, message->questions, Rcode::kServFail);
    }
    if (answer->size() > limit) {
      auto cut = TruncateRaw(*answer);
      if (!cut) {
        Count(transport, "servfail");
        co_return Bare(*header, message->questions, Rcode::kServFail);
      }
      answer = std::move(cut);
    }
    Count(transport, "forwarded");
    co_return answer;
  }

  // Sends the query to each upstream in turn until one answers; UDP clients
  // are forwarded over UDP (TCP when the answer comes back truncated), TCP
  // clients over TCP. Uses a fresh message id so replies cannot be spoofed
  // with the client's.
  awaitable<std::optional<Bytes>> Forward(const Bytes& query, Transport transport) {
    const uint16_t client_id = static_cast<uint16_t>((query[0] << 8) | query[1]);
    Bytes out = query;
    const uint16_t id = static_cast<uint16_t>(rng_());
    out[0] = static_cast<uint8_t>(id >> 8);
    out[1] = static_cast<uint8_t>(id);
    for (const auto& upstream : options_.upstreams) {
      boost::system::error_code ec;
      auto address = asio::ip::make_address(upstream.address, ec);
      if (ec) continue;
      std::optional<Bytes> reply;
      if (transport == Transport::kUdp) {
        reply = co_await UdpExchange(udp::endpoint(address, upstream.port), out, id);
        if (reply && ((*reply)[2] & 0x02)) reply = co_await TcpExchange(tcp::endpoint(address, upstream.port), out, id);
      } else {
        reply = co_await TcpExchange(tcp::endpoint(address, upstream.port), out, id);
      }
      if (!reply) continue;
      (*reply)[0] = static_cast<uint8_t>(client_id >> 8);
      (*reply)[1] = static_cast<uint8_t>(client_id);
      co_return reply;
    }
    co_return std::nullopt;
  }

  static bool IsReplyTo(const Bytes& reply, uint16_t id) {
    auto h = ParseHeader(reply.data(), reply.size());
    return h.ok() && h->qr && h->id == id;
  }

  awaitable<std::optional<Bytes>> UdpExchange(udp::endpoint upstream, const Bytes& query, uint16_t id) {
    auto executor = co_await asio::this_coro::executor;
    udp::socket socket(executor);
    boost::system::error_code ec;
    socket.open(upstream.protocol(), ec);
    if (!ec) socket.connect(upstream, ec);  // the kernel filters other sources
    if (ec) co_return std::nullopt;
    asio::steady_timer timer(executor);
    timer.expires_after(options_.upstream_timeout);
    timer.async_wait([&socket](boost::system::error_code e) {
      if (!e) socket.cancel();
    });
    co_await socket.async_send(asio::buffer(query), asio::redirect_error(use_awaitable, ec));
    std::array<uint8_t, 65535> buffer;
    // Ignore stray datagrams (old ids) until the timer fires.
    for (int i = 0; !ec && i < 16; ++i) {
      size_t n = co_await socket.async_receive(asio::buffer(buffer), asio::redirect_error(use_awaitable, ec));
      if (ec) break;
      Bytes reply(buffer.begin(), buffer.begin() + n);
      if (IsReplyTo(reply, id)) {
        timer.cancel();
        co_return reply;
      }
    }
    timer.cancel();
    co_return std::nullopt;
  }

  awaitable<std::optional<Bytes>> TcpExchange(tcp::endpoint upstream, const Bytes& query, uint16_t id) {
    auto executor = co_await asio::this_coro::executor;
    tcp::socket socket(executor);
    asio::steady_timer timer(executor);
    timer.expires_after(options_.upstream_timeout);
    timer.async_wait([&socket](boost::system::error_code e) {
      if (!e) {
        boost::system::error_code ignored;
        socket.close(ignored);
      }
    });
    boost::system::error_code ec;
    co_await socket.async_connect(upstream, asio::redirect_error(use_awaitable, ec));
    std::array<uint8_t, 2> length{static_cast<uint8_t>(query.size() >> 8), static_cast<uint8_t>(query.size())};
    if (!ec) {
      std::array<asio::const_buffer, 2> parts{asio::buffer(length), asio::buffer(query)};
      co_await asio::async_write(socket, parts, asio::redirect_error(use_awaitable, ec));
    }
    if (!ec) co_await asio::async_read(socket, asio::buffer(length), asio::redirect_error(use_awaitable, ec));
    Bytes reply;
    if (!ec) {
      reply.resize((length[0] << 8) | length[1]);
      co_await asio::async_read(socket, asio::buffer(reply), asio::redirect_error(use_awaitable, ec));
    }
    timer.cancel();
    if (ec || !IsReplyTo(reply, id)) co_return std::nullopt;
    co_return reply;
  }

  awaitable<void> UdpLoop() {
    std::array<uint8_t, 65535> buffer;
    while (true) {
      udp::endpoint from;
      boost::system::error_code ec;
      size_t n = co_await udp_.async_receive_from(asio::buffer(buffer), from, asio::redirect_error(use_awaitable, ec));
      if (ec == asio::error::operation_aborted || !udp_.is_open()) co_return;
      if (ec) continue;
      asio::co_spawn(io_, ServeDatagram(Bytes(buffer.begin(), buffer.begin() + n), from), asio::detached);
    }
  }

  awaitable<void> ServeDatagram(Bytes query, udp::endpoint from) {
    auto reply = co_await Handle(std::move(query), Transport::kUdp);
    if (!reply || !udp_.is_open()) co_return;
    boost::system::error_code ec;
    co_await udp_.async_send_to(asio::buffer(*reply), from, asio::redirect_error(use_awaitable, ec));
  }

  awaitable<void> AcceptLoop() {
    while (true) {
      boost::system::error_code ec;
      tcp::socket socket = co_await acceptor_.async_accept(asio::redirect_error(use_awaitable, ec));
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
      if (ec) continue;
      asio::co_spawn(io_, ServeConnection(std::make_shared<tcp::socket>(std::move(socket))), asio::detached);
    }
  }

  // Length-prefixed queries, answered in order, until the client closes or
  // stays idle past the timeout.
  awaitable<void> ServeConnection(std::shared_ptr<tcp::socket> socket) {
    asio::steady_timer idle(io_);
    while (socket->is_open()) {
      idle.expires_after(options_.tcp_idle_timeout);
      idle.async_wait([socket](boost::system::error_code e) {
        if (!e) {
          boost::system::error_code ignored;
          socket->close(ignored);
        }
      });
      boost::system::error_code ec;
      std::array<uint8_t, 2> length;
      co_await asio::async_read(*socket, asio::buffer(length), asio::redirect_error(use_awaitable, ec));
      if (ec) break;
      Bytes query((length[0] << 8) | length[1]);
      co_await asio::async_read(*socket, asio::buffer(query), asio::redirect_error(use_awaitable, ec));
      if (ec) break;
      auto reply = co_await Handle(std::move(query), Transport::kTcp);
      if (!reply) break;  // not a query: stop talking to this client
      std::array<uint8_t, 2> out_length{static_cast<uint8_t>(reply->size() >> 8), static_cast<uint8_t>(reply->size())};
      std::array<asio::const_buffer, 2> parts{asio::buffer(out_length), asio::buffer(*reply)};
      co_await asio::async_write(*socket, parts, asio::redirect_error(use_awaitable, ec));
      if (ec) break;
    }
    idle.cancel();
    boost::system::error_code ignored;
    socket->close(ignored);
  }

  static constexpr int kMaxInflightForwards = 1024;

  const DnsServerOptions options_;
  const ClusterDnsView& view_;
  asio::io_context io_;
  udp::socket udp_;
  tcp::acceptor acceptor_;
  std::thread thread_;
  uint16_t port_ = 0;
  std::mt19937 rng_;
  int inflight_forwards_ = 0;
  prometheus::Family<prometheus::Counter>* queries_ = nullptr;
  prometheus::Family<prometheus::Histogram>* latency_ = nullptr;
};

DnsServer::DnsServer(DnsServerOptions options, const ClusterDnsView& view, prometheus::Registry* registry)
    : impl_(std::make_unique<Impl>(std::move(options), view, registry)) {}
DnsServer::~DnsServer() = default;
absl::Status DnsServer::Start() { return impl_->Start(); }
void DnsServer::Stop() { impl_->Stop(); }
uint16_t DnsServer::port() const { return impl_->port(); }

}  // namespace kelpie::dns
