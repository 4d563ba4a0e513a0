// Static token file: kube-apiserver's CSV format, errors that name the line.
#include <gtest/gtest.h>

#include "common/files.h"
#include "orchestrator/apiserver/authenticator.h"
#include "orchestrator/apiserver/token_file.h"
#include "tests/testing/test_env.h"

namespace kelpie::apiserver {
namespace {

TEST(TokenFile, ParsesUsersUidsAndGroups) {
  auto a = StaticTokenAuthenticator::Parse(
      "# comment\n"
      "tok1,jane,uid-1,\"dev,ops\"\n"
      "\n"
      "tok2, bob ,uid-2\r\n"
      "tok3,\"carol, the admin\",uid-3,system:masters\n",
      "tokens.csv");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ((*a)->size(), 3u);
  AuthenticationResult r = (*a)->AuthenticateToken("tok1", {});
  ASSERT_TRUE(r.authenticated());
  EXPECT_EQ(r.user.name, "jane");
  EXPECT_EQ(r.user.uid, "uid-1");
  EXPECT_EQ(r.user.groups, (std::vector<std::string>{"dev", "ops"}));
  EXPECT_EQ((*a)->AuthenticateToken("tok2", {}).user.name, "bob");
  EXPECT_TRUE((*a)->AuthenticateToken("tok2", {}).user.groups.empty());
  EXPECT_EQ((*a)->AuthenticateToken("tok3", {}).user.name, "carol, the admin");
  EXPECT_EQ((*a)->AuthenticateToken("tok3", {}).user.groups, std::vector<std::string>{"system:masters"});
  EXPECT_EQ((*a)->AuthenticateToken("nope", {}).outcome, AuthenticationResult::Outcome::kNoCredentials);
}

TEST(TokenFile, ErrorsNameFileAndLine) {
  struct Case {
    std::string contents;
    std::string error;
  } cases[] = {
      {"tok,jane\n", "t.csv:1: expected at least 3 columns (token, user name, user uid), found 2"},
      {"ok,a,1\n\ntok,\"jane,uid\n", "t.csv:3: a quoted field is not closed"},
      {"tok,ja\"ne,1\n", "t.csv:1: a '\"' inside an unquoted field"},
      {",jane,1\n", "t.csv:1: the token is empty"},
      {"tok,,1\n", "t.csv:1: the user name is empty"},
      {"tok,jane,1,dev,ops\n", "t.csv:1: expected at most 4 columns"},
      {"tok,jane,1\n# x\ntok,bob,2\n", "t.csv:3: the same token as line 1"},
  };
  for (const auto& c : cases) {
    auto a = StaticTokenAuthenticator::Parse(c.contents, "t.csv");
    ASSERT_FALSE(a.ok()) << c.contents;
    EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(std::string(a.status().message()).rfind(c.error, 0) == 0)
        << "got: " << a.status().message() << "\nwant prefix: " << c.error;
  }
}

TEST(TokenFile, ReadsFromDisk) {
  testing::TempDir dir;
  ASSERT_TRUE(WriteFileAtomically(dir.File("tokens.csv"), "abc,jane,1\nabc,x,2\n", 0600).ok());
  auto a = StaticTokenAuthenticator::FromFile(dir.File("tokens.csv"));
  ASSERT_FALSE(a.ok());
  EXPECT_NE(std::string(a.status().message()).find(dir.File("tokens.csv") + ":2:"), std::string::npos)
      << a.status().message();
  auto missing = StaticTokenAuthenticator::FromFile(dir.File("absent.csv"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(std::string(missing.status().message()).find("absent.csv"), std::string::npos);
}

TEST(RequestAuthenticator, CertificatesThenTokensAndRejection) {
  auto tokens = StaticTokenAuthenticator::Parse("good,jane,1,dev\n", "t");
  ASSERT_TRUE(tokens.ok());
  RequestAuthenticator authn;
  authn.AddTokenAuthenticator(std::shared_ptr<TokenAuthenticator>(std::move(*tokens)));

  http::HttpRequest anonymous;
  EXPECT_EQ(authn.Authenticate(anonymous).outcome, AuthenticationResult::Outcome::kNoCredentials);

  http::HttpRequest bearer;
  bearer.headers = {{"authorization", "Bearer good"}};
  AuthenticationResult r = authn.Authenticate(bearer);
  ASSERT_TRUE(r.authenticated());
  EXPECT_EQ(r.user.groups, (std::vector<std::string>{"dev", "system:authenticated"}));

  http::HttpRequest bad = bearer;
  bad.headers = {{"authorization", "Bearer wrong"}};
  EXPECT_EQ(authn.Authenticate(bad).outcome, AuthenticationResult::Outcome::kRejected);

  http::HttpRequest cert = bad;  // the certificate wins, as on kube-apiserver
  cert.peer.has_client_certificate = true;
  cert.peer.common_name = "admin";
  cert.peer.organizations = {"system:masters"};
  r = authn.Authenticate(cert);
  ASSERT_TRUE(r.authenticated());
  EXPECT_EQ(r.user.name, "admin");
  EXPECT_TRUE(r.user.InGroup("system:masters"));
  EXPECT_TRUE(r.user.InGroup("system:authenticated"));
}

}  // namespace
}  // namespace kelpie::apiserver
