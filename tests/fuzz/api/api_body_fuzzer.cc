// libFuzzer entry point for the API server's request decoding: the first
// byte picks a request (create, update, patch of each kind, subresources,
// delete options, list selectors) and its content type, the rest is the
// body (or the query of a list). Whatever the bytes, the server must answer
// with a Kubernetes Status or an object, never crash, hang or answer 5xx.
// Built as a fuzzer with clang and KELPIE_FUZZ=ON; otherwise the seed corpus
// is replayed through this same function by api_fuzz_replay_test.
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "common/http/http_message.h"
#include "orchestrator/api/resource_registry.h"
#include "orchestrator/apiserver/request_info.h"
#include "orchestrator/apiserver/resource_api.h"
#include "orchestrator/store/embedded_store.h"

namespace {

using kelpie::http::HttpRequest;
using kelpie::http::HttpResponse;

// Collects the one response a request gets.
class CapturingResponder : public kelpie::http::HttpResponder {
 public:
  void Respond(HttpResponse response) override {
    std::lock_guard lock(mu_);
    response_ = std::move(response);
    cv_.notify_all();
  }
  void StartStream(int status, kelpie::http::HeaderList) override {
    std::lock_guard lock(mu_);
    response_ = HttpResponse{status, {}, ""};
    cv_.notify_all();
  }
  bool WriteChunk(std::string) override { return true; }
  void EndStream() override {}
  void OnAbort(std::function<void()>) override {}

  std::optional<HttpResponse> Wait() {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(10), [&] { return response_.has_value(); });
    return response_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<HttpResponse> response_;
};

struct Case {
  const char* method;
  const char* path;
  const char* content_type;  // nullptr: the bytes are the query string
};

constexpr Case kCases[] = {
    {"POST", "/api/v1/namespaces/default/configmaps", "application/json"},
    {"POST", "/api/v1/namespaces/default/configmaps", "application/yaml"},
    {"POST", "/api/v1/namespaces/default/pods", "application/json"},
    {"POST", "/apis/apps/v1/namespaces/default/deployments", "application/yaml"},
    {"PUT", "/api/v1/namespaces/default/configmaps/fuzz", "application/json"},
    {"PATCH", "/api/v1/namespaces/default/configmaps/fuzz", "application/merge-patch+json"},
    {"PATCH", "/apis/apps/v1/namespaces/default/deployments/fuzz", "application/strategic-merge-patch+json"},
    {"PATCH", "/api/v1/namespaces/default/configmaps/fuzz", "application/json-patch+json"},
    {"PATCH", "/apis/apps/v1/namespaces/default/deployments/fuzz/scale", "application/merge-patch+json"},
    {"POST", "/api/v1/namespaces/default/pods/fuzz/binding", "application/json"},
    {"DELETE", "/api/v1/namespaces/default/configmaps/fuzz", "application/json"},
    {"POST", "/api/v1/namespaces", "application/json"},
    {"POST", "/api/v1/namespaces/default/services", "application/json"},
    {"PUT", "/api/v1/namespaces/default/pods/fuzz/status", "application/json"},
    {"GET", "/api/v1/pods", nullptr},
    {"GET", "/apis/apps/v1/namespaces/default/deployments", nullptr},
    // Protobuf bodies (k8s\0 + runtime.Unknown), as kubectl's typed clients send them.
    {"POST", "/api/v1/namespaces", "application/vnd.kubernetes.protobuf"},
    {"POST", "/api/v1/namespaces/default/configmaps", "application/vnd.kubernetes.protobuf"},
    {"POST", "/apis/apps/v1/namespaces/default/deployments", "application/vnd.kubernetes.protobuf"},
    {"POST", "/apis/batch/v1/namespaces/default/jobs", "application/vnd.kubernetes.protobuf"},
    {"POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
     "application/vnd.kubernetes.protobuf"},
    {"POST", "/api/v1/namespaces/default/services", "application/vnd.kubernetes.protobuf"},
    {"PUT", "/api/v1/namespaces/default/configmaps/fuzz", "application/vnd.kubernetes.protobuf"},
};
constexpr size_t kCaseCount = sizeof(kCases) / sizeof(kCases[0]);

class Harness {
 public:
  Harness() {
    char dir_template[] = "/tmp/kelpie-api-fuzz-XXXXXX";
    const char* dir = mkdtemp(dir_template);
    if (dir == nullptr) std::abort();
    dir_ = dir;
    kelpie::store::EmbeddedStoreOptions options;
    options.data_dir = dir_ + "/store";
    options.compaction_interval = std::chrono::milliseconds(0);
    auto store = kelpie::store::EmbeddedStore::Open(options);
    if (!store.ok()) std::abort();
    store_ = std::move(*store);
    api_ = std::make_unique<kelpie::apiserver::ResourceApi>(*store_, kelpie::api::ResourceRegistry::Builtin());
    if (!api_->EnsureDefaultNamespaces().ok()) std::abort();
    Seed();
  }
  ~Harness() {
    api_.reset();
    store_.reset();
    std::string command = "rm -rf '" + dir_ + "'";
    if (std::system(command.c_str()) != 0) std::fprintf(stderr, "could not remove %s\n", dir_.c_str());
  }

  // Objects the update, patch and subresource cases act on.
  void Seed() {
    Send("POST", "/api/v1/namespaces/default/configmaps", "application/json",
         R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"fuzz"},"data":{"a":"b"}})");
    Send("POST", "/apis/apps/v1/namespaces/default/deployments", "application/json",
         R"({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"fuzz"},"spec":{"replicas":1,
             "selector":{"matchLabels":{"app":"fuzz"}},"template":{"metadata":{"labels":{"app":"fuzz"}},
             "spec":{"containers":[{"name":"app","image":"busybox"}]}}}})");
    Send("POST", "/api/v1/namespaces/default/pods", "application/json",
         R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"fuzz"},
             "spec":{"containers":[{"name":"app","image":"busybox"}]}})");
  }

  HttpResponse Send(const std::string& method, const std::string& path, const char* content_type,
                    std::string body, std::string query = "") {
    HttpRequest request;
    request.method = method;
    request.path = path;
    request.query = std::move(query);
    request.target = request.query.empty() ? path : path + "?" + request.query;
    if (content_type != nullptr) request.headers.emplace_back("content-type", content_type);
    request.body = std::move(body);
    bool watch = false;
    auto info = kelpie::apiserver::ParseRequestInfo(method, path, watch);
    auto responder = std::make_shared<CapturingResponder>();
    api_->Serve(info, std::move(request), responder);
    auto response = responder->Wait();
    if (!response) {
      std::fprintf(stderr, "no response to %s %s within 10 s\n", method.c_str(), path.c_str());
      std::abort();
    }
    return *response;
  }

 private:
  std::string dir_;
  std::unique_ptr<kelpie::store::Store> store_;
  std::unique_ptr<kelpie::apiserver::ResourceApi> api_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Harness* harness = [] {
    static Harness h;
    return &h;
  }();
  if (size == 0) return 0;
  const Case& c = kCases[data[0] % kCaseCount];
  std::string bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  HttpResponse response = c.content_type != nullptr
                              ? harness->Send(c.method, c.path, c.content_type, std::move(bytes))
                              : harness->Send(c.method, c.path, nullptr, "", std::move(bytes));
  // Bad input is the client's fault: never a server error.
  if (response.status >= 500) {
    std::fprintf(stderr, "%s %s answered %d: %s\n", c.method, c.path, response.status, response.body.c_str());
    std::abort();
  }
  // Every answer is JSON (an object, a list or a Status).
  if (!nlohmann::json::accept(response.body)) {
    std::fprintf(stderr, "%s %s answered non-JSON: %s\n", c.method, c.path, response.body.c_str());
    std::abort();
  }
  if (std::string(c.method) == "DELETE") harness->Seed();
  return 0;
}
