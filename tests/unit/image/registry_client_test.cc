// The registry client and the puller over a scripted transport: reference
// splitting, WWW-Authenticate parsing, docker config credentials, the
// bearer-token retry, index resolution to linux/amd64, and refusal of
// content that does not hash to its digest.
#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/base64.h"
#include "orchestrator/runtime/image/byte_source.h"
#include "orchestrator/runtime/image/digest.h"
#include "orchestrator/runtime/image/image_puller.h"
#include "orchestrator/runtime/image/image_store.h"
#include "orchestrator/runtime/image/registry_client.h"
#include "orchestrator/runtime/image/registry_reference.h"
#include "tests/testing/busybox_image.h"
#include "tests/testing/test_env.h"

namespace kelpie::image {
namespace {

// Answers by URL (query stripped); records every request.
class ScriptedTransport : public RegistryTransport {
 public:
  std::map<std::string, std::function<RegistryHttpResponse(const RegistryHttpRequest&)>> routes;
  std::vector<RegistryHttpRequest> requests;

  absl::StatusOr<RegistryHttpResponse> Send(const RegistryHttpRequest& request,
                                            const std::function<absl::Status(absl::string_view)>* sink) override {
    requests.push_back(request);
    std::string path = request.url.substr(0, request.url.find('?'));
    auto it = routes.find(path);
    RegistryHttpResponse response;
    if (it == routes.end()) {
      response.status = 404;
      response.body = R"({"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]})";
      return response;
    }
    response = it->second(request);
    if (sink && response.status >= 200 && response.status < 300) {
      // Hand the body over in pieces, as a network would.
      for (size_t i = 0; i < response.body.size(); i += 1000) {
        absl::Status st = (*sink)(absl::string_view(response.body).substr(i, 1000));
        if (!st.ok()) return st;
      }
      response.body.clear();
    }
    return response;
  }
};

RegistryHttpResponse Ok(std::string body, std::string content_type = "") {
  RegistryHttpResponse r;
  r.status = 200;
  r.body = std::move(body);
  if (!content_type.empty()) r.headers.emplace_back("content-type", content_type);
  return r;
}

std::string HeaderOf(const RegistryHttpRequest& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return "";
}

TEST(RegistryReferenceTest, SplitsWithDockerHubDefaults) {
  auto r = ParseRegistryReference("busybox");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->registry, "docker.io");
  EXPECT_EQ(r->ApiHost(), "registry-1.docker.io");
  EXPECT_EQ(r->repository, "library/busybox");
  EXPECT_EQ(r->ManifestReference(), "latest");
  auto d = ParseRegistryReference("localhost:5000/team/app@sha256:" + std::string(64, 'a'));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->registry, "localhost:5000");
  EXPECT_EQ(d->ApiHost(), "localhost:5000");
  EXPECT_EQ(d->repository, "team/app");
  EXPECT_EQ(d->ManifestReference(), "sha256:" + std::string(64, 'a'));
  auto t = ParseRegistryReference("quay.io/org/tool:v1.2");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->repository, "org/tool");
  EXPECT_EQ(t->tag, "v1.2");
  EXPECT_FALSE(ParseRegistryReference("Upper/Case").ok());
}

TEST(RegistryAuthTest, ParsesBearerChallengeWithQuotedCommas) {
  auto c = ParseAuthChallenge(
      R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a/b:pull,push")");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->scheme, "bearer");
  EXPECT_EQ(c->realm, "https://auth.docker.io/token");
  EXPECT_EQ(c->service, "registry.docker.io");
  EXPECT_EQ(c->scope, "repository:a/b:pull,push");
  auto basic = ParseAuthChallenge(R"(Basic realm="Registry Realm")");
  ASSERT_TRUE(basic.has_value());
  EXPECT_EQ(basic->scheme, "basic");
}

TEST(RegistryAuthTest, DockerConfigCredentials) {
  std::string config = nlohmann::json{
      {"auths",
       {{"https://index.docker.io/v1/", {{"auth", Base64Encode("hubuser:hubpass")}}},
        {"registry.example.com:5000", {{"username", "u"}, {"password", "p"}}}}}}.dump();
  auto hub = FindDockerConfigCredentials(config, "docker.io");
  ASSERT_TRUE(hub.ok() && hub->has_value());
  EXPECT_EQ((*hub)->username, "hubuser");
  EXPECT_EQ((*hub)->password, "hubpass");
  auto other = FindDockerConfigCredentials(config, "registry.example.com:5000");
  ASSERT_TRUE(other.ok() && other->has_value());
  EXPECT_EQ((*other)->username, "u");
  auto none = FindDockerConfigCredentials(config, "quay.io");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  EXPECT_FALSE(FindDockerConfigCredentials("not json", "quay.io").ok());
  EXPECT_FALSE(FindDockerConfigCredentials(R"({"auths":{"q.io":{"auth":"bm9jb2xvbg=="}}})", "q.io").ok());
}

TEST(RegistryClientTest, BearerChallengeFetchesTokenWithCredentialsAndRetries) {
  ScriptedTransport t;
  const std::string manifest = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]})";
  t.routes["https://reg.example/v2/team/app/manifests/1.0"] = [&](const RegistryHttpRequest& r) {
    if (HeaderOf(r, "Authorization") == "Bearer tok-123") return Ok(manifest);
    RegistryHttpResponse challenge;
    challenge.status = 401;
    challenge.headers.emplace_back(
        "www-authenticate", R"(Bearer realm="https://auth.example/token",service="reg.example",scope="repository:team/app:pull")");
    return challenge;
  };
  t.routes["https://auth.example/token"] = [](const RegistryHttpRequest&) { return Ok(R"({"token":"tok-123"})"); };
  RegistryClient client(t, "reg.example", false, RegistryCredentials{"me", "pw", ""});
  auto m = client.GetManifest("team/app", "1.0");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->digest, Sha256Digest(manifest));
  EXPECT_EQ(m->media_type, "application/vnd.oci.image.manifest.v1+json");
  ASSERT_EQ(t.requests.size(), 3u);
  EXPECT_TRUE(absl::StrContains(t.requests[0].url, "/manifests/1.0"));
  EXPECT_TRUE(absl::StrContains(HeaderOf(t.requests[0], "Accept"), "application/vnd.oci.image.index.v1+json"));
  EXPECT_TRUE(absl::StrContains(HeaderOf(t.requests[0], "Accept"),
                                "application/vnd.docker.distribution.manifest.list.v2+json"));
  EXPECT_EQ(t.requests[1].url,
            "https://auth.example/token?service=reg.example&scope=repository%3Ateam%2Fapp%3Apull");
  EXPECT_EQ(t.requests[1].basic_user, "me");
  EXPECT_EQ(t.requests[1].basic_password, "pw");
  EXPECT_EQ(HeaderOf(t.requests[2], "Authorization"), "Bearer tok-123");
  // The token is reused for the next request.
  EXPECT_TRUE(client.GetManifest("team/app", "1.0").ok());
  EXPECT_EQ(t.requests.size(), 4u);
}

TEST(RegistryClientTest, ServedDigestMismatchAndSchema1AreRefused) {
  ScriptedTransport t;
  t.routes["https://reg.example/v2/a/manifests/x"] = [](const RegistryHttpRequest&) {
    RegistryHttpResponse r = Ok(R"({"schemaVersion":2,"config":{},"layers":[]})");
    r.headers.emplace_back("docker-content-digest", "sha256:" + std::string(64, '0'));
    return r;
  };
  t.routes["https://reg.example/v2/a/manifests/old"] = [](const RegistryHttpRequest&) {
    return Ok(R"({"schemaVersion":1,"fsLayers":[]})");
  };
  RegistryClient client(t, "reg.example", false, std::nullopt);
  auto m = client.GetManifest("a", "x");
  EXPECT_EQ(m.status().code(), absl::StatusCode::kDataLoss) << m.status();
  auto old = client.GetManifest("a", "old");
  EXPECT_EQ(old.status().code(), absl::StatusCode::kUnimplemented) << old.status();
  auto missing = client.GetManifest("a", "nope");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StrContains(missing.status().message(), "manifest_unknown: manifest unknown"))
      << missing.status();
}

class ImagePullerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = ImageStore::Open(dir_.path());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    layer_ = GzipCompress("not really a tar, never unpacked here");
    std::string diff_id = Sha256Digest("uncompressed");
    testing::OciImageSpec spec;
    config_ = testing::ImageConfigJson(spec, {diff_id});
    manifest_ = nlohmann::json{
        {"schemaVersion", 2},
        {"mediaType", "application/vnd.docker.distribution.manifest.v2+json"},
        {"config", {{"mediaType", "application/vnd.docker.container.image.v1+json"}, {"digest", Sha256Digest(config_)},
                    {"size", config_.size()}}},
        {"layers", {{{"mediaType", "application/vnd.docker.image.rootfs.diff.tar.gzip"},
                     {"digest", Sha256Digest(layer_)}, {"size", layer_.size()}}}}}.dump();
    nlohmann::json index = {
        {"schemaVersion", 2},
        {"mediaType", "application/vnd.docker.distribution.manifest.list.v2+json"},
        {"manifests",
         {{{"digest", "sha256:" + std::string(64, 'b')}, {"platform", {{"os", "linux"}, {"architecture", "arm64"}}}},
          {{"digest", Sha256Digest(manifest_)}, {"platform", {{"os", "linux"}, {"architecture", "amd64"}}}}}}};
    index_ = index.dump();
    const std::string base = "https://reg.example/v2/team/app/";
    transport_.routes[base + "manifests/multi"] = [this](const RegistryHttpRequest&) { return Ok(index_); };
    transport_.routes[base + "manifests/" + Sha256Digest(manifest_)] = [this](const RegistryHttpRequest&) {
      return Ok(manifest_);
    };
    transport_.routes[base + "blobs/" + Sha256Digest(config_)] = [this](const RegistryHttpRequest&) {
      return Ok(config_);
    };
    transport_.routes[base + "blobs/" + Sha256Digest(layer_)] = [this](const RegistryHttpRequest&) {
      return Ok(served_layer_.empty() ? layer_ : served_layer_);
    };
    puller_ = std::make_unique<ImagePuller>(*store_, ImagePullerOptions{}, [this](bool plain_http) {
      EXPECT_FALSE(plain_http);
      struct Forward : RegistryTransport {
        explicit Forward(ScriptedTransport& t) : t(t) {}
        absl::StatusOr<RegistryHttpResponse> Send(const RegistryHttpRequest& r,
                                                  const std::function<absl::Status(absl::string_view)>* s) override {
          return t.Send(r, s);
        }
        ScriptedTransport& t;
      };
      return std::make_unique<Forward>(transport_);
    });
  }

  testing::TempDir dir_;
  std::unique_ptr<ImageStore> store_;
  ScriptedTransport transport_;
  std::unique_ptr<ImagePuller> puller_;
  std::string layer_, config_, manifest_, index_, served_layer_;
};

TEST_F(ImagePullerTest, ManifestListResolvesToLinuxAmd64AndBlobsAreStored) {
  auto record = puller_->Pull("reg.example/team/app:multi");
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(record->reference, "reg.example/team/app:multi");
  EXPECT_EQ(record->manifest_digest, Sha256Digest(manifest_));
  EXPECT_TRUE(store_->content().Contains(Sha256Digest(layer_)));
  EXPECT_TRUE(store_->content().Contains(Sha256Digest(config_)));
  EXPECT_TRUE(store_->Get("reg.example/team/app:multi").ok());
  // A second pull downloads no blob again.
  size_t before = transport_.requests.size();
  ASSERT_TRUE(puller_->Pull("reg.example/team/app:multi").ok());
  EXPECT_EQ(transport_.requests.size(), before + 2);  // index + manifest
}

TEST_F(ImagePullerTest, BlobNotMatchingItsDigestIsRefusedAndNothingRecorded) {
  served_layer_ = layer_;
  served_layer_[served_layer_.size() / 2] ^= 0x55;
  auto record = puller_->Pull("reg.example/team/app:multi");
  ASSERT_FALSE(record.ok());
  EXPECT_EQ(record.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(absl::StrContains(record.status().message(), Sha256Digest(layer_) + " is corrupt")) << record.status();
  EXPECT_FALSE(store_->content().Contains(Sha256Digest(layer_)));
  EXPECT_FALSE(store_->Get("reg.example/team/app:multi").ok());
  // A longer body than the descriptor says is cut off as soon as it is.
  served_layer_ = layer_ + "trailing";
  auto longer = puller_->Pull("reg.example/team/app:multi");
  EXPECT_EQ(longer.status().code(), absl::StatusCode::kDataLoss) << longer.status();
}

TEST_F(ImagePullerTest, DigestReferenceMustMatch) {
  auto wrong = puller_->Pull("reg.example/team/app@" + Sha256Digest(manifest_));
  ASSERT_TRUE(wrong.ok()) << wrong.status();
  EXPECT_EQ(wrong->reference, "reg.example/team/app@" + Sha256Digest(manifest_));
  transport_.routes["https://reg.example/v2/team/app/manifests/sha256:" + std::string(64, 'c')] =
      [this](const RegistryHttpRequest&) { return Ok(manifest_); };
  auto bad = puller_->Pull("reg.example/team/app@sha256:" + std::string(64, 'c'));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kDataLoss) << bad.status();
}

}  // namespace
}  // namespace kelpie::image
