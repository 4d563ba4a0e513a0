// Service-account JWTs: signing and verification (expiry, key, audience,
// issuer, tampering) and the authenticator's store checks.
#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "common/base64.h"
#include "orchestrator/apiserver/service_account_token.h"
#include "orchestrator/pki/service_account_key.h"
#include "orchestrator/store/embedded_store.h"
#include "tests/testing/test_env.h"

namespace kelpie::apiserver {
namespace {

using nlohmann::json;
using std::chrono::seconds;
using std::chrono::system_clock;

constexpr char kIssuer[] = "https://kubernetes.default.svc.cluster.local";

class ServiceAccountTokenTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    key_ = new pki::ServiceAccountKeyPem(*pki::CreateServiceAccountKey());
    other_key_ = new pki::ServiceAccountKeyPem(*pki::CreateServiceAccountKey());
  }
  static void TearDownTestSuite() {
    delete key_;
    delete other_key_;
  }

  ServiceAccountClaims Claims(int64_t now, int64_t lifetime = 3600) {
    ServiceAccountClaims c;
    c.issuer = kIssuer;
    c.audiences = {kIssuer, "vault"};
    c.issued_at = now;
    c.not_before = now;
    c.expires_at = now + lifetime;
    c.token_id = "jti-1";
    c.namespace_name = "default";
    c.service_account_name = "builder";
    c.service_account_uid = "sa-uid";
    return c;
  }
  static int64_t Now() { return std::chrono::duration_cast<seconds>(system_clock::now().time_since_epoch()).count(); }
  std::string Sign(const ServiceAccountClaims& c, const pki::ServiceAccountKeyPem& key) {
    auto signer = ServiceAccountTokenSigner::FromPem(key.private_key_pem);
    EXPECT_TRUE(signer.ok());
    auto token = (*signer)->Sign(c);
    EXPECT_TRUE(token.ok());
    return *token;
  }
  std::unique_ptr<ServiceAccountTokenVerifier> Verifier(const pki::ServiceAccountKeyPem& key) {
    return *ServiceAccountTokenVerifier::FromPem(key.public_key_pem);
  }

  static pki::ServiceAccountKeyPem* key_;
  static pki::ServiceAccountKeyPem* other_key_;
};
pki::ServiceAccountKeyPem* ServiceAccountTokenTest::key_ = nullptr;
pki::ServiceAccountKeyPem* ServiceAccountTokenTest::other_key_ = nullptr;

TEST_F(ServiceAccountTokenTest, RoundTripWithKubernetesClaims) {
  ServiceAccountClaims c = Claims(Now());
  c.pod_name = "web-1";
  c.pod_uid = "pod-uid";
  std::string token = Sign(c, *key_);
  // Header and claims as Kubernetes writes them.
  size_t a = token.find('.'), b = token.rfind('.');
  auto decode = [](std::string s) {
    for (auto& ch : s) ch = ch == '-' ? '+' : ch == '_' ? '/' : ch;
    while (s.size() % 4) s += '=';
    return json::parse(*Base64Decode(s));
  };
  json header = decode(token.substr(0, a));
  json payload = decode(token.substr(a + 1, b - a - 1));
  EXPECT_EQ(header["alg"], "RS256");
  EXPECT_FALSE(header.value("kid", "").empty());
  EXPECT_EQ(payload["sub"], "system:serviceaccount:default:builder");
  EXPECT_EQ(payload["kubernetes.io"]["serviceaccount"]["uid"], "sa-uid");
  EXPECT_EQ(payload["kubernetes.io"]["pod"]["name"], "web-1");

  auto v = Verifier(*key_)->Verify(token, kIssuer, {"vault"}, system_clock::now());
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->audiences, std::vector<std::string>{"vault"});
  EXPECT_EQ(v->pod_uid, "pod-uid");
}

TEST_F(ServiceAccountTokenTest, RejectsExpiredFutureWrongKeyAudienceIssuerAndTampering) {
  int64_t now = Now();
  auto verifier = Verifier(*key_);
  auto at = [](int64_t t) { return system_clock::time_point(seconds(t)); };
  std::string token = Sign(Claims(now, 600), *key_);
  // Expired (beyond the 60 s leeway).
  auto r = verifier->Verify(token, kIssuer, {kIssuer}, at(now + 600 + 61));
  EXPECT_EQ(r.status().message(), "the token has expired");
  EXPECT_TRUE(verifier->Verify(token, kIssuer, {kIssuer}, at(now + 600 + 30)).ok());  // leeway
  // Not valid yet.
  EXPECT_EQ(verifier->Verify(token, kIssuer, {kIssuer}, at(now - 120)).status().message(), "the token is not valid yet");
  // Another key.
  EXPECT_EQ(Verifier(*other_key_)->Verify(token, kIssuer, {kIssuer}, at(now)).status().message(),
            "the token's signature is invalid");
  // Audience.
  r = verifier->Verify(token, kIssuer, {"https://elsewhere"}, at(now));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message()).find("do not include any of [https://elsewhere]"), std::string::npos);
  // Issuer.
  EXPECT_FALSE(verifier->Verify(token, "https://other-issuer", {kIssuer}, at(now)).ok());
  // A changed claim breaks the signature.
  size_t a = token.find('.'), b = token.rfind('.');
  ServiceAccountClaims forged = Claims(now, 600);
  forged.service_account_name = "admin";
  std::string forged_token = Sign(forged, *other_key_);
  size_t fa = forged_token.find('.'), fb = forged_token.rfind('.');
  std::string spliced = token.substr(0, a) + forged_token.substr(fa, fb - fa) + token.substr(b);
  EXPECT_EQ(verifier->Verify(spliced, kIssuer, {kIssuer}, at(now)).status().message(),
            "the token's signature is invalid");
  EXPECT_FALSE(verifier->Verify("not.a.jwt", kIssuer, {kIssuer}, at(now)).ok());
  EXPECT_FALSE(verifier->Verify("abc", kIssuer, {kIssuer}, at(now)).ok());
}

class FakeLookup : public ServiceAccountLookup {
 public:
  absl::Status Check(const ServiceAccountClaims&) override { return status; }
  absl::Status status;
};

TEST_F(ServiceAccountTokenTest, AuthenticatorGivesServiceAccountIdentity) {
  auto lookup = std::make_shared<FakeLookup>();
  std::shared_ptr<const ServiceAccountTokenVerifier> verifier = Verifier(*key_);
  ServiceAccountTokenAuthenticator authn(verifier, kIssuer, lookup);
  std::string token = Sign(Claims(Now()), *key_);

  AuthenticationResult r = authn.AuthenticateToken(token, {kIssuer});
  ASSERT_TRUE(r.authenticated()) << r.error;
  EXPECT_EQ(r.user.name, "system:serviceaccount:default:builder");
  EXPECT_EQ(r.user.uid, "sa-uid");
  EXPECT_EQ(r.user.groups, (std::vector<std::string>{"system:serviceaccounts", "system:serviceaccounts:default"}));
  EXPECT_EQ(r.user.extra["authentication.kubernetes.io/credential-id"], std::vector<std::string>{"JTI=jti-1"});

  EXPECT_EQ(authn.AuthenticateToken(token, {"other-audience"}).outcome, AuthenticationResult::Outcome::kRejected);
  lookup->status = absl::NotFoundError("service account default/builder has been deleted");
  r = authn.AuthenticateToken(token, {kIssuer});
  EXPECT_EQ(r.outcome, AuthenticationResult::Outcome::kRejected);
  EXPECT_EQ(r.error, "service account default/builder has been deleted");
  // Tokens of another issuer and opaque tokens are someone else's.
  ServiceAccountClaims foreign = Claims(Now());
  foreign.issuer = "https://foreign";
  EXPECT_EQ(authn.AuthenticateToken(Sign(foreign, *key_), {kIssuer}).outcome,
            AuthenticationResult::Outcome::kNoCredentials);
  EXPECT_EQ(authn.AuthenticateToken("static-token", {kIssuer}).outcome, AuthenticationResult::Outcome::kNoCredentials);
}

TEST_F(ServiceAccountTokenTest, StoreLookupChecksObjectsAndUids) {
  testing::TempDir dir;
  store::EmbeddedStoreOptions o;
  o.data_dir = dir.File("store");
  auto store = store::EmbeddedStore::Open(o);
  ASSERT_TRUE(store.ok());
  auto lookup = StoreServiceAccountLookup(**store);
  ServiceAccountClaims c = Claims(Now());
  EXPECT_EQ(lookup->Check(c).code(), absl::StatusCode::kNotFound);
  json sa = {{"kind", "ServiceAccount"}, {"metadata", {{"name", "builder"}, {"namespace", "default"}, {"uid", "sa-uid"}}}};
  ASSERT_TRUE((*store)->Create("/registry/serviceaccounts/default/builder", sa.dump()).ok());
  EXPECT_TRUE(lookup->Check(c).ok());
  c.pod_name = "web-1";
  c.pod_uid = "pod-uid";
  EXPECT_EQ(lookup->Check(c).code(), absl::StatusCode::kNotFound);
  json pod = {{"kind", "Pod"}, {"metadata", {{"name", "web-1"}, {"namespace", "default"}, {"uid", "another-uid"}}}};
  ASSERT_TRUE((*store)->Create("/registry/pods/default/web-1", pod.dump()).ok());
  EXPECT_EQ(lookup->Check(c).code(), absl::StatusCode::kFailedPrecondition);  // recreated pod
  c.pod_uid = "another-uid";
  EXPECT_TRUE(lookup->Check(c).ok());
}

TEST(ServiceAccountKey, CreatedOnceAndKeptInStep) {
  testing::TempDir dir;
  bool created = false;
  auto first = pki::EnsureServiceAccountKey(dir.path(), &created);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(created);
  auto second = pki::EnsureServiceAccountKey(dir.path(), &created);
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(created);
  EXPECT_EQ(first->private_key_pem, second->private_key_pem);
  EXPECT_EQ(first->public_key_pem, second->public_key_pem);
  ASSERT_EQ(::unlink(dir.File("sa.key").c_str()), 0);
  auto orphan = pki::EnsureServiceAccountKey(dir.path(), &created);
  ASSERT_FALSE(orphan.ok());
  EXPECT_NE(std::string(orphan.status().message()).find("sa.key"), std::string::npos);
}

}  // namespace
}  // namespace kelpie::apiserver
