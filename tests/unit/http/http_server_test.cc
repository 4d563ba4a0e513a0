// The HTTPS server and client against each other on loopback, with
// certificates made by the cluster PKI code.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "common/files.h"
#include "common/http/http_client.h"
#include "common/http/http_server.h"
#include "common/http/http_upgrade.h"
#include "common/tls/certificates.h"
#include "tests/testing/test_env.h"

namespace kelpie::http {
namespace {

using namespace std::chrono_literals;

struct Pki {
  tls::KeyPairPem ca;
  tls::KeyPairPem serving;
  tls::KeyPairPem client;
};

Pki MakePki(const std::string& client_cn, std::vector<std::string> groups) {
  Pki p;
  p.ca = *tls::CreateCertificateAuthority("test-ca", std::chrono::hours(24));
  tls::CertificateRequest s;
  s.common_name = "server";
  s.server_auth = true;
  s.dns_names = {"localhost"};
  s.ip_addresses = {"127.0.0.1"};
  p.serving = *tls::IssueCertificate(p.ca, s);
  tls::CertificateRequest c;
  c.common_name = client_cn;
  c.organizations = std::move(groups);
  c.client_auth = true;
  p.client = *tls::IssueCertificate(p.ca, c);
  return p;
}

class HttpServerTest : public ::testing::Test {
 protected:
  void StartServer(HttpHandler handler, size_t max_body = 1024 * 1024,
                   std::chrono::seconds write_timeout = std::chrono::seconds(60)) {
    pki_ = MakePki("alice", {"devs", "ops"});
    ASSERT_TRUE(WriteFileAtomically(dir_.File("s.crt"), pki_.serving.certificate_pem, 0600).ok());
    ASSERT_TRUE(WriteFileAtomically(dir_.File("s.key"), pki_.serving.private_key_pem, 0600).ok());
    ASSERT_TRUE(WriteFileAtomically(dir_.File("ca.crt"), pki_.ca.certificate_pem, 0600).ok());
    HttpServerOptions o;
    o.bind_address = "127.0.0.1";
    o.port = 0;
    o.tls = {dir_.File("s.crt"), dir_.File("s.key"), dir_.File("ca.crt")};
    o.max_body_bytes = max_body;
    o.write_timeout = write_timeout;
    auto server = HttpServer::Start(o, std::move(handler));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }

  std::unique_ptr<HttpClient> Client(bool with_cert = true, const Pki* other = nullptr) {
    HttpClientOptions o;
    o.server = "https://127.0.0.1:" + std::to_string(server_->port());
    o.tls.ca_pem = pki_.ca.certificate_pem;
    if (with_cert) {
      const Pki& src = other ? *other : pki_;
      o.tls.certificate_pem = src.client.certificate_pem;
      o.tls.private_key_pem = src.client.private_key_pem;
    }
    auto c = HttpClient::Create(o);
    EXPECT_TRUE(c.ok()) << c.status();
    return std::move(*c);
  }

  testing::TempDir dir_;
  Pki pki_;
  std::unique_ptr<HttpServer> server_;
};

HttpHandler EchoHandler() {
  return [](HttpRequest&& req, std::shared_ptr<HttpResponder> resp) {
    HttpResponse r;
    r.body = req.method + " " + req.path + "?" + req.query + " user=" + req.peer.common_name +
             " groups=" + std::to_string(req.peer.organizations.size()) + " body=" + req.body;
    const std::string* h = req.Header("x-test");
    if (h) r.SetHeader("X-Echo", *h);
    resp->Respond(std::move(r));
  };
}

TEST_F(HttpServerTest, RequestResponseWithClientCertificateIdentity) {
  StartServer(EchoHandler());
  auto client = Client();
  ClientRequest req;
  req.method = "POST";
  req.target = "/a%20b?x=1";
  req.body = "hello";
  req.headers = {{"X-Test", "v"}};
  auto r = client->Do(req);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "POST /a b?x=1 user=alice groups=2 body=hello");
  ASSERT_NE(r->Header("x-echo"), nullptr);
  EXPECT_EQ(*r->Header("x-echo"), "v");
  // Keep-alive: several requests over one connection.
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(client->Do({}).ok());
  EXPECT_EQ(server_->open_connections(), 1u);
}

TEST_F(HttpServerTest, AnonymousClientHasNoIdentity) {
  StartServer(EchoHandler());
  auto r = Client(/*with_cert=*/false)->Do({});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->body, "GET /? user= groups=0 body=");
}

TEST_F(HttpServerTest, CertificateFromForeignCaFailsHandshake) {
  StartServer(EchoHandler());
  Pki foreign = MakePki("mallory", {"system:masters"});
  auto r = Client(true, &foreign)->Do({});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
}

TEST_F(HttpServerTest, ClientRejectsServerFromForeignCa) {
  StartServer(EchoHandler());
  HttpClientOptions o;
  o.server = "https://127.0.0.1:" + std::to_string(server_->port());
  o.tls.ca_pem = MakePki("x", {}).ca.certificate_pem;
  auto r = (*HttpClient::Create(o))->Do({});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("TLS handshake"), std::string::npos) << r.status();
}

TEST_F(HttpServerTest, AsynchronousResponseFromAnotherThread) {
  std::vector<std::thread> threads;
  std::mutex mu;
  StartServer([&](HttpRequest&&, std::shared_ptr<HttpResponder> resp) {
    std::lock_guard<std::mutex> lock(mu);
    threads.emplace_back([resp] {
      std::this_thread::sleep_for(20ms);
      HttpResponse r;
      r.body = "later";
      resp->Respond(std::move(r));
    });
  });
  auto r = Client()->Do({});
  EXPECT_TRUE(r.ok()) << r.status();
  if (r.ok()) {
    EXPECT_EQ(r->body, "later");
  }
  server_->Shutdown(1s);
  for (auto& t : threads) t.join();
}

TEST_F(HttpServerTest, ChunkedStreamDeliversChunksInOrder) {
  StartServer([](HttpRequest&&, std::shared_ptr<HttpResponder> resp) {
    resp->StartStream(200, {{"Content-Type", "application/json"}});
    std::thread([resp] {
      for (int i = 0; i < 50; ++i) resp->WriteChunk("{\"n\":" + std::to_string(i) + "}\n");
      resp->EndStream();
    }).detach();
  });
  std::string all;
  auto r = Client()->Stream({}, [&](std::string_view d) {
    all.append(d);
    return true;
  });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  std::string expected;
  for (int i = 0; i < 50; ++i) expected += "{\"n\":" + std::to_string(i) + "}\n";
  EXPECT_EQ(all, expected);
}

// A quiet stream (a watch with no events) outlives the write timeout: only
// a write that stalls is cut, not the wait between chunks.
TEST_F(HttpServerTest, QuietStreamOutlivesWriteTimeout) {
  StartServer(
      [](HttpRequest&&, std::shared_ptr<HttpResponder> resp) {
        resp->StartStream(200, {});
        std::thread([resp] {
          std::this_thread::sleep_for(2500ms);
          resp->WriteChunk("late\n");
          resp->EndStream();
        }).detach();
      },
      1024 * 1024, /*write_timeout=*/1s);
  std::string all;
  auto r = Client()->Stream({}, [&](std::string_view d) {
    all.append(d);
    return true;
  });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(all, "late\n");
}

TEST_F(HttpServerTest, ClientGoingAwayAbortsStream) {
  std::atomic<bool> aborted{false};
  std::shared_ptr<HttpResponder> held;
  std::mutex mu;
  StartServer([&](HttpRequest&&, std::shared_ptr<HttpResponder> resp) {
    resp->OnAbort([&] { aborted = true; });
    resp->StartStream(200, {});
    resp->WriteChunk("first\n");
    std::lock_guard<std::mutex> lock(mu);
    held = resp;
  });
  auto r = Client()->Stream({}, [&](std::string_view) { return false; });  // hang up
  ASSERT_TRUE(r.ok()) << r.status();
  for (int i = 0; i < 200 && !aborted; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(aborted);
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_FALSE(held->WriteChunk("more\n"));
}

TEST_F(HttpServerTest, OversizedBodyIs413Status) {
  StartServer(EchoHandler(), /*max_body=*/1000);
  ClientRequest req;
  req.method = "POST";
  req.body = std::string(5000, 'x');
  auto r = Client()->Do(req);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 413);
  EXPECT_NE(r->body.find("\"reason\":\"RequestEntityTooLarge\""), std::string::npos);
}

TEST_F(HttpServerTest, ShutdownEndsOpenStreamsAndStopsAccepting) {
  std::atomic<int> aborts{0};
  StartServer([&](HttpRequest&&, std::shared_ptr<HttpResponder> resp) {
    resp->OnAbort([&] { ++aborts; });
    resp->StartStream(200, {});
    resp->WriteChunk("open\n");
  });
  std::thread reader([&] {
    auto r = Client()->Stream({}, [](std::string_view) { return true; });
    EXPECT_TRUE(r.ok()) << r.status();  // the stream ends cleanly
  });
  for (int i = 0; i < 200 && server_->open_connections() == 0; ++i) std::this_thread::sleep_for(5ms);
  std::this_thread::sleep_for(50ms);
  server_->Shutdown(2s);
  reader.join();
  EXPECT_EQ(aborts.load(), 1);
  EXPECT_EQ(server_->open_connections(), 0u);
}

// 200 KB both ways at once, then a shutdown while the handler still holds
// its connection: the handler's close must not wait on stopped I/O threads.
TEST_F(HttpServerTest, UpgradeHandsTheConnectionOverBothWays) {
  StartServer([](HttpRequest&& req, std::shared_ptr<HttpResponder> resp) {
    if (req.Header("upgrade") == nullptr) {
      return resp->Respond(HttpResponse{400, {}, "upgrade required"});
    }
    HttpResponse head;
    head.status = 101;
    head.SetHeader("Upgrade", "echo");
    head.SetHeader("Connection", "Upgrade");
    UpgradeOrFail(*resp, std::move(head), [](std::unique_ptr<UpgradedConnection> conn) {
      // Echoes upper-cased until the client closes.
      char buf[1024];
      while (size_t n = conn->Read(buf, sizeof(buf))) {
        for (size_t i = 0; i < n; ++i) buf[i] = static_cast<char>(std::toupper(static_cast<unsigned char>(buf[i])));
        if (!conn->Write(std::string_view(buf, n))) break;
      }
    });
  });
  HttpClientOptions co;
  co.server = "https://127.0.0.1:" + std::to_string(server_->port());
  co.tls.ca_pem = pki_.ca.certificate_pem;
  auto refused = DialUpgrade(co, {"GET", "/x", {}, ""});
  ASSERT_TRUE(refused.ok()) << refused.status();
  EXPECT_EQ(refused->response.status, 400);
  EXPECT_EQ(refused->response.body, "upgrade required");
  EXPECT_EQ(refused->connection, nullptr);

  auto up = DialUpgrade(co, {"GET", "/x", {{"Upgrade", "echo"}, {"Connection", "Upgrade"}}, ""});
  ASSERT_TRUE(up.ok()) << up.status();
  ASSERT_EQ(up->response.status, 101);
  ASSERT_NE(up->connection, nullptr);
  const std::string* upgrade = up->response.Header("upgrade");
  ASSERT_NE(upgrade, nullptr);
  EXPECT_EQ(*upgrade, "echo");
  std::string big(200000, 'a');
  std::thread writer([&] { EXPECT_TRUE(up->connection->Write(big)); });
  std::string got;
  char buf[65536];
  while (got.size() < big.size()) {
    size_t n = up->connection->Read(buf, sizeof(buf));
    if (n == 0) break;
    got.append(buf, n);
  }
  writer.join();
  EXPECT_EQ(got, std::string(200000, 'A'));
  // Shutdown closes upgraded connections and waits for their handlers.
  server_->Shutdown(1s);
  EXPECT_EQ(up->connection->Read(buf, sizeof(buf)), 0u);
  EXPECT_EQ(server_->open_connections(), 0u);
}

}  // namespace
}  // namespace kelpie::http
