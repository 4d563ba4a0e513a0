// Join tokens: parsing with errors that never echo the secret, the server's
// token file kept across restarts and following --token, and node
// certificates issued for a key the agent keeps.
#include "orchestrator/pki/join_token.h"

#include <gtest/gtest.h>

#include "common/files.h"
#include "common/tls/certificates.h"
#include "tests/testing/test_env.h"

namespace kelpie::pki {
namespace {

const std::string kHash(64, 'a');

TEST(JoinTokenTest, ParsesAndRejectsWithReasons) {
  auto t = ParseJoinToken("K10" + kHash + "::node:0123456789abcdef\n");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->ca_hash, kHash);
  EXPECT_EQ(t->secret, "node:0123456789abcdef");
  EXPECT_EQ(t->ToString(), "K10" + kHash + "::node:0123456789abcdef");

  struct Case {
    std::string text, error;
  } cases[] = {
      {"hello", "starts with K10"},
      {"K10" + kHash, "has the form"},
      {"K10abc::node:0123456789abcdef", "not 64 hex digits"},
      {"K10" + std::string(64, 'z') + "::node:0123456789abcdef", "not 64 hex digits"},
      {"K10" + kHash + "::short", "shorter than 16"},
      {"K10" + kHash + "::has a space in it!!", "printable characters without spaces"},
  };
  for (const auto& c : cases) {
    auto r = ParseJoinToken(c.text);
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_NE(r.status().message().find(c.error), std::string::npos) << c.text << ": " << r.status();
  }
  auto secret_hidden = ParseJoinToken("K10" + kHash + "::tiny-secret");
  EXPECT_EQ(secret_hidden.status().message().find("tiny-secret"), std::string::npos);
}

TEST(JoinTokenTest, ServerTokenIsKeptAndFollowsTheFlag) {
  testing::TempDir dir;
  auto ca = tls::CreateCertificateAuthority("test-ca", std::chrono::hours(24));
  ASSERT_TRUE(ca.ok());
  auto hash = tls::PublicKeySha256(ca->certificate_pem);
  ASSERT_TRUE(hash.ok());
  const std::string path = dir.File("token");
  auto first = EnsureJoinToken(path, ca->certificate_pem);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->ca_hash, *hash);
  auto again = EnsureJoinToken(path, ca->certificate_pem);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->secret, first->secret);
  EXPECT_EQ(ReadFileToString(path).value_or(""), first->ToString() + "\n");

  auto fixed = EnsureJoinToken(path, ca->certificate_pem, "my-own-secret-1234");
  ASSERT_TRUE(fixed.ok()) << fixed.status();
  EXPECT_EQ(fixed->secret, "my-own-secret-1234");
  auto whole = EnsureJoinToken(path, ca->certificate_pem, "K10" + *hash + "::another-secret-5678");
  ASSERT_TRUE(whole.ok()) << whole.status();
  EXPECT_EQ(whole->secret, "another-secret-5678");
  auto wrong_ca = EnsureJoinToken(path, ca->certificate_pem, "K10" + kHash + "::another-secret-5678");
  EXPECT_FALSE(wrong_ca.ok());
  EXPECT_TRUE(SecretsEqual("abc", "abc"));
  EXPECT_FALSE(SecretsEqual("abc", "abd"));
  EXPECT_FALSE(SecretsEqual("abc", "abcd"));
}

TEST(JoinTokenTest, CertificateForTheAgentsOwnKey) {
  auto ca = tls::CreateCertificateAuthority("test-ca", std::chrono::hours(24));
  ASSERT_TRUE(ca.ok());
  auto key = tls::GeneratePrivateKeyPem();
  ASSERT_TRUE(key.ok());
  auto pub = tls::PublicKeyPemOf(*key);
  ASSERT_TRUE(pub.ok());
  tls::CertificateRequest r;
  r.common_name = "system:node:a";
  r.organizations = {"system:nodes"};
  r.client_auth = true;
  auto cert = tls::IssueCertificateForPublicKey(*ca, r, *pub);
  ASSERT_TRUE(cert.ok()) << cert.status();
  EXPECT_TRUE(tls::IsSignedBy(*cert, ca->certificate_pem));
  auto info = tls::ParseCertificate(*cert);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->common_name, "system:node:a");
  EXPECT_EQ(info->organizations, std::vector<std::string>{"system:nodes"});
  EXPECT_FALSE(tls::IssueCertificateForPublicKey(*ca, r, "not a key").ok());
}

}  // namespace
}  // namespace kelpie::pki
