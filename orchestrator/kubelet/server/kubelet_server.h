// The kubelet's HTTPS API (port 10250): what the API server proxies
// `kubectl logs`, `exec` and `port-forward` to, plus /healthz.
//
//   GET  /healthz
//   GET  /containerLogs/<ns>/<pod>/<container>   follow, tailLines, sinceSeconds,
//                                                sinceTime, timestamps, previous, limitBytes
//   GET|POST /exec/<ns>/<pod>/<container>        WebSocket v5.channel.k8s.io / v4.channel.k8s.io
//   GET|POST /portForward/<ns>/<pod>             SPDY/3.1 (direct upgrade or tunneled in
//                                                WebSocket as SPDY/3.1+portforward.k8s.io) and
//                                                the WebSocket port-forward protocol
//                                                (v4.channel.k8s.io / portforward.k8s.io, ?ports=)
//
// Every request needs a client certificate from the cluster CA; only
// system:masters (the API server's kubelet client certificate, admins) are
// allowed.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "common/http/http_server.h"
#include "orchestrator/runtime/pod_runtime.h"

namespace kelpie::kubelet {

struct KubeletServerOptions {
  std::string bind_address = "0.0.0.0";
  uint16_t port = 10250;  // 0 picks a free port
  std::string certificate_file;  // serving certificate (cluster CA signed)
  std::string private_key_file;
  std::string client_ca_file;    // the cluster CA: client certificates must chain to it
};

// A running container of a pod, found through the runtime.
struct ContainerTarget {
  runtime::PodSandboxStatus sandbox;
  runtime::ContainerStatus container;
};

class KubeletServer {
 public:
  // `runtime` must outlive the server.
  static absl::StatusOr<std::unique_ptr<KubeletServer>> Start(const KubeletServerOptions& options,
                                                               runtime::PodRuntime& runtime);
  ~KubeletServer();
  uint16_t port() const;
  // Ends streams (follows, exec and port-forward sessions) and stops serving.
  void Stop();

 private:
  explicit KubeletServer(runtime::PodRuntime& runtime) : runtime_(runtime) {}
  void Handle(http::HttpRequest&& request, std::shared_ptr<http::HttpResponder> responder);
  void ServeLogs(const http::HttpRequest& request, const std::string& ns, const std::string& pod,
                 const std::string& container, std::shared_ptr<http::HttpResponder> responder);
  void ServeExec(const http::HttpRequest& request, const std::string& ns, const std::string& pod,
                 const std::string& container, std::shared_ptr<http::HttpResponder> responder);
  void ServePortForward(const http::HttpRequest& request, const std::string& ns, const std::string& pod,
                        std::shared_ptr<http::HttpResponder> responder);
  // Runs `fn` on a worker thread joined at Stop.
  void RunWorker(std::function<void()> fn);

  runtime::PodRuntime& runtime_;
  std::unique_ptr<http::HttpServer> server_;
  std::shared_ptr<std::atomic<bool>> stopping_ = std::make_shared<std::atomic<bool>>(false);
  std::mutex workers_mu_;
  std::list<std::thread> workers_;
  std::list<std::thread::id> finished_workers_;
};

}  // namespace kelpie::kubelet
