// `kelpie image pull` against Debian's real docker-registry on loopback,
// with images the test builds from busybox-static and pushes itself:
// a pull stores the image and `image ls` shows it, a blob damaged inside
// the registry is refused, a manifest list resolves to linux/amd64, and
// the bearer-token flow works against the registry's token auth with a
// token endpoint that is a test double (below) issuing signed JWTs.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/base64.h"
#include "common/files.h"
#include "common/http/http_message.h"
#include "common/subprocess.h"
#include "orchestrator/runtime/image/registry_credentials.h"
#include "tests/testing/local_registry.h"
#include "tests/testing/test_env.h"

namespace kelpie {
namespace {

using testing::KelpieBinary;
using testing::LocalRegistry;
using testing::TempDir;

class ImagePullTest : public ::testing::Test {
 protected:
  SubprocessResult Kelpie(std::vector<std::string> args) {
    std::vector<std::string> argv = {KelpieBinary(), "image"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back("--data-dir=" + data_.path());
    auto r = RunSubprocess(argv, {.timeout = std::chrono::seconds(120)});
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : SubprocessResult{};
  }
  SubprocessResult Pull(const std::string& ref, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"pull", ref, "--insecure-registry", registry_->host()};
    args.insert(args.end(), extra.begin(), extra.end());
    return Kelpie(args);
  }
  void StartRegistry(testing::LocalRegistryOptions options = {}) {
    auto r = LocalRegistry::Start(registry_dir_.path(), options);
    ASSERT_TRUE(r.ok()) << r.status();
    registry_ = std::move(*r);
  }
  std::string Ls() {
    SubprocessResult ls = Kelpie({"ls"});
    EXPECT_TRUE(ls.Succeeded()) << ls.stderr_text;
    return ls.stdout_text;
  }

  TempDir data_;
  TempDir registry_dir_;
  std::unique_ptr<LocalRegistry> registry_;
};

TEST_F(ImagePullTest, PullStoresImageAndLsShowsIt) {
  StartRegistry();
  auto pushed = registry_->PushBusybox("tools/busybox", "1.35");
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  const std::string ref = registry_->host() + "/tools/busybox:1.35";

  SubprocessResult pull = Pull(ref);
  ASSERT_TRUE(pull.Succeeded()) << pull.stderr_text;
  EXPECT_NE(pull.stdout_text.find("pulled " + ref + " (" + pushed->digest), std::string::npos) << pull.stdout_text;
  EXPECT_NE(Ls().find(ref), std::string::npos);

  SubprocessResult inspect = Kelpie({"inspect", ref});
  ASSERT_TRUE(inspect.Succeeded()) << inspect.stderr_text;
  nlohmann::json doc = nlohmann::json::parse(inspect.stdout_text, nullptr, false);
  EXPECT_EQ(doc.value("manifestDigest", ""), pushed->digest);

  // The layers unpack: the pulled blobs are what the config's diff_ids promise.
  SubprocessResult prepare = Kelpie({"prepare", ref});
  ASSERT_TRUE(prepare.Succeeded()) << prepare.stderr_text;
  nlohmann::json prepared = nlohmann::json::parse(prepare.stdout_text, nullptr, false);
  ASSERT_TRUE(prepared.is_object()) << prepare.stdout_text;
  std::string lower = prepared.value("lowerdir", "");
  EXPECT_TRUE(PathExists(lower + "/bin/busybox")) << prepare.stdout_text;

  // By digest too, and again (everything already stored).
  SubprocessResult by_digest = Pull(registry_->host() + "/tools/busybox@" + pushed->digest);
  ASSERT_TRUE(by_digest.Succeeded()) << by_digest.stderr_text;
  EXPECT_NE(Ls().find("tools/busybox@" + pushed->digest), std::string::npos);
}

TEST_F(ImagePullTest, PlainHttpOnlyForInsecureRegistries) {
  StartRegistry();
  ASSERT_TRUE(registry_->PushBusybox("tools/busybox", "latest").ok());
  // Without --insecure-registry the client speaks TLS to the plain HTTP registry and fails.
  SubprocessResult pull = Kelpie({"pull", registry_->host() + "/tools/busybox"});
  EXPECT_FALSE(pull.Succeeded());
  EXPECT_NE(pull.stderr_text.find("https://" + registry_->host()), std::string::npos) << pull.stderr_text;
  EXPECT_EQ(Ls().find("tools/busybox"), std::string::npos);
}

TEST_F(ImagePullTest, MissingImageIsNotFound) {
  StartRegistry();
  SubprocessResult pull = Pull(registry_->host() + "/tools/nothing:1");
  EXPECT_FALSE(pull.Succeeded());
  EXPECT_NE(pull.stderr_text.find("HTTP 404"), std::string::npos) << pull.stderr_text;
}

TEST_F(ImagePullTest, DamagedBlobInRegistryIsRefused) {
  StartRegistry();
  auto pushed = registry_->PushBusybox("tools/busybox", "1.35");
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  // Find the layer and flip bytes of its stored data (same size), so the
  // registry serves content that does not hash to the layer's digest.
  auto manifest_text = ReadFileToString(registry_->BlobDataPath(pushed->digest));
  ASSERT_TRUE(manifest_text.ok()) << manifest_text.status();
  nlohmann::json manifest = nlohmann::json::parse(*manifest_text);
  std::string layer_digest = manifest["layers"][0]["digest"];
  std::string layer_path = registry_->BlobDataPath(layer_digest);
  {
    std::fstream f(layer_path, std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(f.good()) << layer_path;
    f.seekp(100);
    f.write("DAMAGED", 7);
  }
  SubprocessResult pull = Pull(registry_->host() + "/tools/busybox:1.35");
  EXPECT_FALSE(pull.Succeeded());
  EXPECT_NE(pull.stderr_text.find("blob " + layer_digest + " is corrupt"), std::string::npos) << pull.stderr_text;
  EXPECT_EQ(Ls().find("tools/busybox"), std::string::npos);
  // Nothing of the damaged download is kept.
  EXPECT_FALSE(PathExists(data_.path() + "/images/blobs/sha256/" + layer_digest.substr(7)));
  auto tmp = RunSubprocess({"find", data_.path() + "/images/tmp", "-type", "f"});
  ASSERT_TRUE(tmp.ok());
  EXPECT_EQ(tmp->stdout_text, "");
}

TEST_F(ImagePullTest, ManifestListPicksLinuxAmd64) {
  StartRegistry();
  auto arm = registry_->PushBusybox("tools/multi", "arm64-only", "arm64");
  auto amd = registry_->PushBusybox("tools/multi", "amd64-only", "amd64");
  ASSERT_TRUE(arm.ok()) << arm.status();
  ASSERT_TRUE(amd.ok()) << amd.status();
  ASSERT_NE(arm->digest, amd->digest);
  auto entry = [](const testing::PushedManifest& m, const char* arch) {
    return nlohmann::json{{"mediaType", m.media_type}, {"digest", m.digest}, {"size", m.size},
                          {"platform", {{"os", "linux"}, {"architecture", arch}}}};
  };
  nlohmann::json index = {{"schemaVersion", 2},
                          {"mediaType", "application/vnd.oci.image.index.v1+json"},
                          {"manifests", {entry(*arm, "arm64"), entry(*amd, "amd64")}}};
  auto pushed = registry_->PushManifest("tools/multi", "1.0", "application/vnd.oci.image.index.v1+json",
                                        index.dump());
  ASSERT_TRUE(pushed.ok()) << pushed.status();

  const std::string ref = registry_->host() + "/tools/multi:1.0";
  SubprocessResult pull = Pull(ref);
  ASSERT_TRUE(pull.Succeeded()) << pull.stderr_text;
  SubprocessResult inspect = Kelpie({"ls", "-o", "json"});
  nlohmann::json list = nlohmann::json::parse(inspect.stdout_text, nullptr, false);
  ASSERT_TRUE(list.is_array()) << inspect.stdout_text;
  bool found = false;
  for (const auto& r : list) {
    if (r.value("reference", "") == ref) {
      found = true;
      EXPECT_EQ(r.value("manifestDigest", ""), amd->digest);
    }
  }
  EXPECT_TRUE(found) << inspect.stdout_text;

  // An index without linux/amd64 is an error naming what it has.
  nlohmann::json arm_only = {{"schemaVersion", 2},
                             {"mediaType", "application/vnd.docker.distribution.manifest.list.v2+json"},
                             {"manifests", {entry(*arm, "arm64")}}};
  arm_only["manifests"][0]["mediaType"] = arm->media_type;
  ASSERT_TRUE(registry_->PushManifest("tools/multi", "arm", "application/vnd.docker.distribution.manifest.list.v2+json",
                                      arm_only.dump())
                  .ok());
  SubprocessResult refused = Pull(registry_->host() + "/tools/multi:arm");
  EXPECT_FALSE(refused.Succeeded());
  EXPECT_NE(refused.stderr_text.find("no linux/amd64 image (it has: linux/arm64)"), std::string::npos)
      << refused.stderr_text;
}

// ---------------------------------------------------------------------------
// Token endpoint test double: answers GET /token?service=..&scope=.. with a
// JWT (RS256, the certificate in x5c) that docker-registry's token auth
// verifies against the certificate. Anonymous callers get pull access to
// repositories under "public/"; callers with the right basic credentials
// get what they ask for; wrong credentials get 401.
class TokenEndpoint {
 public:
  TokenEndpoint(std::string key_pem, std::string cert_der_b64, std::string user, std::string password)
      : key_pem_(std::move(key_pem)), cert_der_b64_(std::move(cert_der_b64)), user_(user), password_(password) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    ::listen(fd_, 16);
    thread_ = std::thread([this] { Serve(); });
  }
  ~TokenEndpoint() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  int port() const { return port_; }
  int requests() const { return requests_; }

 private:
  static std::string B64Url(absl::string_view in) {
    std::string out;
    absl::WebSafeBase64Escape(in, &out);  // no padding
    return out;
  }
  std::string Sign(const std::string& input) {
    BIO* bio = BIO_new_mem_buf(key_pem_.data(), static_cast<int>(key_pem_.size()));
    EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    size_t size = 0;
    std::string sig;
    if (key && EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key) == 1 &&
        EVP_DigestSign(ctx, nullptr, &size, reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1) {
      sig.resize(size);
      EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &size,
                     reinterpret_cast<const unsigned char*>(input.data()), input.size());
      sig.resize(size);
    }
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);
    return sig;
  }
  std::string Token(const std::string& service, const std::string& scope, bool authenticated) {
    nlohmann::json access = nlohmann::json::array();
    // scope = repository:<name>:<actions>
    std::vector<std::string> parts = absl::StrSplit(scope, ':');
    if (parts.size() == 3 && parts[0] == "repository") {
      std::vector<std::string> actions = absl::StrSplit(parts[2], ',');
      if (!authenticated) {
        actions.clear();
        if (absl::StartsWith(parts[1], "public/")) actions.push_back("pull");
      }
      access.push_back({{"type", "repository"}, {"name", parts[1]}, {"actions", actions}});
    }
    int64_t now = std::time(nullptr);
    nlohmann::json header = {{"alg", "RS256"}, {"typ", "JWT"}, {"x5c", {cert_der_b64_}}};
    nlohmann::json claims = {{"iss", "kelpie-test-issuer"}, {"sub", authenticated ? user_ : ""},
                             {"aud", service}, {"exp", now + 300}, {"nbf", now - 10}, {"iat", now},
                             {"jti", absl::StrCat("t", requests_.load())}, {"access", access}};
    std::string input = B64Url(header.dump()) + "." + B64Url(claims.dump());
    return input + "." + B64Url(Sign(input));
  }
  void Serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      int conn = ::accept(fd_, nullptr, nullptr);
      if (conn < 0) continue;
      std::string request;
      char buf[4096];
      for (int i = 0; i < 100 && request.find("\r\n\r\n") == std::string::npos; ++i) {
        pollfd cp{conn, POLLIN, 0};
        if (::poll(&cp, 1, 100) <= 0) continue;
        ssize_t n = ::read(conn, buf, sizeof(buf));
        if (n <= 0) break;
        request.append(buf, static_cast<size_t>(n));
      }
      ++requests_;
      std::string first = request.substr(0, request.find("\r\n"));
      std::string target = first.substr(first.find(' ') + 1);
      target = target.substr(0, target.find(' '));
      std::string query = target.substr(target.find('?') + 1);
      std::string service, scope;
      for (absl::string_view kv : absl::StrSplit(query, '&')) {
        auto eq = kv.find('=');
        std::string key(kv.substr(0, eq));
        std::string value = http::PercentDecode(std::string(kv.substr(eq + 1)), true);
        if (key == "service") service = value;
        if (key == "scope") scope = value;
      }
      bool authenticated = false, bad_credentials = false;
      std::string lower = absl::AsciiStrToLower(request);
      if (auto at = lower.find("\r\nauthorization: basic "); at != std::string::npos) {
        size_t start = at + std::strlen("\r\nauthorization: basic ");
        std::string encoded = request.substr(start, request.find("\r\n", start) - start);
        auto decoded = Base64Decode(encoded);
        authenticated = decoded && *decoded == user_ + ":" + password_;
        bad_credentials = !authenticated;
      }
      std::string response;
      if (bad_credentials) {
        response = "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      } else {
        std::string body = nlohmann::json{{"token", Token(service, scope, authenticated)}, {"expires_in", 300}}.dump();
        response = absl::StrCat("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ", body.size(),
                                "\r\nConnection: close\r\n\r\n", body);
      }
      (void)!::write(conn, response.data(), response.size());
      ::close(conn);
    }
  }

  std::string key_pem_, cert_der_b64_, user_, password_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::thread thread_;
};

TEST_F(ImagePullTest, BearerTokenAuthWithPullSecretCredentials) {
  TempDir keys;
  auto gen = RunSubprocess({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", keys.File("key.pem"),
                            "-out", keys.File("cert.pem"), "-days", "1", "-subj", "/CN=kelpie-test-token-issuer"});
  ASSERT_TRUE(gen.ok() && gen->Succeeded()) << (gen.ok() ? gen->stderr_text : gen.status().ToString());
  auto der = RunSubprocess({"openssl", "x509", "-in", keys.File("cert.pem"), "-outform", "DER", "-out",
                            keys.File("cert.der")});
  ASSERT_TRUE(der.ok() && der->Succeeded());
  auto key_pem = ReadFileToString(keys.File("key.pem"));
  auto cert_der = ReadFileToString(keys.File("cert.der"));
  ASSERT_TRUE(key_pem.ok() && cert_der.ok());
  TokenEndpoint tokens(*key_pem, Base64Encode(*cert_der), "puller", "s3cret");

  testing::LocalRegistryOptions options;
  options.token_realm = absl::StrCat("http://127.0.0.1:", tokens.port(), "/token");
  options.token_cert_file = keys.File("cert.pem");
  StartRegistry(options);

  image::RegistryCredentials creds{"puller", "s3cret", ""};
  auto priv = registry_->PushBusybox("private/busybox", "1", "amd64", creds);
  ASSERT_TRUE(priv.ok()) << priv.status();
  auto pub = registry_->PushBusybox("public/busybox", "1", "amd64", creds);
  ASSERT_TRUE(pub.ok()) << pub.status();

  // Anonymous token: enough for public/, refused for private/.
  SubprocessResult anon_public = Pull(registry_->host() + "/public/busybox:1");
  EXPECT_TRUE(anon_public.Succeeded()) << anon_public.stderr_text;
  SubprocessResult anon_private = Pull(registry_->host() + "/private/busybox:1");
  EXPECT_FALSE(anon_private.Succeeded());
  EXPECT_NE(anon_private.stderr_text.find("HTTP 401"), std::string::npos) << anon_private.stderr_text;

  // Credentials from a .dockerconfigjson document (the "auth" form).
  std::string config = nlohmann::json{{"auths", {{registry_->host(), {{"auth", Base64Encode("puller:s3cret")}}}}}}.dump();
  ASSERT_TRUE(WriteFileAtomically(keys.File("config.json"), config, 0600).ok());
  int before = tokens.requests();
  SubprocessResult with_creds = Pull(registry_->host() + "/private/busybox:1", {"--docker-config", keys.File("config.json")});
  ASSERT_TRUE(with_creds.Succeeded()) << with_creds.stderr_text;
  EXPECT_GT(tokens.requests(), before);
  EXPECT_NE(Ls().find(registry_->host() + "/private/busybox:1"), std::string::npos);

  // Wrong credentials: the token endpoint's 401 is the error.
  std::string wrong = nlohmann::json{{"auths", {{registry_->host(), {{"username", "puller"}, {"password", "nope"}}}}}}.dump();
  ASSERT_TRUE(WriteFileAtomically(keys.File("wrong.json"), wrong, 0600).ok());
  ASSERT_TRUE(Kelpie({"rm", registry_->host() + "/private/busybox:1"}).Succeeded());
  SubprocessResult refused = Pull(registry_->host() + "/private/busybox:1", {"--docker-config", keys.File("wrong.json")});
  EXPECT_FALSE(refused.Succeeded());
  EXPECT_NE(refused.stderr_text.find("token endpoint"), std::string::npos) << refused.stderr_text;
}

}  // namespace
}  // namespace kelpie
