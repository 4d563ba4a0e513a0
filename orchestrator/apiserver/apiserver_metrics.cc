#include "orchestrator/apiserver/apiserver_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "orchestrator/apiserver/request_info.h"

namespace kelpie::apiserver {

struct ApiServerMetrics::Families {
  prometheus::Gauge* inflight_read_only;
  prometheus::Gauge* inflight_mutating;
  prometheus::Family<prometheus::Counter>* requests;
  prometheus::Family<prometheus::Histogram>* duration;
  prometheus::Family<prometheus::Gauge>* inflight;
  prometheus::Family<prometheus::Counter>* dropped;
  prometheus::Family<prometheus::Gauge>* longrunning;
  prometheus::Family<prometheus::Gauge>* watchers;
};

namespace {

prometheus::Labels BaseLabels(const RequestMetricLabels& l) {
  return {{"verb", l.verb},           {"group", l.group},         {"version", l.version},
          {"resource", l.resource},   {"subresource", l.subresource}, {"scope", l.scope},
          {"component", l.component}};
}

// kube-apiserver's buckets for apiserver_request_duration_seconds.
const prometheus::Histogram::BucketBoundaries& DurationBuckets() {
  static const prometheus::Histogram::BucketBoundaries b = {0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8,
                                                            1.0,   1.25,  1.5,  2,   3,   4,   5,   6,
                                                            8,     10,    15,   20,  30,  45,  60};
  return b;
}

}  // namespace

RequestMetricLabels MetricLabelsFor(const RequestInfo& info, const std::string& method,
                                    const std::string& content_type, bool dry_run) {
  RequestMetricLabels l;
  l.verb = absl::AsciiStrToUpper(method);
  if (l.verb == "HEAD") l.verb = "GET";
  if (info.is_resource_request) {
    if (info.verb == "list") l.verb = "LIST";
    if (info.verb == "watch") l.verb = "WATCH";
    if (l.verb == "PATCH" && absl::StartsWith(content_type, "application/apply-patch")) l.verb = "APPLY";
    l.group = info.group;
    l.version = info.version;
    l.resource = info.resource;
    l.subresource = info.subresource;
    if (!info.name.empty()) {
      l.scope = "resource";
    } else if (!info.namespace_name.empty()) {
      l.scope = "namespace";
    } else {
      l.scope = "cluster";
    }
  }
  if (dry_run) l.dry_run = "All";
  return l;
}

ApiServerMetrics::ApiServerMetrics(prometheus::Registry& registry) : f_(std::make_unique<Families>()) {
  f_->requests = &prometheus::BuildCounter()
                      .Name("apiserver_request_total")
                      .Help("Counter of apiserver requests broken out for each verb, dry run value, group, version, "
                            "resource, scope, component, and HTTP response code.")
                      .Register(registry);
  f_->duration = &prometheus::BuildHistogram()
                      .Name("apiserver_request_duration_seconds")
                      .Help("Response latency distribution in seconds for each verb, dry run value, group, version, "
                            "resource, subresource, scope and component.")
                      .Register(registry);
  f_->inflight = &prometheus::BuildGauge()
                      .Name("apiserver_current_inflight_requests")
                      .Help("Maximal number of currently used inflight request limit of this apiserver per request "
                            "kind in last second.")
                      .Register(registry);
  f_->dropped = &prometheus::BuildCounter()
                     .Name("apiserver_dropped_requests_total")
                     .Help("Number of requests dropped with 'Try again later' response.")
                     .Register(registry);
  f_->longrunning = &prometheus::BuildGauge()
                         .Name("apiserver_longrunning_requests")
                         .Help("Gauge of all active long-running apiserver requests broken out by verb, group, "
                               "version, resource, scope and component.")
                         .Register(registry);
  f_->watchers = &prometheus::BuildGauge()
                      .Name("apiserver_registered_watchers")
                      .Help("Number of currently registered watchers for a given resources")
                      .Register(registry);
  // Present from the start, so scrapes see zeros instead of nothing.
  f_->inflight_read_only = &f_->inflight->Add({{"request_kind", "readOnly"}});
  f_->inflight_mutating = &f_->inflight->Add({{"request_kind", "mutating"}});
}

struct ApiServerMetrics::Series {
  prometheus::Histogram* duration = nullptr;
  prometheus::Gauge* longrunning = nullptr;
  std::vector<std::pair<int, prometheus::Counter*>> by_code;  // few codes per series
};

ApiServerMetrics::Series& ApiServerMetrics::SeriesFor(const RequestMetricLabels& l) {
  std::string key;
  key.reserve(64);
  for (const std::string* part : {&l.verb, &l.dry_run, &l.group, &l.version, &l.resource, &l.subresource, &l.scope,
                                  &l.component}) {
    key += *part;
    key += '\x1f';
  }
  auto it = series_.find(key);
  if (it != series_.end()) return *it->second;
  auto s = std::make_unique<Series>();
  prometheus::Labels labels = BaseLabels(l);
  labels["dry_run"] = l.dry_run;
  s->duration = &f_->duration->Add(labels, DurationBuckets());
  Series& ref = *s;
  series_.emplace(std::move(key), std::move(s));
  return ref;
}

ApiServerMetrics::~ApiServerMetrics() = default;

void ApiServerMetrics::ObserveRequest(const RequestMetricLabels& l, int code, double seconds) {
  prometheus::Histogram* duration;
  prometheus::Counter* counter = nullptr;
  {
    std::lock_guard<std::mutex> lock(series_mu_);
    Series& s = SeriesFor(l);
    duration = s.duration;
    for (const auto& [c, counter_for_code] : s.by_code) {
      if (c == code) counter = counter_for_code;
    }
    if (counter == nullptr) {
      prometheus::Labels labels = BaseLabels(l);
      labels["dry_run"] = l.dry_run;
      labels["code"] = std::to_string(code);
      counter = &f_->requests->Add(labels);
      s.by_code.emplace_back(code, counter);
    }
  }
  duration->Observe(seconds);
  counter->Increment();
}

void ApiServerMetrics::SetInflight(const char* request_kind, int value) {
  (request_kind[0] == 'r' ? f_->inflight_read_only : f_->inflight_mutating)->Set(value);
}

void ApiServerMetrics::Dropped(const char* request_kind) {
  f_->dropped->Add({{"request_kind", request_kind}}).Increment();
}

void ApiServerMetrics::AddLongRunning(const RequestMetricLabels& l, double delta) {
  prometheus::Gauge* gauge;
  {
    std::lock_guard<std::mutex> lock(series_mu_);
    Series& s = SeriesFor(l);
    if (s.longrunning == nullptr) s.longrunning = &f_->longrunning->Add(BaseLabels(l));
    gauge = s.longrunning;
  }
  gauge->Increment(delta);
}

void ApiServerMetrics::AddWatcher(const std::string& group, const std::string& version, const std::string& kind,
                                  double delta) {
  f_->watchers->Add({{"group", group}, {"version", version}, {"kind", kind}}).Increment(delta);
}

}  // namespace kelpie::apiserver
