// RestClient request construction and error mapping, against a recording
// fake HttpClient.
#include "orchestrator/client/rest_client.h"

#include <gtest/gtest.h>

#include <deque>

#include "orchestrator/client/api_errors.h"

namespace kelpie::client {
namespace {

using nlohmann::json;

class FakeHttp : public http::HttpClient {
 public:
  absl::StatusOr<http::HttpResponse> Do(const http::ClientRequest& request) override {
    requests.push_back(request);
    http::HttpResponse r = responses.front();
    responses.pop_front();
    return r;
  }
  absl::StatusOr<http::HttpResponse> Stream(const http::ClientRequest& request,
                                            const std::function<bool(std::string_view)>& on_data) override {
    requests.push_back(request);
    http::HttpResponse r = responses.front();
    responses.pop_front();
    // Deliver the body in awkward pieces to exercise line reassembly.
    for (size_t i = 0; i < r.body.size(); i += 7) {
      if (!on_data(std::string_view(r.body).substr(i, 7))) break;
    }
    r.body.clear();
    return r;
  }
  std::vector<http::ClientRequest> requests;
  std::deque<http::HttpResponse> responses;
};

http::HttpResponse Resp(int code, std::string body) {
  http::HttpResponse r;
  r.status = code;
  r.body = std::move(body);
  return r;
}

std::string Header(const http::ClientRequest& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return "";
}

TEST(ResourceRefTest, Paths) {
  EXPECT_EQ(resources::kPods.Path("default", "p1", "status"), "/api/v1/namespaces/default/pods/p1/status");
  EXPECT_EQ(resources::kPods.Path(""), "/api/v1/pods");
  EXPECT_EQ(resources::kNodes.Path("ignored", "n1"), "/api/v1/nodes/n1");
  EXPECT_EQ(resources::kDeployments.Path("a"), "/apis/apps/v1/namespaces/a/deployments");
  EXPECT_EQ(resources::kLeases.ApiVersion(), "coordination.k8s.io/v1");
  EXPECT_EQ(QueryEscape("app in (a,b)"), "app%20in%20%28a%2Cb%29");
}

TEST(RestClientTest, ListBuildsQueryAndListAllFollowsContinue) {
  auto fake = std::make_unique<FakeHttp>();
  FakeHttp* http = fake.get();
  RestClient c(std::move(fake));
  http->responses.push_back(Resp(200, R"({"kind":"PodList","metadata":{"resourceVersion":"7","continue":"t1"},"items":[{"metadata":{"name":"a"}}]})"));
  http->responses.push_back(Resp(200, R"({"kind":"PodList","metadata":{"resourceVersion":"9"},"items":[{"metadata":{"name":"b"}}]})"));
  ListOptions o;
  o.label_selector = "app=x";
  o.limit = 1;
  auto all = c.ListAll(resources::kPods, "ns", o);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ((*all)["items"].size(), 2u);
  EXPECT_EQ((*all)["metadata"]["resourceVersion"], "7");
  EXPECT_FALSE((*all)["metadata"].contains("continue"));
  ASSERT_EQ(http->requests.size(), 2u);
  EXPECT_EQ(http->requests[0].target, "/api/v1/namespaces/ns/pods?labelSelector=app%3Dx&limit=1");
  EXPECT_EQ(http->requests[1].target, "/api/v1/namespaces/ns/pods?labelSelector=app%3Dx&limit=1&continue=t1");
}

TEST(RestClientTest, PatchAndDeleteCarryTypesAndOptions) {
  auto fake = std::make_unique<FakeHttp>();
  FakeHttp* http = fake.get();
  RestClient c(std::move(fake));
  http->responses.push_back(Resp(200, "{}"));
  http->responses.push_back(Resp(200, "{}"));
  ASSERT_TRUE(c.Patch(resources::kPods, "ns", "p", PatchType::kStrategicMerge, json{{"a", 1}}, "status").ok());
  EXPECT_EQ(http->requests[0].method, "PATCH");
  EXPECT_EQ(http->requests[0].target, "/api/v1/namespaces/ns/pods/p/status");
  EXPECT_EQ(Header(http->requests[0], "Content-Type"), "application/strategic-merge-patch+json");
  DeleteOptions d;
  d.propagation_policy = "Foreground";
  d.grace_period_seconds = 0;
  d.precondition_uid = "u1";
  ASSERT_TRUE(c.Delete(resources::kReplicaSets, "ns", "rs", d).ok());
  json body = json::parse(http->requests[1].body);
  EXPECT_EQ(body["propagationPolicy"], "Foreground");
  EXPECT_EQ(body["gracePeriodSeconds"], 0);
  EXPECT_EQ(body["preconditions"]["uid"], "u1");
}

TEST(RestClientTest, ErrorsCarryCodeAndReason) {
  auto fake = std::make_unique<FakeHttp>();
  FakeHttp* http = fake.get();
  RestClient c(std::move(fake));
  http->responses.push_back(Resp(404, R"({"kind":"Status","status":"Failure","reason":"NotFound","message":"pods \"x\" not found","code":404})"));
  http->responses.push_back(Resp(409, R"({"kind":"Status","reason":"AlreadyExists","code":409})"));
  http->responses.push_back(Resp(409, R"({"kind":"Status","reason":"Conflict","code":409})"));
  http->responses.push_back(Resp(410, R"({"kind":"Status","reason":"Expired","code":410})"));
  auto nf = c.Get(resources::kPods, "ns", "x");
  EXPECT_TRUE(client::IsNotFound(nf.status()));
  EXPECT_EQ(nf.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(nf.status().message().find("not found"), std::string::npos);
  auto ae = c.Create(resources::kPods, "ns", json{{"metadata", {{"name", "x"}}}});
  EXPECT_TRUE(client::IsAlreadyExists(ae.status()));
  EXPECT_FALSE(IsConflict(ae.status()));
  auto cf = c.Update(resources::kPods, "ns", json{{"metadata", {{"name", "x"}}}});
  EXPECT_TRUE(IsConflict(cf.status()));
  EXPECT_EQ(HttpCode(cf.status()), 409);
  auto gone = c.List(resources::kPods, "ns", {});
  EXPECT_TRUE(IsGone(gone.status()));
  EXPECT_EQ(Reason(gone.status()), "Expired");
  EXPECT_FALSE(client::IsNotFound(absl::NotFoundError("not from HTTP")));
}

TEST(RestClientTest, WatchSplitsEventsAcrossPiecesAndReportsGone) {
  auto fake = std::make_unique<FakeHttp>();
  FakeHttp* http = fake.get();
  RestClient c(std::move(fake));
  http->responses.push_back(Resp(200,
                                 "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"5\"}}}\n"
                                 "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"6\"}}}\n"
                                 "{\"type\":\"DELETED\",\"object\":{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"7\"}}}\n"));
  http->responses.push_back(Resp(410, R"({"kind":"Status","reason":"Expired","code":410})" "\n"));
  std::vector<std::string> types;
  WatchOptions wo;
  wo.resource_version = "4";
  auto s = c.Watch(resources::kPods, "", wo, [&](const WatchEvent& e) {
    types.push_back(e.type + ":" + e.object["metadata"].value("resourceVersion", ""));
    return true;
  });
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(types, (std::vector<std::string>{"ADDED:5", "BOOKMARK:6", "DELETED:7"}));
  EXPECT_EQ(http->requests[0].target, "/api/v1/pods?watch=true&resourceVersion=4&allowWatchBookmarks=true");
  s = c.Watch(resources::kPods, "", wo, [&](const WatchEvent&) { return true; });
  EXPECT_TRUE(IsGone(s)) << s;
}

}  // namespace
}  // namespace kelpie::client
