// pods/log, pods/exec, pods/attach and pods/portforward: the API server
// finds the pod's node and proxies the request to that node's kubelet
// (status.daemonEndpoints.kubeletEndpoint.Port on its InternalIP) with its
// kubelet client certificate. Logs stream through as chunks; upgrade
// requests (WebSocket, SPDY) are relayed byte for byte after the kubelet's
// 101, so the client and the kubelet speak their protocol end to end.
#pragma once

#include <atomic>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/http/http_message.h"
#include "common/http/tls_context.h"
#include "orchestrator/apiserver/request_info.h"

namespace kelpie::store {
class Store;
}

namespace kelpie::apiserver {

struct KubeletClientOptions {
  // The API server's client certificate for kubelets and the CA their
  // serving certificates must chain to.
  http::TlsClientConfig tls;
};

class PodStreamProxy {
 public:
  PodStreamProxy(store::Store& store, KubeletClientOptions options);
  ~PodStreamProxy();

  static bool Handles(const RequestInfo& info);
  // Authorization happened before; this answers or relays the request.
  void Serve(const RequestInfo& info, http::HttpRequest&& request, std::shared_ptr<http::HttpResponder> responder);
  // Ends relayed streams and joins their threads (after the server stopped
  // accepting requests).
  void Stop();

 private:
  void RunWorker(std::function<void()> fn);

  store::Store& store_;
  KubeletClientOptions options_;
  std::shared_ptr<std::atomic<bool>> stopping_ = std::make_shared<std::atomic<bool>>(false);
  std::mutex workers_mu_;
  std::list<std::thread> workers_;
  std::list<std::thread::id> finished_;
};

}  // namespace kelpie::apiserver
