#include "orchestrator/kubelet/server/kubelet_server.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/http/http_upgrade.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "orchestrator/kubelet/server/cri_log.h"
#include "orchestrator/kubelet/server/stream_sessions.h"
#include "orchestrator/kubelet/server/websocket.h"

namespace kelpie::kubelet {
namespace {

using nlohmann::json;

http::HttpResponse StatusResponse(int code, const std::string& reason, const std::string& message) {
  json j = {{"kind", "Status"},   {"apiVersion", "v1"}, {"metadata", json::object()}, {"status", "Failure"},
            {"message", message}, {"reason", reason},   {"code", code}};
  http::HttpResponse r;
  r.status = code;
  r.SetHeader("Content-Type", "application/json");
  r.body = j.dump();
  return r;
}

http::HttpResponse BadRequest(const std::string& message) { return StatusResponse(400, "BadRequest", message); }
http::HttpResponse NotFound(const std::string& message) { return StatusResponse(404, "NotFound", message); }

bool QueryFlag(const std::string& v) { return v == "1" || v == "true" || v == "True"; }

// The newest ready sandbox of the pod, else the newest at all.
absl::StatusOr<runtime::PodSandboxStatus> FindSandbox(runtime::PodRuntime& rt, const std::string& ns,
                                                     const std::string& pod) {
  KELPIE_ASSIGN_OR_RETURN(auto sandboxes, rt.ListPodSandboxes());
  std::optional<runtime::PodSandboxStatus> best;
  for (auto& s : sandboxes) {
    if (s.config.pod_namespace != ns || s.config.name != pod) continue;
    bool better = !best || (s.state == runtime::SandboxState::kReady && best->state != runtime::SandboxState::kReady) ||
                  (s.state == best->state && s.created_at_ns > best->created_at_ns);
    if (better) best = std::move(s);
  }
  if (!best) return absl::NotFoundError(absl::StrCat("pod \"", ns, "/", pod, "\" not found"));
  return *best;
}

// Containers of that name in the sandbox, newest attempt first.
absl::StatusOr<std::vector<runtime::ContainerStatus>> ContainersNamed(runtime::PodRuntime& rt,
                                                                      const std::string& sandbox_id,
                                                                      const std::string& name) {
  KELPIE_ASSIGN_OR_RETURN(auto all, rt.ListContainers(sandbox_id));
  std::vector<runtime::ContainerStatus> out;
  for (auto& c : all) {
    if (c.name == name) out.push_back(std::move(c));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.attempt != b.attempt ? a.attempt > b.attempt : a.created_at_ns > b.created_at_ns;
  });
  return out;
}

std::string Lower(std::string s) { return absl::AsciiStrToLower(s); }

// Values of a comma-separated header (Sec-WebSocket-Protocol), in order.
std::vector<std::string> HeaderList(const http::HttpRequest& r, std::string_view name) {
  std::vector<std::string> out;
  for (const auto& [k, v] : r.headers) {
    if (k != name) continue;
    for (absl::string_view part : absl::StrSplit(v, ',')) {
      std::string p(absl::StripAsciiWhitespace(part));
      if (!p.empty()) out.push_back(p);
    }
  }
  return out;
}

bool IsWebSocketUpgrade(const http::HttpRequest& r) {
  const std::string* up = r.Header("upgrade");
  return up != nullptr && Lower(*up) == "websocket" && r.Header("sec-websocket-key") != nullptr;
}

bool IsSpdyUpgrade(const http::HttpRequest& r) {
  const std::string* up = r.Header("upgrade");
  return up != nullptr && Lower(*up) == "spdy/3.1";
}

http::HttpResponse WebSocketAccept(const http::HttpRequest& r, const std::string& protocol) {
  http::HttpResponse head;
  head.status = 101;
  head.SetHeader("Upgrade", "websocket");
  head.SetHeader("Connection", "Upgrade");
  head.SetHeader("Sec-WebSocket-Accept", WebSocketAcceptKey(*r.Header("sec-websocket-key")));
  if (!protocol.empty()) head.SetHeader("Sec-WebSocket-Protocol", protocol);
  return head;
}

}  // namespace

absl::StatusOr<std::unique_ptr<KubeletServer>> KubeletServer::Start(const KubeletServerOptions& options,
                                                                     runtime::PodRuntime& runtime) {
  if (options.certificate_file.empty() || options.private_key_file.empty() || options.client_ca_file.empty()) {
    return absl::InvalidArgumentError("the kubelet server needs a serving certificate, its key and the client CA");
  }
  std::unique_ptr<KubeletServer> server(new KubeletServer(runtime));
  http::HttpServerOptions ho;
  ho.bind_address = options.bind_address;
  ho.port = options.port;
  ho.tls.certificate_file = options.certificate_file;
  ho.tls.private_key_file = options.private_key_file;
  ho.tls.client_ca_file = options.client_ca_file;
  ho.max_body_bytes = 64 * 1024;
  KubeletServer* self = server.get();
  KELPIE_ASSIGN_OR_RETURN(server->server_,
                          http::HttpServer::Start(ho, [self](http::HttpRequest&& r, std::shared_ptr<http::HttpResponder> w) {
                            self->Handle(std::move(r), std::move(w));
                          }));
  return server;
}

KubeletServer::~KubeletServer() { Stop(); }

uint16_t KubeletServer::port() const { return server_ ? server_->port() : 0; }

void KubeletServer::Stop() {
  stopping_->store(true);
  if (server_) server_->Shutdown(std::chrono::seconds(2));
  std::list<std::thread> workers;
  {
    std::lock_guard<std::mutex> lock(workers_mu_);
    workers.swap(workers_);
    finished_workers_.clear();
  }
  for (auto& t : workers) t.join();
  server_.reset();
}

void KubeletServer::RunWorker(std::function<void()> fn) {
  std::lock_guard<std::mutex> lock(workers_mu_);
  for (auto id : finished_workers_) {
    for (auto it = workers_.begin(); it != workers_.end(); ++it) {
      if (it->get_id() == id) {
        it->join();
        workers_.erase(it);
        break;
      }
    }
  }
  finished_workers_.clear();
  workers_.emplace_back([this, fn = std::move(fn)]() mutable {
    {
        // Whatever the work holds is released before the thread counts as
        // finished: a joiner never waits on a destructor.
        auto work = std::move(fn);
        work();
      }
    std::lock_guard<std::mutex> l(workers_mu_);
    finished_workers_.push_back(std::this_thread::get_id());
  });
}

void KubeletServer::Handle(http::HttpRequest&& request, std::shared_ptr<http::HttpResponder> responder) {
  if (!request.peer.has_client_certificate) {
    return responder->Respond(StatusResponse(401, "Unauthorized", "Unauthorized"));
  }
  const auto& groups = request.peer.organizations;
  if (std::find(groups.begin(), groups.end(), "system:masters") == groups.end()) {
    return responder->Respond(StatusResponse(
        403, "Forbidden",
        absl::StrCat("Forbidden (user=", request.peer.common_name, ", path=", request.path, ")")));
  }
  std::vector<std::string> parts = absl::StrSplit(request.path, '/', absl::SkipEmpty());
  const bool get = request.method == "GET";
  if (request.path == "/healthz") {
    return responder->Respond(http::HttpResponse{200, {{"Content-Type", "text/plain"}}, "ok"});
  }
  if (!parts.empty() && parts[0] == "containerLogs") {
    if (parts.size() != 4) return responder->Respond(NotFound("expected /containerLogs/<namespace>/<pod>/<container>"));
    if (!get) return responder->Respond(StatusResponse(405, "MethodNotAllowed", "only GET is allowed"));
    return ServeLogs(request, parts[1], parts[2], parts[3], std::move(responder));
  }
  if (!parts.empty() && parts[0] == "exec") {
    // /exec/<ns>/<pod>/<container> and /exec/<ns>/<pod>/<uid>/<container>
    if (parts.size() != 4 && parts.size() != 5) {
      return responder->Respond(NotFound("expected /exec/<namespace>/<pod>/<container>"));
    }
    return ServeExec(request, parts[1], parts[2], parts.back(), std::move(responder));
  }
  if (!parts.empty() && parts[0] == "portForward") {
    if (parts.size() != 3 && parts.size() != 4) {
      return responder->Respond(NotFound("expected /portForward/<namespace>/<pod>"));
    }
    return ServePortForward(request, parts[1], parts[2], std::move(responder));
  }
  responder->Respond(NotFound(absl::StrCat("the kubelet does not serve ", request.path)));
}

void KubeletServer::ServeLogs(const http::HttpRequest& request, const std::string& ns, const std::string& pod,
                              const std::string& container, std::shared_ptr<http::HttpResponder> responder) {
  CriLogOptions options;
  bool follow = false, previous = false;
  for (const auto& [k, v] : http::ParseQuery(request.query)) {
    int64_t n = 0;
    if (k == "follow") {
      follow = QueryFlag(v);
    } else if (k == "previous") {
      previous = QueryFlag(v);
    } else if (k == "timestamps") {
      options.timestamps = QueryFlag(v);
    } else if (k == "tailLines") {
      if (!absl::SimpleAtoi(v, &n) || n < 0) return responder->Respond(BadRequest("tailLines must be a number >= 0"));
      options.tail_lines = n;
    } else if (k == "limitBytes") {
      if (!absl::SimpleAtoi(v, &n) || n < 1) return responder->Respond(BadRequest("limitBytes must be a number > 0"));
      options.limit_bytes = n;
    } else if (k == "sinceSeconds") {
      if (!absl::SimpleAtoi(v, &n) || n < 1) return responder->Respond(BadRequest("sinceSeconds must be a number > 0"));
      options.since_ns = absl::ToUnixNanos(absl::Now() - absl::Seconds(n));
    } else if (k == "sinceTime") {
      absl::Time t;
      std::string err;
      if (!absl::ParseTime(absl::RFC3339_full, v, &t, &err)) {
        return responder->Respond(BadRequest(absl::StrCat("sinceTime \"", v, "\" is not an RFC 3339 time")));
      }
      options.since_ns = absl::ToUnixNanos(t);
    }
  }
  auto sandbox = FindSandbox(runtime_, ns, pod);
  if (!sandbox.ok()) return responder->Respond(NotFound(std::string(sandbox.status().message())));
  auto containers = ContainersNamed(runtime_, sandbox->id, container);
  if (!containers.ok()) return responder->Respond(StatusResponse(500, "InternalError", std::string(containers.status().message())));
  if (containers->empty()) {
    return responder->Respond(BadRequest(
        absl::StrCat("container \"", container, "\" in pod \"", pod, "\" is waiting to start: ContainerCreating")));
  }
  size_t index = previous ? 1 : 0;
  if (containers->size() <= index) {
    return responder->Respond(BadRequest(
        absl::StrCat("previous terminated container \"", container, "\" in pod \"", pod, "\" not found")));
  }
  runtime::ContainerStatus target = (*containers)[index];
  if (target.log_path.empty()) {
    return responder->Respond(BadRequest(absl::StrCat("container \"", container, "\" in pod \"", pod, "\" has no log")));
  }
  // Only the current container can still be written to.
  follow = follow && !previous;
  auto cancelled = std::make_shared<std::atomic<bool>>(false);
  responder->OnAbort([cancelled] { cancelled->store(true); });
  responder->StartStream(200, {{"Content-Type", "text/plain"}});
  auto stopping = stopping_;
  runtime::PodRuntime* rt = &runtime_;
  RunWorker([rt, target, options, follow, responder, cancelled, stopping] {
    auto still_running = [&] {
      auto st = rt->GetContainerStatus(target.id);
      return st.ok() && st->state == runtime::ContainerState::kRunning;
    };
    auto is_cancelled = [&] { return cancelled->load() || stopping->load(); };
    absl::Status st = StreamCriLog(
        target.log_path, options, follow, [&](std::string_view data) { return responder->WriteChunk(std::string(data)); },
        still_running, is_cancelled);
    if (!st.ok()) spdlog::debug("container log {}: {}", target.log_path, st.message());
    responder->EndStream();
  });
}

void KubeletServer::ServeExec(const http::HttpRequest& request, const std::string& ns, const std::string& pod,
                              const std::string& container, std::shared_ptr<http::HttpResponder> responder) {
  ExecStreams streams{false, false, false};
  std::vector<std::string> command;
  bool tty = false;
  for (const auto& [k, v] : http::ParseQuery(request.query)) {
    if (k == "command") command.push_back(v);
    // The kubelet's names, and the API's as clients talking to it directly use.
    if (k == "input" || k == "stdin") streams.stdin = QueryFlag(v);
    if (k == "output" || k == "stdout") streams.stdout = QueryFlag(v);
    if (k == "error" || k == "stderr") streams.stderr = QueryFlag(v);
    if (k == "tty") tty = QueryFlag(v);
  }
  if (command.empty()) return responder->Respond(BadRequest("you must specify at least 1 command"));
  if (!streams.stdin && !streams.stdout && !streams.stderr) {
    return responder->Respond(BadRequest("you must specify at least one of stdin, stdout, stderr"));
  }
  if (!IsWebSocketUpgrade(request)) {
    return responder->Respond(BadRequest(
        "unable to upgrade connection: exec needs a WebSocket upgrade with v5.channel.k8s.io or v4.channel.k8s.io"));
  }
  std::string protocol;
  for (const auto& p : HeaderList(request, "sec-websocket-protocol")) {
    if (p == "v5.channel.k8s.io" || p == "v4.channel.k8s.io") {
      protocol = p;
      break;
    }
  }
  if (protocol.empty()) {
    return responder->Respond(
        BadRequest("unable to upgrade connection: none of the offered subprotocols is supported "
                   "(v5.channel.k8s.io, v4.channel.k8s.io)"));
  }
  auto sandbox = FindSandbox(runtime_, ns, pod);
  if (!sandbox.ok()) return responder->Respond(NotFound(std::string(sandbox.status().message())));
  auto containers = ContainersNamed(runtime_, sandbox->id, container);
  if (!containers.ok() || containers->empty() || (*containers)[0].state != runtime::ContainerState::kRunning) {
    return responder->Respond(
        BadRequest(absl::StrCat("container \"", container, "\" in pod \"", pod, "\" is not running")));
  }
  // Without a terminal the process still runs; its output is not a tty.
  if (tty) spdlog::debug("exec in {}/{}: tty requested, running without one", ns, pod);
  runtime::ExecRequest er;
  er.command = command;
  er.stdin = streams.stdin;
  auto session = runtime_.Exec((*containers)[0].id, er);
  if (!session.ok()) {
    return responder->Respond(StatusResponse(500, "InternalError",
                                             absl::StrCat("exec in container \"", container, "\" failed: ",
                                                          session.status().message())));
  }
  auto shared_session = std::shared_ptr<runtime::ExecSession>(std::move(*session));
  http::UpgradeOrFail(*responder, WebSocketAccept(request, protocol),
                     [protocol, shared_session, streams, command](std::unique_ptr<http::UpgradedConnection> conn) {
                       RunExecSession(*conn, protocol, *shared_session, streams, command);
                     });
  // A session whose upgrade never happened (client gone) is killed when
  // the handler's captures are dropped: ExecSession's owner kills nothing
  // by itself, so do it here on abort.
  responder->OnAbort([shared_session] { shared_session->Kill(); });
}

void KubeletServer::ServePortForward(const http::HttpRequest& request, const std::string& ns, const std::string& pod,
                                     std::shared_ptr<http::HttpResponder> responder) {
  auto sandbox = FindSandbox(runtime_, ns, pod);
  if (!sandbox.ok()) return responder->Respond(NotFound(std::string(sandbox.status().message())));
  if (sandbox->state != runtime::SandboxState::kReady || sandbox->netns_path.empty()) {
    return responder->Respond(BadRequest(absl::StrCat("pod \"", pod, "\" has no running sandbox")));
  }
  std::string netns = sandbox->netns_path;
  auto stopping = stopping_;
  if (IsSpdyUpgrade(request)) {
    const std::string* version = request.Header("x-stream-protocol-version");
    if (version == nullptr || !absl::StrContains(*version, "portforward.k8s.io")) {
      return responder->Respond(BadRequest("unable to upgrade: X-Stream-Protocol-Version portforward.k8s.io is required"));
    }
    http::HttpResponse head;
    head.status = 101;
    head.SetHeader("Connection", "Upgrade");
    head.SetHeader("Upgrade", "SPDY/3.1");
    head.SetHeader("X-Stream-Protocol-Version", "portforward.k8s.io");
    return http::UpgradeOrFail(*responder, std::move(head), [netns, stopping](std::unique_ptr<http::UpgradedConnection> conn) {
      RunSpdyPortForward(*conn, false, netns, *stopping);
    });
  }
  if (!IsWebSocketUpgrade(request)) {
    return responder->Respond(BadRequest("unable to upgrade connection: port-forward needs SPDY/3.1 or a WebSocket"));
  }
  std::vector<std::string> offered = HeaderList(request, "sec-websocket-protocol");
  auto offers = [&](const std::string& p) { return std::find(offered.begin(), offered.end(), p) != offered.end(); };
  if (offers("SPDY/3.1+portforward.k8s.io")) {
    return http::UpgradeOrFail(*responder, WebSocketAccept(request, "SPDY/3.1+portforward.k8s.io"),
                              [netns, stopping](std::unique_ptr<http::UpgradedConnection> conn) {
                                RunSpdyPortForward(*conn, true, netns, *stopping);
                              });
  }
  std::vector<int> ports;
  for (const auto& [k, v] : http::ParseQuery(request.query)) {
    if (k != "ports" && k != "port") continue;
    for (absl::string_view p : absl::StrSplit(v, ',', absl::SkipEmpty())) {
      int port = 0;
      if (!absl::SimpleAtoi(p, &port) || port < 1 || port > 65535) {
        return responder->Respond(BadRequest(absl::StrCat("invalid port \"", std::string(p), "\"")));
      }
      ports.push_back(port);
    }
  }
  if (ports.empty()) return responder->Respond(BadRequest("query parameter \"port\" is required"));
  std::string protocol;
  for (const auto& p : offered) {
    if (p == "v4.channel.k8s.io" || p == "portforward.k8s.io") {
      protocol = p;
      break;
    }
  }
  if (protocol.empty() && !offered.empty()) {
    return responder->Respond(BadRequest("unable to upgrade connection: none of the offered subprotocols is supported"));
  }
  http::UpgradeOrFail(*responder, WebSocketAccept(request, protocol), [netns, ports](std::unique_ptr<http::UpgradedConnection> conn) {
    RunWebSocketPortForward(*conn, netns, ports);
  });
}

}  // namespace kelpie::kubelet
