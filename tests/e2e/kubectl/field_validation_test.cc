// The fieldValidation query parameter against a real `kelpie server`:
// Strict rejects unknown fields, Warn (the default) drops them with Warning
// headers, Ignore drops them silently; kinds are checked against the schema.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "common/http/http_client.h"
#include "tests/testing/kelpie_server.h"
#include "tests/testing/test_env.h"

namespace kelpie {
namespace {

using nlohmann::json;

class FieldValidationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    auto s = testing::KelpieServer::Start(dir_->File("data"), testing::FreeTcpPort(), dir_->File("server.log"));
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = s->release();
  }
  static void TearDownTestSuite() {
    delete server_;
    delete dir_;
  }

  http::HttpResponse Request(const std::string& method, const std::string& target, const std::string& body = "") {
    auto client = server_->AdminClient();
    EXPECT_TRUE(client.ok());
    http::ClientRequest req{method, target, {{"Content-Type", "application/json"}}, body};
    auto r = (*client)->Do(req);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.value_or(http::HttpResponse{});
  }

  static std::vector<std::string> Warnings(const http::HttpResponse& r) {
    std::vector<std::string> out;
    for (const auto& [name, value] : r.headers) {
      if (absl::AsciiStrToLower(name) == "warning") out.push_back(value);
    }
    return out;
  }

  static testing::TempDir* dir_;
  static testing::KelpieServer* server_;
};

testing::TempDir* FieldValidationTest::dir_ = nullptr;
testing::KelpieServer* FieldValidationTest::server_ = nullptr;

std::string ConfigMap(const std::string& name) {
  return json{{"apiVersion", "v1"},
              {"kind", "ConfigMap"},
              {"metadata", {{"name", name}, {"colour", "red"}}},
              {"data", {{"a", "1"}}},
              {"extra", true}}
      .dump();
}

TEST_F(FieldValidationTest, StrictRejectsUnknownFields) {
  auto r = Request("POST", "/api/v1/namespaces/default/configmaps?fieldValidation=Strict", ConfigMap("strict"));
  EXPECT_EQ(r.status, 400) << r.body;
  json status = json::parse(r.body);
  EXPECT_EQ(status["reason"], "BadRequest");
  EXPECT_EQ(status["message"],
            "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: "
            "unknown field \"extra\", unknown field \"metadata.colour\"");
  EXPECT_EQ(Request("GET", "/api/v1/namespaces/default/configmaps/strict").status, 404);

  // A known body passes Strict.
  json ok = json::parse(ConfigMap("strict"));
  ok.erase("extra");
  ok["metadata"].erase("colour");
  r = Request("POST", "/api/v1/namespaces/default/configmaps?fieldValidation=Strict", ok.dump());
  EXPECT_EQ(r.status, 201) << r.body;

  // Update bodies are checked too.
  ok["spec"] = json::object();
  r = Request("PUT", "/api/v1/namespaces/default/configmaps/strict?fieldValidation=Strict", ok.dump());
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("unknown field \\\"spec\\\""), std::string::npos) << r.body;
}

TEST_F(FieldValidationTest, WarnIsTheDefaultAndDropsUnknownFields) {
  for (const std::string query : {"", "?fieldValidation=Warn"}) {
    std::string name = query.empty() ? "warn-default" : "warn";
    auto r = Request("POST", "/api/v1/namespaces/default/configmaps" + query, ConfigMap(name));
    ASSERT_EQ(r.status, 201) << r.body;
    EXPECT_EQ(Warnings(r), (std::vector<std::string>{R"(299 - "unknown field \"extra\"")",
                                                     R"(299 - "unknown field \"metadata.colour\"")"}));
    json stored = json::parse(Request("GET", "/api/v1/namespaces/default/configmaps/" + name).body);
    EXPECT_FALSE(stored.contains("extra"));
    EXPECT_FALSE(stored["metadata"].contains("colour"));
    EXPECT_EQ(stored["data"]["a"], "1");
  }
}

TEST_F(FieldValidationTest, IgnoreDropsSilently) {
  auto r = Request("POST", "/api/v1/namespaces/default/configmaps?fieldValidation=Ignore", ConfigMap("ignore"));
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_TRUE(Warnings(r).empty());
  EXPECT_FALSE(json::parse(r.body).contains("extra"));
}

TEST_F(FieldValidationTest, BadModeIsBadRequest) {
  auto r = Request("POST", "/api/v1/namespaces/default/configmaps?fieldValidation=Loose", ConfigMap("bad"));
  EXPECT_EQ(r.status, 400) << r.body;
}

TEST_F(FieldValidationTest, FieldsOfPartlyModelledTypesAreKept) {
  json pod = {{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata", {{"name", "kept"}}},
              {"spec",
               {{"containers", {{{"name", "c"}, {"image", "busybox"}, {"lifecycle", json::object()}}}},
                {"affinity", {{"nodeAffinity", json::object()}}}}}};
  auto r = Request("POST", "/api/v1/namespaces/default/pods?fieldValidation=Strict", pod.dump());
  ASSERT_EQ(r.status, 201) << r.body;
  json stored = json::parse(Request("GET", "/api/v1/namespaces/default/pods/kept").body);
  EXPECT_TRUE(stored["spec"].contains("affinity"));
  EXPECT_TRUE(stored["spec"]["containers"][0].contains("lifecycle"));
}

}  // namespace
}  // namespace kelpie
