// SharedInformer's 410 path against a scripted HttpClient: a watch answered
// 410 Gone leads to a relist, and objects missing from the new list are
// reported as deletes with unknown final state.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "orchestrator/controllers/shared_informer.h"

namespace kelpie::controllers {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

class ScriptedHttp : public http::HttpClient {
 public:
  absl::StatusOr<http::HttpResponse> Do(const http::ClientRequest&) override {
    http::HttpResponse r;
    int n = lists++;
    r.body = n == 0 ? R"({"kind":"ConfigMapList","metadata":{"resourceVersion":"10"},"items":[
                         {"metadata":{"namespace":"d","name":"a","resourceVersion":"5"}},
                         {"metadata":{"namespace":"d","name":"b","resourceVersion":"6"}}]})"
                    : R"({"kind":"ConfigMapList","metadata":{"resourceVersion":"20"},"items":[
                         {"metadata":{"namespace":"d","name":"a","resourceVersion":"15"}}]})";
    return r;
  }
  absl::StatusOr<http::HttpResponse> Stream(const http::ClientRequest& req,
                                            const std::function<bool(std::string_view)>& on_data) override {
    {
      std::lock_guard<std::mutex> l(mu);
      targets.push_back(req.target);
    }
    http::HttpResponse r;
    if (watches++ == 0) {
      r.status = 410;
      on_data(R"({"kind":"Status","reason":"Expired","code":410})");
      return r;
    }
    // Later watches: a bookmark, then the stream ends after a pause.
    std::this_thread::sleep_for(20ms);
    on_data("{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"21\"}}}\n");
    return r;
  }
  std::atomic<int> lists{0}, watches{0};
  std::mutex mu;
  std::vector<std::string> targets;
};

TEST(InformerTest, GoneLeadsToRelistWithTombstonesAndUpdates) {
  auto fake = std::make_unique<ScriptedHttp>();
  ScriptedHttp* http = fake.get();
  client::RestClient client(std::move(fake));
  SharedInformer informer(client, InformerOptions{.resource = client::resources::kConfigMaps});
  std::mutex mu;
  std::vector<std::string> log;
  EventHandlers h;
  h.on_add = [&](const json& o) {
    std::lock_guard<std::mutex> l(mu);
    log.push_back("add " + ObjectKey(o));
  };
  h.on_update = [&](const json&, const json& o) {
    std::lock_guard<std::mutex> l(mu);
    log.push_back("update " + ObjectKey(o));
  };
  h.on_delete = [&](const json& o, bool unknown) {
    std::lock_guard<std::mutex> l(mu);
    log.push_back((unknown ? "tombstone " : "delete ") + ObjectKey(o));
  };
  informer.AddEventHandler(h);
  informer.Start();
  ASSERT_TRUE(informer.WaitForSync(10s));
  for (int i = 0; i < 200 && informer.LastResourceVersion() != "21"; ++i) std::this_thread::sleep_for(10ms);
  informer.Stop();
  EXPECT_EQ(informer.ListCount(), 2);
  EXPECT_EQ(informer.LastResourceVersion(), "21");
  EXPECT_EQ(informer.store().Size(), 1u);
  std::lock_guard<std::mutex> l(mu);
  EXPECT_EQ(log, (std::vector<std::string>{"add d/a", "add d/b", "update d/a", "tombstone d/b"}));
  std::lock_guard<std::mutex> l2(http->mu);
  ASSERT_GE(http->targets.size(), 2u);
  EXPECT_EQ(http->targets[0], "/api/v1/configmaps?watch=true&resourceVersion=10&allowWatchBookmarks=true");
  EXPECT_EQ(http->targets[1], "/api/v1/configmaps?watch=true&resourceVersion=20&allowWatchBookmarks=true");
}

}  // namespace
}  // namespace kelpie::controllers
