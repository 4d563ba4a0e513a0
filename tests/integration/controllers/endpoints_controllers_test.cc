// The EndpointSlice and Endpoints controllers running inside `kelpie server`
// (through its controller manager), pods made Running/Ready by the test.
// Also: the event recorder and the manager's leader election in-process.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "orchestrator/client/api_errors.h"
#include "orchestrator/client/rest_client.h"
#include "orchestrator/controllers/controller_manager.h"
#include "orchestrator/controllers/rest_event_recorder.h"
#include "tests/integration/controllers/fake_cluster.h"
#include "tests/testing/kelpie_server.h"
#include "tests/testing/test_env.h"

namespace kelpie::controllers {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::Eventually;
using testing::ListItems;
namespace res = client::resources;

class ControllersTest : public ::testing::Test {
 protected:
  void StartServer(std::vector<std::string> args) {
    auto s = testing::KelpieServer::Start(dir_.File("data"), testing::FreeTcpPort(), dir_.File("server.log"), args);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    auto c = client::RestClient::FromKubeconfig(server_->kubeconfig());
    ASSERT_TRUE(c.ok()) << c.status();
    client_ = std::move(*c);
  }
  testing::TempDir dir_;
  std::unique_ptr<testing::KelpieServer> server_;
  std::unique_ptr<client::RestClient> client_;
};

// address -> endpoint, across the service's managed slices; checks the
// slice size limit and that each slice's port matches what its pods name.
std::map<std::string, json> SliceEndpoints(client::RestClient& c, const std::string& service, int max_per_slice,
                                           std::map<std::string, int>* port_of = nullptr, int* slices = nullptr) {
  std::map<std::string, json> out;
  auto items = ListItems(c, res::kEndpointSlices, "default",
                         "kubernetes.io/service-name=" + service +
                             ",endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io");
  if (slices) *slices = static_cast<int>(items.size());
  for (const auto& s : items) {
    EXPECT_LE(s.value("endpoints", json::array()).size(), static_cast<size_t>(max_per_slice)) << s.dump();
    for (const auto& ep : s.value("endpoints", json::array())) {
      std::string ip = ep["addresses"][0];
      out[ip] = ep;
      if (port_of && !s.value("ports", json::array()).empty()) (*port_of)[ip] = s["ports"][0].value("port", 0);
    }
  }
  return out;
}

TEST_F(ControllersTest, EndpointSlicesAndEndpointsFollowPods) {
  StartServer({"--max-endpoints-per-slice=2"});
  json svc = {{"apiVersion", "v1"},
              {"kind", "Service"},
              {"metadata", {{"name", "web"}, {"labels", {{"tier", "front"}}}}},
              {"spec",
               {{"selector", {{"app", "web"}}},
                {"ports", json::array({{{"name", "http"}, {"port", 80}, {"targetPort", "http"}}})}}}};
  ASSERT_TRUE(client_->Create(res::kServices, "default", svc).ok());
  // Pods 1-4 name port 8080 "http", pod 5 names 9090 "http": two port sets.
  for (int i = 1; i <= 5; ++i) {
    std::string name = "web-" + std::to_string(i);
    int port = i == 5 ? 9090 : 8080;
    ASSERT_TRUE(client_->Create(res::kPods, "default", testing::TestPod(name, {{"app", "web"}}, {{"http", port}})).ok());
    ASSERT_TRUE(testing::MarkPodRunning(*client_, "default", name, "10.42.0." + std::to_string(10 + i), true).ok());
  }
  // A pod the selector does not match, and one without an IP.
  ASSERT_TRUE(client_->Create(res::kPods, "default", testing::TestPod("other", {{"app", "other"}}, {{"http", 8080}})).ok());
  ASSERT_TRUE(testing::MarkPodRunning(*client_, "default", "other", "10.42.0.99", true).ok());
  ASSERT_TRUE(client_->Create(res::kPods, "default", testing::TestPod("pending", {{"app", "web"}}, {{"http", 8080}})).ok());

  std::map<std::string, int> port_of;
  int slices = 0;
  ASSERT_TRUE(Eventually([&] { return SliceEndpoints(*client_, "web", 2).size() == 5; })) << server_->Log();
  auto eps = SliceEndpoints(*client_, "web", 2, &port_of, &slices);
  EXPECT_EQ(slices, 3);  // 4 endpoints of port 8080 in two slices, 1 of 9090
  for (int i = 1; i <= 5; ++i) {
    std::string ip = "10.42.0." + std::to_string(10 + i);
    ASSERT_TRUE(eps.count(ip)) << ip;
    EXPECT_EQ(eps[ip]["conditions"]["ready"], true);
    EXPECT_EQ(eps[ip]["targetRef"]["name"], "web-" + std::to_string(i));
    EXPECT_EQ(port_of[ip], i == 5 ? 9090 : 8080) << ip;
  }
  auto one = ListItems(*client_, res::kEndpointSlices, "default", "kubernetes.io/service-name=web");
  ASSERT_FALSE(one.empty());
  EXPECT_EQ(one[0]["metadata"]["labels"]["tier"], "front");
  EXPECT_EQ(one[0]["metadata"]["ownerReferences"][0]["kind"], "Service");

  // Readiness flips: ready and serving follow, the endpoint stays where it is.
  // Only the slice holding the flipped endpoint is rewritten.
  std::map<std::string, std::string> slice_of;
  std::map<std::string, std::string> version_of;  // slice name -> resourceVersion
  for (const auto& s : ListItems(*client_, res::kEndpointSlices, "default", "kubernetes.io/service-name=web")) {
    for (const auto& ep : s["endpoints"]) slice_of[ep["addresses"][0]] = s["metadata"]["name"];
    version_of[s["metadata"]["name"]] = s["metadata"]["resourceVersion"];
  }
  ASSERT_TRUE(testing::MarkPodRunning(*client_, "default", "web-1", "10.42.0.11", false).ok());
  ASSERT_TRUE(Eventually([&] {
    auto e = SliceEndpoints(*client_, "web", 2);
    return e.count("10.42.0.11") && e["10.42.0.11"]["conditions"]["ready"] == false &&
           e["10.42.0.11"]["conditions"]["serving"] == false;
  }));
  for (const auto& s : ListItems(*client_, res::kEndpointSlices, "default", "kubernetes.io/service-name=web")) {
    for (const auto& ep : s["endpoints"]) {
      EXPECT_EQ(slice_of[ep["addresses"][0]], s["metadata"]["name"]) << "endpoint moved between slices";
    }
    const std::string slice_name = s["metadata"]["name"];
    if (slice_name == slice_of["10.42.0.11"]) {
      EXPECT_NE(version_of[slice_name], s["metadata"]["resourceVersion"]);
    } else {
      EXPECT_EQ(version_of[slice_name], s["metadata"]["resourceVersion"]) << slice_name << " rewritten needlessly";
    }
  }
  ASSERT_TRUE(testing::MarkPodRunning(*client_, "default", "web-1", "10.42.0.11", true).ok());
  ASSERT_TRUE(Eventually([&] { return SliceEndpoints(*client_, "web", 2)["10.42.0.11"]["conditions"]["ready"] == true; }));

  // Endpoints: ready and not-ready addresses per port set.
  ASSERT_TRUE(testing::MarkPodRunning(*client_, "default", "web-2", "10.42.0.12", false).ok());
  auto endpoints_ok = [&] {
    auto e = client_->Get(res::kEndpoints, "default", "web");
    if (!e.ok()) return false;
    std::set<std::string> ready, not_ready;
    for (const auto& s : e->value("subsets", json::array())) {
      for (const auto& a : s.value("addresses", json::array())) ready.insert(a["ip"]);
      for (const auto& a : s.value("notReadyAddresses", json::array())) not_ready.insert(a["ip"]);
    }
    return ready == std::set<std::string>{"10.42.0.11", "10.42.0.13", "10.42.0.14", "10.42.0.15"} &&
           not_ready == std::set<std::string>{"10.42.0.12"} && e->value("subsets", json::array()).size() == 2;
  };
  ASSERT_TRUE(Eventually(endpoints_ok)) << client_->Get(res::kEndpoints, "default", "web")->dump();

  // A pod going away leaves both.
  ASSERT_TRUE(client_->Delete(res::kPods, "default", "web-3").ok());
  ASSERT_TRUE(Eventually([&] { return SliceEndpoints(*client_, "web", 2).size() == 4; }));
  ASSERT_TRUE(Eventually([&] {
    auto e = client_->Get(res::kEndpoints, "default", "web");
    return e.ok() && e->dump().find("10.42.0.13") == std::string::npos;
  }));

  // A selectorless Service is left alone, and so is the API server's own.
  json manual = {{"apiVersion", "v1"},
                 {"kind", "Service"},
                 {"metadata", {{"name", "manual"}}},
                 {"spec", {{"ports", json::array({{{"port", 80}}})}}}};
  ASSERT_TRUE(client_->Create(res::kServices, "default", manual).ok());
  auto kubernetes_slices = ListItems(*client_, res::kEndpointSlices, "default", "kubernetes.io/service-name=kubernetes");

  // Deleting the Service removes its slices and Endpoints.
  ASSERT_TRUE(client_->Delete(res::kServices, "default", "web").ok());
  ASSERT_TRUE(Eventually([&] {
    return ListItems(*client_, res::kEndpointSlices, "default", "kubernetes.io/service-name=web").empty() &&
           client::IsNotFound(client_->Get(res::kEndpoints, "default", "web").status());
  }));
  EXPECT_TRUE(ListItems(*client_, res::kEndpointSlices, "default", "kubernetes.io/service-name=manual").empty());
  EXPECT_TRUE(client::IsNotFound(client_->Get(res::kEndpoints, "default", "manual").status()));
  auto kubernetes_after = ListItems(*client_, res::kEndpointSlices, "default", "kubernetes.io/service-name=kubernetes");
  ASSERT_EQ(kubernetes_after.size(), kubernetes_slices.size());
  for (size_t i = 0; i < kubernetes_after.size(); ++i) {
    EXPECT_EQ(kubernetes_after[i]["metadata"]["resourceVersion"], kubernetes_slices[i]["metadata"]["resourceVersion"]);
  }
}

TEST_F(ControllersTest, ServiceWithoutPodsGetsOnePlaceholderSlice) {
  StartServer({});
  json svc = {{"apiVersion", "v1"},
              {"kind", "Service"},
              {"metadata", {{"name", "empty"}}},
              {"spec", {{"selector", {{"app", "none"}}}, {"ports", json::array({{{"port", 80}}})}}}};
  ASSERT_TRUE(client_->Create(res::kServices, "default", svc).ok());
  ASSERT_TRUE(Eventually([&] {
    return ListItems(*client_, res::kEndpointSlices, "default", "kubernetes.io/service-name=empty").size() == 1;
  }));
  std::this_thread::sleep_for(500ms);
  auto slices = ListItems(*client_, res::kEndpointSlices, "default", "kubernetes.io/service-name=empty");
  ASSERT_EQ(slices.size(), 1u);
  EXPECT_TRUE(slices[0].value("endpoints", json::array()).empty());
}

// With a batch period the Endpoints object still follows pod changes, a
// burst of them written together; the slices are not delayed.
TEST_F(ControllersTest, EndpointsBatchPodChangesWithBatchPeriod) {
  StartServer({"--endpoint-updates-batch-period=300ms"});
  json svc = {{"apiVersion", "v1"},
              {"kind", "Service"},
              {"metadata", {{"name", "batch"}}},
              {"spec", {{"selector", {{"app", "batch"}}}, {"ports", json::array({{{"port", 80}}})}}}};
  ASSERT_TRUE(client_->Create(res::kServices, "default", svc).ok());
  for (int i = 1; i <= 3; ++i) {
    std::string name = "batch-" + std::to_string(i);
    ASSERT_TRUE(client_->Create(res::kPods, "default", testing::TestPod(name, {{"app", "batch"}}, {})).ok());
    ASSERT_TRUE(testing::MarkPodRunning(*client_, "default", name, "10.42.1." + std::to_string(i), i != 2).ok());
  }
  ASSERT_TRUE(Eventually([&] { return SliceEndpoints(*client_, "batch", 100).size() == 3; }));
  auto endpoints_are = [&](std::set<std::string> want_ready, std::set<std::string> want_not_ready) {
    return Eventually([&] {
      auto e = client_->Get(res::kEndpoints, "default", "batch");
      if (!e.ok()) return false;
      std::set<std::string> ready, not_ready;
      for (const auto& s : e->value("subsets", json::array())) {
        for (const auto& a : s.value("addresses", json::array())) ready.insert(a["ip"]);
        for (const auto& a : s.value("notReadyAddresses", json::array())) not_ready.insert(a["ip"]);
      }
      return ready == want_ready && not_ready == want_not_ready;
    });
  };
  EXPECT_TRUE(endpoints_are({"10.42.1.1", "10.42.1.3"}, {"10.42.1.2"}));
  ASSERT_TRUE(testing::MarkPodRunning(*client_, "default", "batch-2", "10.42.1.2", true).ok());
  ASSERT_TRUE(testing::MarkPodRunning(*client_, "default", "batch-3", "10.42.1.3", false).ok());
  EXPECT_TRUE(endpoints_are({"10.42.1.1", "10.42.1.2"}, {"10.42.1.3"}));
}

TEST_F(ControllersTest, EventRecorderCreatesAndAggregatesEvents) {
  StartServer({"--controller-manager=false"});
  json cm = {{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", {{"name", "subject"}}}};
  auto created = client_->Create(res::kConfigMaps, "default", cm);
  ASSERT_TRUE(created.ok());
  RestEventRecorder recorder(*client_, EventRecorderOptions{.component = "test-controller", .host = "node-a"});
  for (int i = 0; i < 3; ++i) recorder.Event(*created, EventType::kNormal, "Poked", "poked the config map");
  recorder.ForComponent("other-controller").Event(*created, EventType::kWarning, "Broken", "it broke");
  ASSERT_TRUE(recorder.Flush(10s));
  EXPECT_EQ(recorder.dropped(), 0u);
  auto events = ListItems(*client_, res::kEvents, "default");
  std::map<std::string, json> by_reason;
  for (const auto& e : events) by_reason[e.value("reason", "")] = e;
  ASSERT_EQ(by_reason.size(), 2u);
  const json& poked = by_reason["Poked"];
  EXPECT_EQ(poked["count"], 3);
  EXPECT_EQ(poked["type"], "Normal");
  EXPECT_EQ(poked["source"]["component"], "test-controller");
  EXPECT_EQ(poked["source"]["host"], "node-a");
  EXPECT_EQ(poked["involvedObject"]["kind"], "ConfigMap");
  EXPECT_EQ(poked["involvedObject"]["uid"], (*created)["metadata"]["uid"]);
  EXPECT_EQ(poked["metadata"]["name"].get<std::string>().rfind("subject.", 0), 0u);
  EXPECT_FALSE(poked.value("firstTimestamp", "").empty());
  EXPECT_EQ(by_reason["Broken"]["type"], "Warning");
  EXPECT_EQ(by_reason["Broken"]["source"]["component"], "other-controller");
  // (The server's table for events has no columns of its own yet.)
  auto r = server_->Kubectl({"get", "events", "-n", "default", "-o",
                             "custom-columns=REASON:.reason,OBJECT:.involvedObject.name,COUNT:.count,TYPE:.type"});
  EXPECT_NE(r.stdout_text.find("Poked    subject   3       Normal"), std::string::npos) << r.stdout_text << r.stderr_text;
  EXPECT_NE(r.stdout_text.find("Broken"), std::string::npos) << r.stdout_text;
}

TEST_F(ControllersTest, OneOfTwoManagersLeadsAndTheOtherTakesOver) {
  StartServer({"--controller-manager=false"});
  auto make = [&](const std::string& id) {
    ControllerManagerOptions o;
    o.identity = id;
    o.lease_duration = 3s;
    o.renew_deadline = 2s;
    o.retry_period = 200ms;
    // One trivial controller: runs while leading.
    std::vector<ControllerDescriptor> d;
    d.push_back({"noop", [](ControllerContext&) -> absl::StatusOr<std::unique_ptr<Controller>> {
                   struct Noop : Controller {
                     std::string Name() const override { return "noop"; }
                     void Run(int) override {}
                     void Stop() override {}
                   };
                   return std::make_unique<Noop>();
                 }});
    return std::make_unique<ControllerManager>(*client_, o, std::move(d));
  };
  auto a = make("a");
  auto b = make("b");
  ASSERT_TRUE(a->Start().ok());
  ASSERT_TRUE(a->WaitUntilRunning(20s));
  ASSERT_TRUE(b->Start().ok());
  std::this_thread::sleep_for(1s);
  EXPECT_TRUE(a->IsLeading());
  EXPECT_FALSE(b->IsLeading());
  EXPECT_EQ(a->Running(), std::vector<std::string>{"noop"});
  EXPECT_TRUE(b->Running().empty());
  auto lease = client_->Get(res::kLeases, "kube-system", "kube-controller-manager");
  ASSERT_TRUE(lease.ok());
  EXPECT_EQ((*lease)["spec"]["holderIdentity"], "a");
  a->Stop();
  ASSERT_TRUE(b->WaitUntilRunning(20s));
  EXPECT_TRUE(b->IsLeading());
  b->Stop();

  // --controllers validation.
  std::vector<ControllerDescriptor> known = {{"x", nullptr, true}, {"y", nullptr, true}, {"z", nullptr, false}};
  EXPECT_EQ(*SelectControllers({"*"}, known), (std::set<std::string>{"x", "y"}));
  EXPECT_EQ(*SelectControllers({"*", "-x", "z"}, known), (std::set<std::string>{"y", "z"}));
  EXPECT_EQ(*SelectControllers({"y"}, known), (std::set<std::string>{"y"}));
  EXPECT_FALSE(SelectControllers({"nope"}, known).ok());
}

}  // namespace
}  // namespace kelpie::controllers
