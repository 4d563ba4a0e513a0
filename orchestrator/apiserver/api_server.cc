#include "orchestrator/apiserver/api_server.h"

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/version.h"
#include "orchestrator/api/api_error.h"
#include "orchestrator/api/object_meta.h"
#include "orchestrator/api/resource_registry.h"
#include "orchestrator/apiserver/apiserver_metrics.h"
#include "orchestrator/apiserver/audit_log.h"
#include "orchestrator/apiserver/join_api.h"
#include "orchestrator/apiserver/auth_api.h"
#include "orchestrator/apiserver/authenticator.h"
#include "orchestrator/apiserver/authorizer.h"
#include "orchestrator/apiserver/deadline_scheduler.h"
#include "orchestrator/apiserver/inflight_limiter.h"
#include "orchestrator/apiserver/pod_stream_proxy.h"
#include "common/http/http_upgrade.h"
#include "orchestrator/apiserver/openapi_handler.h"
#include "orchestrator/apiserver/request_info.h"
#include "orchestrator/apiserver/resource_api.h"

namespace kelpie::apiserver {

std::string StatusJson(int code, const std::string& reason, const std::string& message) {
  nlohmann::json j = {{"kind", "Status"},       {"apiVersion", "v1"},
                      {"metadata", nlohmann::json::object()},
                      {"status", "Failure"},    {"message", message},
                      {"reason", reason},       {"code", code}};
  return j.dump();
}

absl::StatusOr<std::chrono::milliseconds> ParseDuration(const std::string& text) {
  std::string s = std::string(absl::StripAsciiWhitespace(text));
  auto bad = [&] {
    return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" is not a duration such as 60s, 1m30s or 500ms"));
  };
  if (s.empty()) return bad();
  int64_t whole = 0;
  if (absl::SimpleAtoi(s, &whole)) {
    if (whole < 0) return bad();
    return std::chrono::milliseconds(whole * 1000);
  }
  double total_ms = 0;
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
    if (i == start) return bad();
    double value = 0;
    if (!absl::SimpleAtod(s.substr(start, i - start), &value)) return bad();
    size_t unit_start = i;
    while (i < s.size() && std::isalpha(static_cast<unsigned char>(s[i]))) ++i;
    std::string unit = s.substr(unit_start, i - unit_start);
    double scale;
    if (unit == "h") {
      scale = 3600e3;
    } else if (unit == "m") {
      scale = 60e3;
    } else if (unit == "s") {
      scale = 1e3;
    } else if (unit == "ms") {
      scale = 1;
    } else if (unit == "us" || unit == "µs") {
      scale = 1e-3;
    } else if (unit == "ns") {
      scale = 1e-6;
    } else {
      return bad();
    }
    total_ms += value * scale;
  }
  return std::chrono::milliseconds(static_cast<int64_t>(total_ms));
}

namespace {

using Clock = std::chrono::steady_clock;

http::HttpResponse JsonResponse(int status, std::string body) {
  http::HttpResponse r;
  r.status = status;
  r.SetHeader("Content-Type", "application/json");
  r.SetHeader("Cache-Control", "no-cache, private");
  r.body = std::move(body);
  return r;
}

http::HttpResponse ErrorResponse(const api::ApiError& e) {
  http::HttpResponse r = JsonResponse(e.code, e.ToJson());
  if (e.retry_after_seconds > 0) r.SetHeader("Retry-After", std::to_string(e.retry_after_seconds));
  return r;
}

http::HttpResponse TextResponse(int status, std::string body) {
  http::HttpResponse r;
  r.status = status;
  r.SetHeader("Content-Type", "text/plain; charset=utf-8");
  r.SetHeader("X-Content-Type-Options", "nosniff");
  r.SetHeader("Cache-Control", "no-cache, private");
  r.body = std::move(body);
  return r;
}

std::string VersionJson() {
  const VersionInfo& v = GetVersionInfo();
  nlohmann::json j = {{"major", v.kube_major},
                      {"minor", v.kube_minor},
                      {"gitVersion", v.git_version},
                      {"gitCommit", v.git_commit},
                      {"gitTreeState", v.git_tree_state},
                      {"buildDate", v.build_date},
                      {"goVersion", "n/a (C++20, " + v.compiler + ")"},
                      {"compiler", "gc"},
                      {"platform", v.platform}};
  return j.dump(2);
}

bool IsPublicPath(const std::string& path) {
  return path == "/healthz" || path == "/livez" || path == "/readyz" || absl::StartsWith(path, "/healthz/") ||
         absl::StartsWith(path, "/livez/") || absl::StartsWith(path, "/readyz/") || path == "/version" ||
         path == "/version/";
}

// A random (version 4) UUID for the Audit-Id of every request, from a
// per-thread generator seeded from the system's: cheaper than asking
// OpenSSL per request, and unique enough to tell requests apart.
std::string RequestId() {
  thread_local uint64_t state = [] {
    uint64_t seed = 0;
    std::string uid = api::NewUid();
    for (char c : uid) seed = seed * 131 + static_cast<unsigned char>(c);
    return seed;
  }();
  auto next = [] {
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  unsigned char b[16];
  uint64_t hi = next(), lo = next();
  for (int i = 0; i < 8; ++i) {
    b[i] = static_cast<unsigned char>(hi >> (8 * i));
    b[8 + i] = static_cast<unsigned char>(lo >> (8 * i));
  }
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    out += kHex[b[i] >> 4];
    out += kHex[b[i] & 15];
  }
  return out;
}

// "10.0.0.1:5555" / "[::1]:5555" -> the address alone.
std::string SourceIp(const std::string& remote) {
  if (!remote.empty() && remote.front() == '[') {
    size_t end = remote.find(']');
    return end == std::string::npos ? remote : remote.substr(1, end - 1);
  }
  size_t colon = remote.rfind(':');
  if (colon == std::string::npos || remote.find(':') != colon) return remote;
  return remote.substr(0, colon);
}

bool IsMutatingVerb(const std::string& verb) {
  return verb == "create" || verb == "update" || verb == "patch" || verb == "delete" || verb == "deletecollection";
}

// Without an authorizer: the admin group only (what the server did before
// RBAC existed; tests that need nothing more use it).
class MastersOnlyAuthorizer : public Authorizer {
 public:
  AuthorizationDecision Authorize(const AuthorizationAttributes& a) const override {
    return {a.user.InGroup(kSystemMasters), ""};
  }
  SubjectRules RulesFor(const UserInfo&, const std::string&) const override { return {}; }
};

}  // namespace

// What every request shares with the server, kept alive by requests that
// answer after the server object is gone.
struct ApiServer::State {
  std::shared_ptr<prometheus::Registry> registry;
  std::unique_ptr<ApiServerMetrics> metrics;
  std::unique_ptr<InflightLimiter> limiter;
  std::shared_ptr<AuditLog> audit_log;
  DeadlineScheduler deadlines;
  std::mutex registries_mu;
  std::vector<std::shared_ptr<prometheus::Collectable>> registries;
};

// Wraps the transport's responder: the first answer wins (a timeout's 504
// or the handler's), and when the request completes it is measured,
// released from the in-flight budget and audited.
class ApiServer::ObservedResponder : public http::HttpResponder,
                                     public http::UpgradableResponder,
                                     public std::enable_shared_from_this<ObservedResponder> {
 public:
  struct Context {
    Clock::time_point start = Clock::now();
    std::string received_timestamp;  // set when the request is audited
    std::string audit_id = RequestId();
    RequestInfo info;
    RequestMetricLabels labels;
    bool long_running = false;
    bool watch_counted = false;
    std::string watch_kind;
    std::optional<InflightLimiter::Kind> slot;
    std::optional<uint64_t> deadline;
    // audit
    bool audit = false;
    AuditEvent event;
  };

  ObservedResponder(std::shared_ptr<http::HttpResponder> inner, std::shared_ptr<State> state, Context context)
      : inner_(std::move(inner)), state_(std::move(state)), ctx_(std::move(context)) {}

  void Init() {
    // Handlers may keep only a weak reference (a watch's store consumer
    // does): the responder keeps itself alive until the request completes.
    self_ = shared_from_this();
    std::weak_ptr<ObservedResponder> weak = self_;
    inner_->OnAbort([weak] {
      if (auto self = weak.lock()) self->Aborted();
    });
  }

  Context& context() { return ctx_; }

  void Respond(http::HttpResponse response) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (answered_) return;
      answered_ = true;
    }
    response.SetHeader("Audit-Id", ctx_.audit_id);
    int code = response.status;
    std::string error_body = code >= 400 ? response.body : std::string();
    inner_->Respond(std::move(response));
    Finish(code, error_body);
  }

  void StartStream(int status, http::HeaderList headers) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (answered_) return;
      answered_ = true;
      streaming_ = true;
      stream_code_ = status;
    }
    // A stream outlives any request timeout.
    CancelDeadline();
    headers.emplace_back("Audit-Id", ctx_.audit_id);
    inner_->StartStream(status, std::move(headers));
  }

  bool WriteChunk(std::string data) override { return inner_->WriteChunk(std::move(data)); }

  void EndStream() override {
    inner_->EndStream();
    Finish(StreamCode(), "");
  }

  void OnAbort(std::function<void()> callback) override { inner_->OnAbort(std::move(callback)); }

  void Upgrade(http::HttpResponse head, http::UpgradeHandler handler) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (answered_) return;
      answered_ = true;
    }
    CancelDeadline();
    head.SetHeader("Audit-Id", ctx_.audit_id);
    int code = head.status;
    // The request is complete when the switched connection ends.
    std::shared_ptr<ObservedResponder> self = shared_from_this();
    http::UpgradeOrFail(*inner_, std::move(head), [self, code, fn = std::move(handler)](std::unique_ptr<http::UpgradedConnection> c) {
      fn(std::move(c));
      self->Finish(code, "");
    });
  }

  // Request timeout: answer 504 unless the handler already did.
  void TimedOut() {
    api::ApiError e{504, "Timeout", "Timeout: request did not complete within the allotted timeout"};
    Respond(ErrorResponse(e));
  }

 private:
  int StreamCode() {
    std::lock_guard<std::mutex> lock(mu_);
    return stream_code_;
  }

  void Aborted() {
    bool streaming;
    {
      std::lock_guard<std::mutex> lock(mu_);
      streaming = streaming_;
    }
    // A stream (watch) ends when its client goes; a plain request still
    // holds its slot until the handler answers or the timeout does.
    if (streaming) Finish(StreamCode(), "");
  }

  void CancelDeadline() {
    std::optional<uint64_t> id;
    {
      std::lock_guard<std::mutex> lock(mu_);
      id = ctx_.deadline;
      ctx_.deadline.reset();
    }
    if (id) state_->deadlines.Cancel(*id);
  }

  void Finish(int code, const std::string& error_body) {
    if (finished_.exchange(true)) return;
    std::shared_ptr<ObservedResponder> keep;  // released when this returns
    {
      std::lock_guard<std::mutex> lock(mu_);
      keep.swap(self_);
    }
    CancelDeadline();
    double seconds = std::chrono::duration<double>(Clock::now() - ctx_.start).count();
    if (state_->metrics) {
      state_->metrics->ObserveRequest(ctx_.labels, code, seconds);
      if (ctx_.long_running) state_->metrics->AddLongRunning(ctx_.labels, -1);
      if (ctx_.watch_counted) {
        state_->metrics->AddWatcher(ctx_.info.group, ctx_.info.version, ctx_.watch_kind, -1);
      }
    }
    if (ctx_.slot) {
      state_->limiter->Release(*ctx_.slot);
      if (state_->metrics) {
        state_->metrics->SetInflight(KindLabel(*ctx_.slot), state_->limiter->current(*ctx_.slot));
      }
    }
    if (ctx_.audit && state_->audit_log) {
      AuditEvent& ev = ctx_.event;
      ev.response_code = code;
      if (code >= 400 && !error_body.empty()) {
        nlohmann::json status = nlohmann::json::parse(error_body, nullptr, false);
        if (status.is_object() && status.value("kind", "") == "Status") {
          ev.response_status = status.value("status", "Failure");
          ev.response_reason = status.value("reason", "");
          ev.response_message = status.value("message", "");
        }
      }
      ev.stage_timestamp = AuditTimestampNow();
      state_->audit_log->Record(ev);
    }
  }

  std::shared_ptr<http::HttpResponder> inner_;
  std::shared_ptr<State> state_;
  Context ctx_;
  std::mutex mu_;
  bool answered_ = false;
  bool streaming_ = false;
  int stream_code_ = 200;
  std::atomic<bool> finished_{false};
  std::shared_ptr<ObservedResponder> self_;  // until Finish
};

ApiServer::ApiServer(ApiServerOptions options, ResourceApi* resources, ApiServerSecurity security,
                     std::shared_ptr<prometheus::Registry> metrics)
    : options_(std::move(options)), resources_(resources), security_(std::move(security)) {
  if (!security_.authenticator) security_.authenticator = std::make_shared<RequestAuthenticator>();
  if (!security_.authorizer) security_.authorizer = std::make_shared<MastersOnlyAuthorizer>();
  state_ = std::make_shared<State>();
  state_->registry = metrics ? std::move(metrics) : std::make_shared<prometheus::Registry>();
  state_->metrics = std::make_unique<ApiServerMetrics>(*state_->registry);
  state_->limiter =
      std::make_unique<InflightLimiter>(options_.max_requests_inflight, options_.max_mutating_requests_inflight);
  state_->audit_log = security_.audit_log;
  state_->registries.push_back(state_->registry);
  readiness_checks_.emplace_back("ping", [] { return absl::OkStatus(); });
}

ApiServer::~ApiServer() { Shutdown(std::chrono::milliseconds(0)); }

void ApiServer::AddReadinessCheck(std::string name, HealthCheck check) {
  std::lock_guard<std::mutex> lock(checks_mu_);
  readiness_checks_.emplace_back(std::move(name), std::move(check));
}

void ApiServer::SetPodStreamProxy(std::shared_ptr<PodStreamProxy> proxy) { pod_streams_ = std::move(proxy); }

void ApiServer::AddMetricsRegistry(std::shared_ptr<prometheus::Collectable> registry) {
  if (!registry) return;
  std::lock_guard<std::mutex> lock(state_->registries_mu);
  for (const auto& r : state_->registries) {
    if (r == registry) return;
  }
  state_->registries.push_back(std::move(registry));
}

std::shared_ptr<prometheus::Registry> ApiServer::metrics_registry() const { return state_->registry; }

absl::Status ApiServer::Start() {
  http::HttpServerOptions o;
  o.bind_address = options_.bind_address;
  o.port = options_.secure_port;
  o.tls = options_.tls;
  o.io_threads = options_.io_threads;
  auto server = http::HttpServer::Start(
      o, [this](http::HttpRequest&& req, std::shared_ptr<http::HttpResponder> resp) {
        Handle(std::move(req), std::move(resp));
      });
  if (!server.ok()) return server.status();
  server_ = std::move(*server);
  return absl::OkStatus();
}

uint16_t ApiServer::port() const { return server_ ? server_->port() : 0; }

void ApiServer::Shutdown(std::chrono::milliseconds grace) {
  shutting_down_ = true;
  if (server_) server_->Shutdown(grace);
  if (pod_streams_) pod_streams_->Stop();
  // No request is handled any more: let go of the authorizer's store
  // watches and the rest now, while the store they use still exists.
  std::lock_guard<std::mutex> lock(checks_mu_);
  security_.auth_api.reset();
  security_.authorizer.reset();
  security_.authenticator.reset();
  security_.keep_alive.clear();
}

http::HttpResponse ApiServer::HealthResponse(const http::HttpRequest& request, bool readiness) {
  bool verbose = absl::StrContains(request.query, "verbose");
  std::string body;
  bool ok = true;
  std::vector<std::pair<std::string, HealthCheck>> checks;
  {
    std::lock_guard<std::mutex> lock(checks_mu_);
    checks = readiness ? readiness_checks_
                       : std::vector<std::pair<std::string, HealthCheck>>{readiness_checks_.front()};
  }
  for (const auto& [name, check] : checks) {
    absl::Status s = check();
    if (s.ok()) {
      absl::StrAppend(&body, "[+]", name, " ok\n");
    } else {
      ok = false;
      absl::StrAppend(&body, "[-]", name, " failed: ", s.message(), "\n");
    }
  }
  if (readiness && shutting_down_) {
    ok = false;
    body += "[-]shutdown failed: the server is shutting down\n";
  }
  std::string kind = readiness ? "readyz" : (request.path == "/livez" ? "livez" : "healthz");
  if (ok) {
    if (!verbose) return TextResponse(200, "ok");
    return TextResponse(200, absl::StrCat(body, kind, " check passed\n"));
  }
  return TextResponse(500, absl::StrCat(body, kind, " check failed\n"));
}

http::HttpResponse ApiServer::MetricsResponse() {
  std::vector<std::shared_ptr<prometheus::Collectable>> registries;
  {
    std::lock_guard<std::mutex> lock(state_->registries_mu);
    registries = state_->registries;
  }
  std::vector<prometheus::MetricFamily> families;
  for (const auto& r : registries) {
    auto collected = r->Collect();
    families.insert(families.end(), std::make_move_iterator(collected.begin()),
                    std::make_move_iterator(collected.end()));
  }
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  http::HttpResponse r;
  r.status = 200;
  r.SetHeader("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
  r.body = out.str();
  return r;
}

void ApiServer::Handle(http::HttpRequest&& request, std::shared_ptr<http::HttpResponder> transport) {
  const std::string path = request.path;
  const bool read_only = request.method == "GET" || request.method == "HEAD";
  bool watch = false;
  bool dry_run = false;
  std::string timeout_param;
  for (const auto& [k, v] : http::ParseQuery(request.query)) {
    if (k == "watch") watch = v == "1" || v == "true";
    if (k == "dryRun" && !v.empty()) dry_run = true;
    if (k == "timeout") timeout_param = v;
  }

  ObservedResponder::Context ctx;
  ctx.info = ParseRequestInfo(request.method, path, watch);
  RequestInfo& pre = ctx.info;  // moved into the responder below
  if (!pre.is_resource_request) pre.verb = absl::AsciiStrToLower(request.method);
  // exec, attach and portforward need `create` whatever the method (a
  // WebSocket upgrade is a GET), as kube-apiserver authorizes them.
  if (PodStreamProxy::Handles(pre) && pre.subresource != "log") pre.verb = "create";
  const std::string* content_type = request.Header("content-type");
  ctx.labels = MetricLabelsFor(pre, request.method, content_type ? *content_type : "", dry_run);
  ctx.long_running = pre.is_resource_request && IsLongRunning(pre);

  // Authentication.
  AuthenticationResult authn = security_.authenticator->Authenticate(request);
  UserInfo user = authn.user;
  if (!authn.authenticated()) {
    user = UserInfo{kSystemAnonymous, "", {kSystemUnauthenticated}, {}};
  }
  // Mutating requests are audited; the access reviews only ask questions
  // (TokenRequest, which hands out a credential, is audited).
  ctx.audit = (IsMutatingVerb(pre.verb) || (!pre.is_resource_request && !read_only)) &&
              !(AuthApi::Handles(pre) && pre.subresource != "token");
  if (!state_->audit_log) ctx.audit = false;
  if (ctx.audit) {
    ctx.received_timestamp = AuditTimestampNow();
    AuditEvent& ev = ctx.event;
    ev.audit_id = ctx.audit_id;
    ev.request_uri = request.target;
    ev.verb = pre.verb;
    ev.user = user;
    ev.source_ips = {SourceIp(request.remote_address)};
    if (const std::string* ua = request.Header("user-agent")) ev.user_agent = *ua;
    ev.request_received = ctx.received_timestamp;
    if (pre.is_resource_request) {
      ev.has_object_ref = true;
      ev.resource = pre.resource;
      ev.namespace_name = pre.namespace_name;
      ev.name = pre.name;
      ev.api_group = pre.group;
      ev.api_version = pre.version;
      ev.subresource = pre.subresource;
    }
  }

  auto responder = std::make_shared<ObservedResponder>(std::move(transport), state_, std::move(ctx));
  responder->Init();
  ObservedResponder::Context& c = responder->context();
  const RequestInfo& info = c.info;

  // Joining agents have no cluster credentials yet: the join API checks
  // its own secret.
  if (security_.join_api && JoinApi::Handles(path)) return responder->Respond(security_.join_api->Serve(request));

  if (authn.outcome == AuthenticationResult::Outcome::kRejected) {
    spdlog::debug("{} {} from {}: authentication failed: {}", request.method, path, request.remote_address,
                  authn.error);
    return responder->Respond(ErrorResponse(api::Unauthorized("Unauthorized")));
  }

  // Health and version: open to everyone, as system:public-info-viewer
  // grants on kube-apiserver.
  if (IsPublicPath(path)) {
    if (!read_only) {
      return responder->Respond(ErrorResponse(
          api::MethodNotAllowed(absl::StrCat(request.method, " is not supported on ", path))));
    }
    if (absl::StartsWith(path, "/version")) return responder->Respond(JsonResponse(200, VersionJson()));
    return responder->Respond(HealthResponse(request, absl::StartsWith(path, "/readyz")));
  }
  if (!authn.authenticated()) return responder->Respond(ErrorResponse(api::Unauthorized("Unauthorized")));

  // In-flight limit. system:masters is never refused (kube-apiserver lets
  // the super-user through so the cluster stays manageable under load).
  if (!c.long_running) {
    InflightLimiter::Kind kind = KindOf(info.verb);
    if (state_->limiter->TryAcquire(kind)) {
      c.slot = kind;
      state_->metrics->SetInflight(KindLabel(kind), state_->limiter->current(kind));
    } else if (!user.InGroup(kSystemMasters)) {
      state_->metrics->Dropped(KindLabel(kind));
      return responder->Respond(ErrorResponse(api::TooManyRequests("Too many requests, please try again later.", 1)));
    }
  }

  // Impersonation.
  std::string as_user, as_uid;
  std::vector<std::string> as_groups;
  std::map<std::string, std::vector<std::string>> as_extra;
  bool impersonating = false;
  for (const auto& [name, value] : request.headers) {
    if (name == "impersonate-user") {
      as_user = value;
      impersonating = true;
    } else if (name == "impersonate-group") {
      as_groups.push_back(value);
      impersonating = true;
    } else if (name == "impersonate-uid") {
      as_uid = value;
      impersonating = true;
    } else if (absl::StartsWith(name, "impersonate-extra-")) {
      as_extra[http::PercentDecode(name.substr(18), false)].push_back(value);
      impersonating = true;
    }
  }
  if (impersonating) {
    if (as_user.empty()) {
      return responder->Respond(ErrorResponse(api::BadRequest(
          "Impersonate-Group, Impersonate-Uid and Impersonate-Extra-* need Impersonate-User as well")));
    }
    auto check = [&](AuthorizationAttributes a) -> bool {
      a.user = user;
      a.verb = "impersonate";
      a.resource_request = true;
      AuthorizationDecision d = security_.authorizer->Authorize(a);
      if (d.allowed) return true;
      api::ApiError e{403, "Forbidden", ForbiddenMessage(a, d.reason), a.name, a.api_group, a.resource};
      responder->Respond(ErrorResponse(e));
      return false;
    };
    AuthorizationAttributes target;
    std::string sa_ns, sa_name;
    bool is_sa = SplitServiceAccountUserName(as_user, &sa_ns, &sa_name);
    if (is_sa) {
      target.resource = "serviceaccounts";
      target.namespace_name = sa_ns;
      target.name = sa_name;
    } else {
      target.resource = "users";
      target.name = as_user;
    }
    if (!check(target)) return;
    for (const auto& g : as_groups) {
      AuthorizationAttributes a;
      a.resource = "groups";
      a.name = g;
      if (!check(a)) return;
    }
    if (!as_uid.empty()) {
      AuthorizationAttributes a;
      a.api_group = "authentication.k8s.io";
      a.resource = "uids";
      a.name = as_uid;
      if (!check(a)) return;
    }
    for (const auto& [key, values] : as_extra) {
      for (const auto& v : values) {
        AuthorizationAttributes a;
        a.api_group = "authentication.k8s.io";
        a.resource = "userextras";
        a.subresource = key;
        a.name = v;
        if (!check(a)) return;
      }
    }
    UserInfo as;
    as.name = as_user;
    as.uid = as_uid;
    as.groups = as_groups;
    as.extra = as_extra;
    if (is_sa && as_groups.empty()) as.groups = ServiceAccountGroups(sa_ns);
    if (as_user != kSystemAnonymous) {
      if (!as.InGroup(kSystemAuthenticated) && !as.InGroup(kSystemUnauthenticated)) as.AddGroup(kSystemAuthenticated);
    } else {
      as.AddGroup(kSystemUnauthenticated);
    }
    if (c.audit) {
      c.event.impersonated = true;
      c.event.impersonated_user = as;
    }
    user = std::move(as);
  }

  // Authorization.
  AuthorizationAttributes attrs;
  attrs.user = user;
  attrs.verb = info.verb;
  attrs.resource_request = info.is_resource_request;
  attrs.api_group = info.group;
  attrs.api_version = info.version;
  attrs.resource = info.resource;
  attrs.subresource = info.subresource;
  attrs.namespace_name = info.namespace_name;
  attrs.name = info.name;
  attrs.path = path;
  AuthorizationDecision decision = security_.authorizer->Authorize(attrs);
  if (c.audit) {
    c.event.annotations["authorization.k8s.io/decision"] = decision.allowed ? "allow" : "forbid";
    c.event.annotations["authorization.k8s.io/reason"] = decision.reason;
  }
  if (!decision.allowed) {
    api::ApiError e{403, "Forbidden", ForbiddenMessage(attrs, decision.reason), attrs.name, attrs.api_group,
                    attrs.resource};
    return responder->Respond(ErrorResponse(e));
  }

  // Request timeout for everything that is not long-running.
  if (!c.long_running && options_.request_timeout.count() > 0) {
    std::chrono::milliseconds timeout = options_.request_timeout;
    if (!timeout_param.empty()) {
      auto t = ParseDuration(timeout_param);
      if (!t.ok()) {
        return responder->Respond(ErrorResponse(api::BadRequest(absl::StrCat(
            "invalid timeout specified in the request URL: ", t.status().message()))));
      }
      if (t->count() > 0 && *t < timeout) timeout = *t;
    }
    std::weak_ptr<ObservedResponder> weak = responder;
    c.deadline = state_->deadlines.Schedule(Clock::now() + timeout, [weak] {
      if (auto r = weak.lock()) r->TimedOut();
    });
  }
  if (c.long_running) {
    state_->metrics->AddLongRunning(c.labels, 1);
    if (info.verb == "watch") {
      if (const api::ResourceType* t = api::ResourceRegistry::Builtin().Find(info.group, info.version, info.resource)) {
        c.watch_kind = t->kind;
        c.watch_counted = true;
        state_->metrics->AddWatcher(info.group, info.version, t->kind, 1);
      }
    }
  }

  // Dispatch.
  if (pod_streams_ && PodStreamProxy::Handles(info)) {
    return pod_streams_->Serve(info, std::move(request), responder);
  }
  if (security_.auth_api && AuthApi::Handles(info)) {
    return security_.auth_api->Serve(info, user, request, *responder);
  }
  if (path == "/metrics") {
    if (!read_only) {
      return responder->Respond(ErrorResponse(api::MethodNotAllowed(absl::StrCat(request.method, " is not supported on /metrics"))));
    }
    return responder->Respond(MetricsResponse());
  }
  if (OpenApiHandler::Handles(path)) return responder->Respond(OpenApiHandler::Builtin().Serve(request));
  if (resources_ != nullptr && (path == "/api" || path == "/apis" || absl::StartsWith(path, "/api/") ||
                                absl::StartsWith(path, "/apis/"))) {
    if (info.is_resource_request) return resources_->Serve(info, std::move(request), responder);
    if (!read_only) {
      return responder->Respond(
          ErrorResponse(api::MethodNotAllowed(absl::StrCat(request.method, " is not supported on ", path))));
    }
    if (resources_->ServeDiscovery(request, *responder)) return;
  }
  responder->Respond(JsonResponse(
      404, StatusJson(404, "NotFound", absl::StrCat("the server could not find the requested resource (",
                                                    request.method, " ", path, ")"))));
}

}  // namespace kelpie::apiserver
