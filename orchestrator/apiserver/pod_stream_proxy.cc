#include "orchestrator/apiserver/pod_stream_proxy.h"

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/http/http_client.h"
#include "common/http/http_upgrade.h"
#include "common/log.h"
#include "orchestrator/api/api_error.h"
#include "orchestrator/store/store.h"

namespace kelpie::apiserver {
namespace {

using nlohmann::json;

http::HttpResponse ErrorResponseOf(const api::ApiError& e) {
  http::HttpResponse r;
  r.status = e.code;
  r.SetHeader("Content-Type", "application/json");
  r.body = e.ToJson();
  return r;
}

std::vector<std::string> ContainerNames(const json& pod, const char* field) {
  std::vector<std::string> names;
  const json* spec = pod.contains("spec") ? &pod["spec"] : nullptr;
  if (spec == nullptr || !spec->contains(field) || !(*spec)[field].is_array()) return names;
  for (const auto& c : (*spec)[field]) {
    if (c.is_object() && c.contains("name") && c["name"].is_string()) names.push_back(c["name"].get<std::string>());
  }
  return names;
}

// kube-apiserver's container choice for log/exec/attach.
absl::StatusOr<std::string> ChooseContainer(const json& pod, const std::string& pod_name, const std::string& asked,
                                            const api::ApiError** error_out, api::ApiError* error) {
  (void)error_out;
  std::vector<std::string> containers = ContainerNames(pod, "containers");
  std::vector<std::string> init = ContainerNames(pod, "initContainers");
  std::vector<std::string> ephemeral = ContainerNames(pod, "ephemeralContainers");
  if (!asked.empty()) {
    for (const auto* list : {&containers, &init, &ephemeral}) {
      for (const auto& n : *list) {
        if (n == asked) return asked;
      }
    }
    *error = api::BadRequest(absl::StrCat("container ", asked, " is not valid for pod ", pod_name));
    return absl::InvalidArgumentError(error->message);
  }
  const json& annotations = pod["metadata"].value("annotations", json::object());
  if (annotations.is_object() && annotations.contains("kubectl.kubernetes.io/default-container") &&
      annotations["kubectl.kubernetes.io/default-container"].is_string()) {
    std::string d = annotations["kubectl.kubernetes.io/default-container"].get<std::string>();
    for (const auto& n : containers) {
      if (n == d) return d;
    }
  }
  if (containers.size() == 1) return containers[0];
  if (containers.empty()) {
    *error = api::BadRequest(absl::StrCat("a container name must be specified for pod ", pod_name));
  } else {
    std::string msg = absl::StrCat("a container name must be specified for pod ", pod_name, ", choose one of: [",
                                   absl::StrJoin(containers, " "), "]");
    if (!init.empty()) absl::StrAppend(&msg, " or one of the init containers: [", absl::StrJoin(init, " "), "]");
    *error = api::BadRequest(msg);
  }
  return absl::InvalidArgumentError(error->message);
}

bool IsUpgradeRequest(const http::HttpRequest& r) {
  const std::string* up = r.Header("upgrade");
  return up != nullptr && !up->empty();
}

}  // namespace

PodStreamProxy::PodStreamProxy(store::Store& store, KubeletClientOptions options)
    : store_(store), options_(std::move(options)) {}

PodStreamProxy::~PodStreamProxy() { Stop(); }

bool PodStreamProxy::Handles(const RequestInfo& info) {
  if (!info.is_resource_request || !info.group.empty() || info.resource != "pods" || info.name.empty()) return false;
  const std::string& s = info.subresource;
  return s == "log" || s == "exec" || s == "attach" || s == "portforward";
}

void PodStreamProxy::Stop() {
  stopping_->store(true);
  std::list<std::thread> workers;
  {
    std::lock_guard<std::mutex> lock(workers_mu_);
    workers.swap(workers_);
    finished_.clear();
  }
  for (auto& t : workers) t.join();
}

void PodStreamProxy::RunWorker(std::function<void()> fn) {
  std::lock_guard<std::mutex> lock(workers_mu_);
  for (auto id : finished_) {
    for (auto it = workers_.begin(); it != workers_.end(); ++it) {
      if (it->get_id() == id) {
        it->join();
        workers_.erase(it);
        break;
      }
    }
  }
  finished_.clear();
  workers_.emplace_back([this, fn = std::move(fn)]() mutable {
    {
        // Whatever the work holds is released before the thread counts as
        // finished: a joiner never waits on a destructor.
        auto work = std::move(fn);
        work();
      }
    std::lock_guard<std::mutex> l(workers_mu_);
    finished_.push_back(std::this_thread::get_id());
  });
}

void PodStreamProxy::Serve(const RequestInfo& info, http::HttpRequest&& request,
                           std::shared_ptr<http::HttpResponder> responder) {
  const std::string& sub = info.subresource;
  if (sub == "log" && request.method != "GET") {
    return responder->Respond(ErrorResponseOf(api::MethodNotAllowed(absl::StrCat(request.method, " is not supported on pods/log"))));
  }
  if (sub != "log" && request.method != "GET" && request.method != "POST") {
    return responder->Respond(ErrorResponseOf(api::MethodNotAllowed(absl::StrCat(request.method, " is not supported on pods/", sub))));
  }
  auto pod_kv = store_.Get(absl::StrCat("/registry/pods/", info.namespace_name, "/", info.name));
  if (!pod_kv.ok()) {
    return responder->Respond(ErrorResponseOf(api::FromStoreStatus(pod_kv.status(), "", "pods", info.name)));
  }
  json pod = json::parse(pod_kv->value_view(), nullptr, false);
  if (pod.is_discarded() || !pod.is_object()) {
    return responder->Respond(ErrorResponseOf(api::InternalError("the stored pod does not parse")));
  }
  auto params = http::ParseQuery(request.query);
  auto param = [&](const std::string& name) -> std::string {
    for (const auto& [k, v] : params) {
      if (k == name) return v;
    }
    return "";
  };
  std::string container;
  if (sub != "portforward") {
    api::ApiError error;
    auto chosen = ChooseContainer(pod, info.name, param("container"), nullptr, &error);
    if (!chosen.ok()) return responder->Respond(ErrorResponseOf(error));
    container = *chosen;
  }
  std::string node_name;
  if (pod.contains("spec") && pod["spec"].is_object()) node_name = pod["spec"].value("nodeName", "");
  if (node_name.empty()) {
    if (sub == "log") {
      // kube-apiserver answers an unscheduled pod's log with nothing.
      return responder->Respond(http::HttpResponse{200, {{"Content-Type", "text/plain"}}, ""});
    }
    return responder->Respond(
        ErrorResponseOf(api::BadRequest(absl::StrCat("pod ", info.name, " does not have a host assigned"))));
  }
  auto node_kv = store_.Get(absl::StrCat("/registry/nodes/", node_name));
  if (!node_kv.ok()) {
    return responder->Respond(ErrorResponseOf(api::FromStoreStatus(node_kv.status(), "", "nodes", node_name)));
  }
  json node = json::parse(node_kv->value_view(), nullptr, false);
  std::string address;
  int port = 0;
  if (node.is_object() && node.contains("status") && node["status"].is_object()) {
    const json& status = node["status"];
    if (status.contains("addresses") && status["addresses"].is_array()) {
      for (const auto& a : status["addresses"]) {
        if (a.is_object() && a.value("type", "") == "InternalIP" && address.empty()) address = a.value("address", "");
      }
    }
    if (status.contains("daemonEndpoints") && status["daemonEndpoints"].is_object()) {
      const json& de = status["daemonEndpoints"];
      if (de.contains("kubeletEndpoint") && de["kubeletEndpoint"].is_object()) {
        const json& p = de["kubeletEndpoint"]["Port"];
        if (p.is_number_integer()) port = p.get<int>();
      }
    }
  }
  if (address.empty() || port <= 0 || port > 65535) {
    return responder->Respond(ErrorResponseOf(api::ApiError{
        503, "ServiceUnavailable",
        absl::StrCat("node ", node_name, " does not advertise a kubelet endpoint (InternalIP and daemonEndpoints)")}));
  }

  // The kubelet's URL, as kube-apiserver builds it.
  std::vector<std::pair<std::string, std::string>> out;
  std::string path;
  if (sub == "log") {
    path = absl::StrCat("/containerLogs/", info.namespace_name, "/", info.name, "/", container);
    for (const auto& [k, v] : params) {
      if (k == "follow" || k == "previous" || k == "timestamps" || k == "tailLines" || k == "sinceSeconds" ||
          k == "sinceTime" || k == "limitBytes") {
        out.emplace_back(k, v);
      }
    }
  } else if (sub == "exec" || sub == "attach") {
    path = absl::StrCat(sub == "exec" ? "/exec/" : "/attach/", info.namespace_name, "/", info.name, "/", container);
    auto flag = [&](const char* api_name, const char* kubelet_name) {
      std::string v = absl::AsciiStrToLower(param(api_name));
      if (v == "true" || v == "1") out.emplace_back(kubelet_name, "1");
    };
    flag("stdin", "input");
    flag("stdout", "output");
    flag("stderr", "error");
    flag("tty", "tty");
    for (const auto& [k, v] : params) {
      if (k == "command") out.emplace_back("command", v);
    }
  } else {
    path = absl::StrCat("/portForward/", info.namespace_name, "/", info.name);
    for (const auto& [k, v] : params) {
      if (k == "ports" || k == "port") out.emplace_back(k, v);
    }
  }
  std::string target = path;
  for (size_t i = 0; i < out.size(); ++i) {
    absl::StrAppend(&target, i == 0 ? "?" : "&", http::PercentEncode(out[i].first), "=", http::PercentEncode(out[i].second));
  }
  http::HttpClientOptions co;
  co.server = absl::StrCat("https://", address.find(':') != std::string::npos ? absl::StrCat("[", address, "]") : address,
                           ":", port);
  co.tls = options_.tls;
  co.request_timeout = std::chrono::seconds(30);

  if (sub == "log") {
    auto stopping = stopping_;
    auto canceller = std::make_shared<http::StreamCanceller>();
    responder->OnAbort([canceller] { canceller->Cancel(); });
    return RunWorker([co, target, responder, canceller] {
      bool started = false;
      int status = 0;
      std::string error_body;
      std::string error_type = "application/json";
      auto result = http::StreamWithHead(
          co, http::ClientRequest{"GET", target, {}, ""},
          [&](const http::HttpResponse& head) {
            status = head.status;
            if (status == 200) {
              responder->StartStream(200, {{"Content-Type", "text/plain"}});
              started = true;
            } else if (const std::string* t = head.Header("content-type")) {
              error_type = *t;
            }
          },
          [&](std::string_view data) {
            if (started) return responder->WriteChunk(std::string(data));
            error_body.append(data);
            return error_body.size() < (1 << 20);
          },
          *canceller);
      if (started) return responder->EndStream();
      if (!result.ok()) {
        return responder->Respond(ErrorResponseOf(
            api::ServiceUnavailable(absl::StrCat("the kubelet at ", co.server, " did not answer: ", result.status().message()))));
      }
      http::HttpResponse r;
      r.status = status != 0 ? status : result->status;
      r.SetHeader("Content-Type", error_type);
      r.body = std::move(error_body);
      responder->Respond(std::move(r));
    });
  }

  // exec, attach, portforward: the client's upgrade is relayed as is.
  if (!IsUpgradeRequest(request)) {
    return responder->Respond(ErrorResponseOf(
        api::BadRequest(absl::StrCat("Upgrade request required"))));
  }
  http::ClientRequest forward{request.method, target, {}, ""};
  for (const auto& [k, v] : request.headers) {
    if (k == "upgrade" || k == "connection" || absl::StartsWith(k, "sec-websocket-") ||
        k == "x-stream-protocol-version") {
      if (k == "sec-websocket-extensions") continue;  // the kubelet negotiates none
      forward.headers.emplace_back(k, v);
    }
  }
  RunWorker([co, forward, responder] {
    auto answer = http::DialUpgrade(co, forward);
    if (!answer.ok()) {
      return responder->Respond(ErrorResponseOf(
          api::ServiceUnavailable(absl::StrCat("the kubelet at ", co.server, " did not answer: ", answer.status().message()))));
    }
    if (!answer->connection) {
      http::HttpResponse r = std::move(answer->response);
      http::HttpResponse out;
      out.status = r.status;
      if (const std::string* t = r.Header("content-type")) out.SetHeader("Content-Type", *t);
      out.body = std::move(r.body);
      return responder->Respond(std::move(out));
    }
    http::HttpResponse head;
    head.status = 101;
    for (const auto& [k, v] : answer->response.headers) {
      std::string lower = absl::AsciiStrToLower(k);
      if (lower == "upgrade" || lower == "connection" || absl::StartsWith(lower, "sec-websocket-") ||
          lower == "x-stream-protocol-version") {
        head.headers.emplace_back(k, v);
      }
    }
    std::shared_ptr<http::UpgradedConnection> kubelet(std::move(answer->connection));
    http::UpgradeOrFail(*responder, std::move(head), [kubelet](std::unique_ptr<http::UpgradedConnection> client_conn) {
      // Kubelet -> client on a helper thread, client -> kubelet here; either
      // side ending closes both.
      std::thread down([&] {
        std::string buf(64 * 1024, '\0');
        while (true) {
          size_t n = kubelet->Read(buf.data(), buf.size());
          if (n == 0 || !client_conn->Write(std::string_view(buf.data(), n))) break;
        }
        client_conn->Close();
        kubelet->Close();
      });
      std::string buf(64 * 1024, '\0');
      while (true) {
        size_t n = client_conn->Read(buf.data(), buf.size());
        if (n == 0 || !kubelet->Write(std::string_view(buf.data(), n))) break;
      }
      kubelet->Close();
      client_conn->Close();
      down.join();
    });
  });
}

}  // namespace kelpie::apiserver
