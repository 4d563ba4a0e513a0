// Pure helpers of the core controllers: port resolution, endpoint
// eligibility, toleration seconds, --controllers selection.
#include <gtest/gtest.h>

#include "orchestrator/controllers/controller_manager.h"
#include "orchestrator/controllers/core/node_lifecycle_controller.h"
#include "orchestrator/controllers/core/service_endpoints.h"

namespace kelpie::controllers {
namespace {

using nlohmann::json;

json Pod() {
  return {{"metadata", {{"name", "p"}, {"labels", {{"app", "web"}}}}},
          {"spec",
           {{"containers",
             json::array({{{"name", "c"},
                           {"ports", json::array({{{"name", "http"}, {"containerPort", 8080}},
                                                  {{"name", "dns"}, {"containerPort", 53}, {"protocol", "UDP"}}})}}})}}},
          {"status",
           {{"phase", "Running"},
            {"podIP", "10.42.0.5"},
            {"conditions", json::array({{{"type", "Ready"}, {"status", "True"}}})}}}};
}

TEST(ServiceEndpointsTest, ResolvesTargetPorts) {
  json pod = Pod();
  EXPECT_EQ(ResolveTargetPort({{"port", 80}}, pod), 80);
  EXPECT_EQ(ResolveTargetPort({{"port", 80}, {"targetPort", 9000}}, pod), 9000);
  EXPECT_EQ(ResolveTargetPort({{"port", 80}, {"targetPort", "http"}}, pod), 8080);
  EXPECT_EQ(ResolveTargetPort({{"port", 53}, {"targetPort", "dns"}, {"protocol", "UDP"}}, pod), 53);
  // The name must match with the protocol too.
  EXPECT_EQ(ResolveTargetPort({{"port", 53}, {"targetPort", "dns"}}, pod), std::nullopt);
  EXPECT_EQ(ResolveTargetPort({{"port", 80}, {"targetPort", "missing"}}, pod), std::nullopt);
}

TEST(ServiceEndpointsTest, EndpointEligibilityAndReadiness) {
  json pod = Pod();
  EXPECT_TRUE(PodIsEndpoint(pod, false));
  EXPECT_TRUE(PodIsReady(pod));
  json no_ip = pod;
  no_ip["status"].erase("podIP");
  EXPECT_FALSE(PodIsEndpoint(no_ip, true));
  json done = pod;
  done["status"]["phase"] = "Succeeded";
  EXPECT_FALSE(PodIsEndpoint(done, true));
  json terminating = pod;
  terminating["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z";
  EXPECT_TRUE(PodIsTerminating(terminating));
  EXPECT_FALSE(PodIsEndpoint(terminating, false));
  EXPECT_TRUE(PodIsEndpoint(terminating, true));
  json not_ready = pod;
  not_ready["status"]["conditions"][0]["status"] = "False";
  EXPECT_FALSE(PodIsReady(not_ready));
  EXPECT_NE(PodEndpointProjection(pod), PodEndpointProjection(not_ready));
  json restarted = pod;
  restarted["status"]["containerStatuses"] = json::array({{{"restartCount", 3}}});
  EXPECT_EQ(PodEndpointProjection(pod), PodEndpointProjection(restarted));
  EXPECT_FALSE(ServicePodSelector({{"spec", {{"ports", json::array()}}}}).has_value());
  EXPECT_FALSE(ServicePodSelector({{"spec", {{"type", "ExternalName"}, {"selector", {{"a", "b"}}}}}}).has_value());
  auto selector = ServicePodSelector({{"spec", {{"selector", {{"app", "web"}}}}}});
  ASSERT_TRUE(selector.has_value());
  EXPECT_TRUE(selector->Matches(pod["metadata"]["labels"]));
}

TEST(NodeLifecycleTest, TolerationSeconds) {
  json unreachable = {{"key", kUnreachableTaint}, {"effect", "NoExecute"}};
  json other = {{"key", "example.com/broken"}, {"effect", "NoExecute"}};
  json pod = Pod();
  // No toleration: the default for unreachable, at once for others.
  EXPECT_EQ(TolerationSecondsFor(pod, unreachable, 300), 300);
  EXPECT_EQ(TolerationSecondsFor(pod, other, 300), 0);
  pod["spec"]["tolerations"] = json::array({{{"key", kUnreachableTaint}, {"operator", "Exists"}, {"effect", "NoExecute"}, {"tolerationSeconds", 10}}});
  EXPECT_EQ(TolerationSecondsFor(pod, unreachable, 300), 10);
  pod["spec"]["tolerations"].push_back({{"operator", "Exists"}});  // tolerates everything, forever
  EXPECT_EQ(TolerationSecondsFor(pod, unreachable, 300), std::nullopt);
  EXPECT_EQ(TolerationSecondsFor(pod, other, 300), std::nullopt);
  json equal = Pod();
  equal["spec"]["tolerations"] = json::array({{{"key", "example.com/broken"}, {"value", "x"}, {"effect", "NoExecute"}}});
  EXPECT_EQ(TolerationSecondsFor(equal, other, 300), 0);  // value differs
  other["value"] = "x";
  EXPECT_EQ(TolerationSecondsFor(equal, other, 300), std::nullopt);
}

TEST(ControllerManagerTest, SelectsControllersLikeKubeControllerManager) {
  std::vector<ControllerDescriptor> known = {{"a", nullptr, true}, {"b", nullptr, true}, {"c", nullptr, false}};
  EXPECT_EQ(*SelectControllers({"*"}, known), (std::set<std::string>{"a", "b"}));
  EXPECT_EQ(*SelectControllers({"*", "-a", "c"}, known), (std::set<std::string>{"b", "c"}));
  EXPECT_EQ(*SelectControllers({"c"}, known), (std::set<std::string>{"c"}));
  EXPECT_TRUE(SelectControllers({}, known)->empty());
  auto bad = SelectControllers({"*", "-nope"}, known);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("-nope"), std::string::npos);
  EXPECT_FALSE(ParseFlagDuration("--x", "soon").ok());
  EXPECT_EQ(*ParseFlagDuration("--x", "1m30s"), std::chrono::milliseconds(90000));
}

}  // namespace
}  // namespace kelpie::controllers
