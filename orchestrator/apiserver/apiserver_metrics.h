// The API server's Prometheus metrics, named and labelled as
// kube-apiserver's so existing dashboards and alerts work:
//   apiserver_request_total{verb,dry_run,group,version,resource,subresource,scope,component,code}
//   apiserver_request_duration_seconds{verb,dry_run,group,version,resource,subresource,scope,component}
//   apiserver_current_inflight_requests{request_kind}
//   apiserver_dropped_requests_total{request_kind}
//   apiserver_longrunning_requests{verb,group,version,resource,subresource,scope,component}
//   apiserver_registered_watchers{group,version,kind}
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace prometheus {
class Registry;
}

namespace kelpie::apiserver {

struct RequestInfo;

// The labels of one request as kube-apiserver reports them: verb in upper
// case (LIST and WATCH told apart from GET, APPLY for server-side apply),
// scope resource/namespace/cluster ("" for non-resource requests).
struct RequestMetricLabels {
  std::string verb;
  std::string dry_run;
  std::string group;
  std::string version;
  std::string resource;
  std::string subresource;
  std::string scope;
  std::string component = "apiserver";
};

RequestMetricLabels MetricLabelsFor(const RequestInfo& info, const std::string& method,
                                    const std::string& content_type, bool dry_run);

class ApiServerMetrics {
 public:
  explicit ApiServerMetrics(prometheus::Registry& registry);
  ~ApiServerMetrics();

  void ObserveRequest(const RequestMetricLabels& labels, int code, double seconds);
  // `request_kind` is "readOnly" or "mutating".
  void SetInflight(const char* request_kind, int value);
  void Dropped(const char* request_kind);
  // +1 when a long-running request starts, -1 when it ends.
  void AddLongRunning(const RequestMetricLabels& labels, double delta);
  void AddWatcher(const std::string& group, const std::string& version, const std::string& kind, double delta);

 private:
  struct Families;
  struct Series;
  // Family::Add hashes every label on each call; requests look their
  // series up by one key instead.
  Series& SeriesFor(const RequestMetricLabels& labels);

  std::unique_ptr<Families> f_;
  std::mutex series_mu_;
  std::unordered_map<std::string, std::unique_ptr<Series>> series_;
};

}  // namespace kelpie::apiserver
