// Metric labels as kube-apiserver reports them, and the instrumented store.
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include "orchestrator/apiserver/apiserver_metrics.h"
#include "orchestrator/apiserver/instrumented_store.h"
#include "orchestrator/apiserver/request_info.h"
#include "orchestrator/store/embedded_store.h"
#include "tests/testing/test_env.h"

namespace kelpie::apiserver {
namespace {

TEST(MetricLabels, VerbScopeAndResource) {
  auto l = MetricLabelsFor(ParseRequestInfo("GET", "/api/v1/namespaces/d/pods", false), "GET", "", false);
  EXPECT_EQ(l.verb, "LIST");
  EXPECT_EQ(l.scope, "namespace");
  EXPECT_EQ(l.resource, "pods");
  EXPECT_EQ(l.version, "v1");
  l = MetricLabelsFor(ParseRequestInfo("GET", "/apis/apps/v1/deployments", true), "GET", "", false);
  EXPECT_EQ(l.verb, "WATCH");
  EXPECT_EQ(l.group, "apps");
  EXPECT_EQ(l.scope, "cluster");
  l = MetricLabelsFor(ParseRequestInfo("PATCH", "/apis/apps/v1/namespaces/d/deployments/x/scale", false), "PATCH",
                      "application/apply-patch+yaml", true);
  EXPECT_EQ(l.verb, "APPLY");
  EXPECT_EQ(l.scope, "resource");
  EXPECT_EQ(l.subresource, "scale");
  EXPECT_EQ(l.dry_run, "All");
  l = MetricLabelsFor(ParseRequestInfo("POST", "/api/v1/namespaces/d/configmaps", false), "POST", "", false);
  EXPECT_EQ(l.verb, "POST");
  l = MetricLabelsFor(ParseRequestInfo("GET", "/metrics", false), "GET", "", false);
  EXPECT_EQ(l.verb, "GET");
  EXPECT_EQ(l.resource, "");
  EXPECT_EQ(l.scope, "");
  EXPECT_EQ(l.component, "apiserver");
}

const prometheus::ClientMetric* Find(const std::vector<prometheus::MetricFamily>& families, const std::string& name,
                                     const std::map<std::string, std::string>& labels) {
  for (const auto& f : families) {
    if (f.name != name) continue;
    for (const auto& m : f.metric) {
      std::map<std::string, std::string> have;
      for (const auto& l : m.label) have[l.name] = l.value;
      bool match = true;
      for (const auto& [k, v] : labels) match = match && have[k] == v;
      if (match) return &m;
    }
  }
  return nullptr;
}

TEST(ApiServerMetrics, KubeApiserverNamesAndLabels) {
  prometheus::Registry registry;
  ApiServerMetrics m(registry);
  auto labels = MetricLabelsFor(ParseRequestInfo("POST", "/api/v1/namespaces/d/pods", false), "POST", "", false);
  m.ObserveRequest(labels, 201, 0.003);
  m.ObserveRequest(labels, 201, 0.3);
  m.SetInflight("mutating", 3);
  m.AddLongRunning(labels, 1);
  m.AddWatcher("", "v1", "Pod", 1);
  auto families = registry.Collect();
  const auto* total = Find(families, "apiserver_request_total",
                           {{"verb", "POST"}, {"resource", "pods"}, {"code", "201"}, {"scope", "namespace"}});
  ASSERT_NE(total, nullptr);
  EXPECT_EQ(total->counter.value, 2);
  const auto* hist = Find(families, "apiserver_request_duration_seconds", {{"verb", "POST"}});
  ASSERT_NE(hist, nullptr);
  EXPECT_EQ(hist->histogram.sample_count, 2u);
  EXPECT_EQ(hist->histogram.bucket.size(), 24u);  // 23 bounds + Inf
  EXPECT_EQ(hist->histogram.bucket.front().upper_bound, 0.005);
  EXPECT_EQ(Find(families, "apiserver_current_inflight_requests", {{"request_kind", "mutating"}})->gauge.value, 3);
  EXPECT_NE(Find(families, "apiserver_current_inflight_requests", {{"request_kind", "readOnly"}}), nullptr);
  EXPECT_EQ(Find(families, "apiserver_longrunning_requests", {{"resource", "pods"}})->gauge.value, 1);
  EXPECT_EQ(Find(families, "apiserver_registered_watchers", {{"kind", "Pod"}})->gauge.value, 1);
}

TEST(InstrumentedStore, TimesEveryCallByOperationAndType) {
  testing::TempDir dir;
  store::EmbeddedStoreOptions o;
  o.data_dir = dir.File("store");
  auto backend = store::EmbeddedStore::Open(o);
  ASSERT_TRUE(backend.ok());
  prometheus::Registry registry;
  InstrumentedStore s(std::shared_ptr<store::Store>(std::move(*backend)), registry);
  ASSERT_TRUE(s.Create("/registry/deployments/d/web", "{}").ok());
  ASSERT_TRUE(s.Get("/registry/deployments/d/web").ok());
  auto kv = s.Get("/registry/deployments/d/web");
  ASSERT_TRUE(s.Update("/registry/deployments/d/web", "{\"a\":1}", kv->mod_revision).ok());
  ASSERT_TRUE(s.Range("/registry/pods/", {}).ok());
  ASSERT_TRUE(s.Delete("/registry/deployments/d/web").ok());
  EXPECT_FALSE(s.Get("/registry/pods/d/absent").ok());
  auto families = registry.Collect();
  auto count = [&](const std::string& op, const std::string& type) {
    const auto* m = Find(families, "etcd_requests_total", {{"operation", op}, {"type", type}});
    return m == nullptr ? -1.0 : m->counter.value;
  };
  EXPECT_EQ(count("create", "deployments.apps"), 1);
  EXPECT_EQ(count("get", "deployments.apps"), 2);
  EXPECT_EQ(count("update", "deployments.apps"), 1);
  EXPECT_EQ(count("delete", "deployments.apps"), 1);
  EXPECT_EQ(count("list", "pods"), 1);
  EXPECT_EQ(count("get", "pods"), 1);  // not found is an answer, not an error
  EXPECT_EQ(Find(families, "etcd_request_errors_total", {{"type", "pods"}}), nullptr);
  const auto* h = Find(families, "etcd_request_duration_seconds", {{"operation", "create"}});
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->histogram.sample_count, 1u);
  EXPECT_EQ(StorageTypeOfKey("/registry/clusterroles/admin"), "clusterroles.rbac.authorization.k8s.io");
  EXPECT_EQ(StorageTypeOfKey("/registry/configmaps/"), "configmaps");
}

}  // namespace
}  // namespace kelpie::apiserver
