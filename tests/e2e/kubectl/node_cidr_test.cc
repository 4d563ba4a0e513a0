// Pod CIDRs for nodes, allocated by the API server from --cluster-cidr in
// the Node's own write: distinct, reused after deletion, immutable, and
// never handed out twice.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "common/http/http_client.h"
#include "tests/testing/kelpie_server.h"
#include "tests/testing/test_env.h"

namespace kelpie {
namespace {

using nlohmann::json;

class NodeCidrTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = testing::KelpieServer::Start(dir_.File("data"), testing::FreeTcpPort(), dir_.File("server.log"),
                                          {"--cluster-cidr=10.42.0.0/22", "--node-cidr-mask-size=24"});
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    auto c = server_->AdminClient();
    ASSERT_TRUE(c.ok());
    client_ = std::move(*c);
  }
  http::HttpResponse Call(const std::string& method, const std::string& target, const json& body = nullptr,
                          const std::string& type = "application/json") {
    auto r = client_->Do({method, target, {{"Content-Type", type}}, body.is_null() ? "" : body.dump()});
    EXPECT_TRUE(r.ok()) << r.status();
    return r.value_or(http::HttpResponse{});
  }
  http::HttpResponse CreateNode(const std::string& name, const std::string& cidr = "") {
    json node = {{"apiVersion", "v1"}, {"kind", "Node"}, {"metadata", {{"name", name}}}};
    if (!cidr.empty()) node["spec"]["podCIDR"] = cidr;
    return Call("POST", "/api/v1/nodes", node);
  }
  std::string PodCidr(const std::string& name) {
    json node = json::parse(Call("GET", "/api/v1/nodes/" + name).body, nullptr, false);
    return node.is_object() && node.contains("spec") ? node["spec"].value("podCIDR", "") : "";
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::KelpieServer> server_;
  std::unique_ptr<http::HttpClient> client_;
};

TEST_F(NodeCidrTest, EveryNodeGetsItsOwnRangeUntilTheClusterCidrIsFull) {
  std::set<std::string> cidrs;
  for (const char* name : {"n1", "n2", "n3", "n4"}) {
    auto r = CreateNode(name);
    ASSERT_EQ(r.status, 201) << r.body;
    cidrs.insert(PodCidr(name));
  }
  EXPECT_EQ(cidrs, (std::set<std::string>{"10.42.0.0/24", "10.42.1.0/24", "10.42.2.0/24", "10.42.3.0/24"}));
  json n1 = json::parse(Call("GET", "/api/v1/nodes/n1").body);
  EXPECT_EQ(n1["spec"]["podCIDRs"], json::array({n1["spec"]["podCIDR"]}));

  // A /22 holds four /24s.
  auto full = CreateNode("n5");
  EXPECT_EQ(full.status, 422) << full.body;
  EXPECT_NE(full.body.find("no pod CIDR left"), std::string::npos) << full.body;

  // Deleting a node frees its range for the next one.
  std::string freed = PodCidr("n2");
  ASSERT_EQ(Call("DELETE", "/api/v1/nodes/n2").status, 200);
  ASSERT_EQ(CreateNode("n6").status, 201);
  EXPECT_EQ(PodCidr("n6"), freed);

  // The range is immutable.
  auto changed = Call("PATCH", "/api/v1/nodes/n1", {{"spec", {{"podCIDR", "10.42.9.0/24"}}}},
                      "application/merge-patch+json");
  EXPECT_EQ(changed.status, 422) << changed.body;
  // Other updates keep it.
  auto labelled = Call("PATCH", "/api/v1/nodes/n1", {{"metadata", {{"labels", {{"zone", "a"}}}}}},
                       "application/merge-patch+json");
  EXPECT_EQ(labelled.status, 200) << labelled.body;
  EXPECT_EQ(PodCidr("n1"), n1["spec"]["podCIDR"].get<std::string>());
}

TEST_F(NodeCidrTest, RequestedRangesAreReservedAndNeverShared) {
  ASSERT_EQ(CreateNode("a", "10.42.2.0/24").status, 201);
  auto clash = CreateNode("b", "10.42.2.0/24");
  EXPECT_EQ(clash.status, 422) << clash.body;
  EXPECT_NE(clash.body.find("already allocated"), std::string::npos) << clash.body;
  // Automatic allocation skips the reserved range.
  for (const char* name : {"c", "d", "e"}) ASSERT_EQ(CreateNode(name).status, 201);
  std::set<std::string> cidrs = {PodCidr("a"), PodCidr("c"), PodCidr("d"), PodCidr("e")};
  EXPECT_EQ(cidrs.size(), 4u);
  // A range outside the cluster CIDR is the user's business.
  EXPECT_EQ(CreateNode("outside", "192.168.50.0/24").status, 201);
  EXPECT_EQ(PodCidr("outside"), "192.168.50.0/24");
}

TEST_F(NodeCidrTest, AllocationsSurviveARestart) {
  ASSERT_EQ(CreateNode("before").status, 201);
  std::string first = PodCidr("before");
  std::string data = dir_.File("data");
  server_.reset();
  auto s = testing::KelpieServer::Start(data, testing::FreeTcpPort(), dir_.File("server2.log"),
                                        {"--cluster-cidr=10.42.0.0/22", "--node-cidr-mask-size=24"});
  ASSERT_TRUE(s.ok()) << s.status();
  server_ = std::move(*s);
  client_ = std::move(*server_->AdminClient());
  ASSERT_EQ(CreateNode("after").status, 201);
  EXPECT_NE(PodCidr("after"), first);
}

}  // namespace
}  // namespace kelpie
