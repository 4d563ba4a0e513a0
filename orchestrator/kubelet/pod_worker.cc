#include "orchestrator/kubelet/pod_worker.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/files.h"
#include "common/log.h"
#include "orchestrator/api/quantity.h"
#include "orchestrator/runtime/image/image_store.h"

namespace kelpie::kubelet {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using runtime::ContainerState;

std::string Str(const json& obj, const char* key) {
  if (!obj.is_object() || !obj.contains(key) || !obj[key].is_string()) return "";
  return obj[key].get<std::string>();
}

std::string Rfc3339(int64_t unix_ns) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixNanos(unix_ns), absl::UTCTimeZone());
}

std::string NowRfc3339() { return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone()); }

std::vector<std::string> Strings(const json& arr) {
  std::vector<std::string> out;
  if (!arr.is_array()) return out;
  for (const auto& v : arr) {
    if (v.is_string()) out.push_back(v.get<std::string>());
  }
  return out;
}

int64_t QuantityMillis(const json& resources, const char* kind, const char* name) {
  if (!resources.is_object() || !resources.contains(kind)) return 0;
  std::string text = Str(resources[kind], name);
  if (text.empty() && resources[kind].is_object() && resources[kind].contains(name) &&
      resources[kind][name].is_number()) {
    text = std::to_string(resources[kind][name].get<int64_t>());
  }
  if (text.empty()) return 0;
  auto v = api::Quantity::Parse(text);
  return v.ok() ? v->MilliValue() : 0;
}

std::string QosClass(const json& spec) {
  bool any = false, guaranteed = true;
  for (const char* list : {"initContainers", "containers"}) {
    for (const auto& c : spec.value(list, json::array())) {
      const json r = c.value("resources", json::object());
      for (const char* res : {"cpu", "memory"}) {
        int64_t req = QuantityMillis(r, "requests", res), lim = QuantityMillis(r, "limits", res);
        if (req || lim) any = true;
        if (!lim || (req && req != lim)) guaranteed = false;
      }
    }
  }
  if (!any) return "BestEffort";
  return guaranteed ? "Guaranteed" : "Burstable";
}

// nameserver/search/options lines of the host's resolv.conf.
runtime::DnsConfig HostDns() {
  runtime::DnsConfig dns;
  std::ifstream in("/etc/resolv.conf");
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> words = absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (words.size() < 2) continue;
    std::vector<std::string> rest(words.begin() + 1, words.end());
    if (words[0] == "nameserver") dns.servers.push_back(words[1]);
    if (words[0] == "search") dns.searches = rest;
    if (words[0] == "options") dns.options.insert(dns.options.end(), rest.begin(), rest.end());
  }
  return dns;
}

json Terminated(const runtime::ContainerStatus& s) {
  json t = {{"exitCode", s.exit_code},
            {"reason", s.reason.empty() ? (s.exit_code == 0 ? "Completed" : "Error") : s.reason},
            {"startedAt", s.started_at_ns ? json(Rfc3339(s.started_at_ns)) : json(nullptr)},
            {"finishedAt", s.finished_at_ns ? json(Rfc3339(s.finished_at_ns)) : json(nullptr)},
            {"containerID", "runc://" + s.id}};
  if (s.exit_code > 128 && s.exit_code < 128 + 65) t["signal"] = s.exit_code - 128;
  if (!s.message.empty()) t["message"] = s.message;
  return t;
}

}  // namespace

struct PodWorker::Slot {
  std::string name;
  bool init = false;
  json spec;
  std::string current_id, previous_id;
  std::optional<runtime::ContainerStatus> current, previous;
  int restart_count = 0;
  // Backoff before the next restart of the exited `backoff_for` container.
  int backoff_steps = 0;
  std::string backoff_for;
  Clock::time_point backoff_until{};
  std::chrono::milliseconds backoff_delay{0};
  std::string waiting_reason, waiting_message;
  ImagePullBackoff image_pull;
  ProbeSpec liveness, readiness, startup;
  bool started = false, ready = false;
  int startup_failures = 0, live_failures = 0, ready_failures = 0, ready_successes = 0;
  Clock::time_point next_startup{}, next_live{}, next_ready{};

  bool Running() const { return current && current->state == ContainerState::kRunning; }
  bool Exited() const {
    return current && (current->state == ContainerState::kExited || current->state == ContainerState::kUnknown);
  }
  bool Succeeded() const { return Exited() && current->exit_code == 0; }
};

PodWorker::PodWorker(const PodWorkerOptions& options, runtime::PodRuntime& runtime, image::ImageStore* images,
                     PodApi& api, const json& pod, PodStartLimiter* start_limiter)
    : options_(options),
      runtime_(runtime),
      images_(images),
      api_(api),
      start_limiter_(start_limiter),
      uid_(Str(pod["metadata"], "uid")),
      namespace_(Str(pod["metadata"], "namespace")),
      name_(Str(pod["metadata"], "name")),
      volumes_(options.pods_dir + "/" + Str(pod["metadata"], "uid"), api),
      pod_(pod),
      pod_changed_(true) {
  for (const char* list : {"initContainers", "containers"}) {
    for (const auto& c : pod["spec"].value(list, json::array())) {
      auto slot = std::make_unique<Slot>();
      slot->name = Str(c, "name");
      slot->init = std::string(list) == "initContainers";
      slot->spec = c;
      if (!slot->init) {
        slot->liveness = ParseProbe(c.value("livenessProbe", json()), c);
        slot->readiness = ParseProbe(c.value("readinessProbe", json()), c);
        slot->startup = ParseProbe(c.value("startupProbe", json()), c);
      }
      (slot->init ? init_slots_ : app_slots_).push_back(std::move(slot));
    }
  }
  startup_trace_ = std::make_unique<StartupTrace>();
  startup_trace_->seen = Clock::now();
  startup_trace_->seen_unix_ns = absl::GetCurrentTimeNanos();
  thread_ = std::thread([this] { Run(); });
}

PodWorker::~PodWorker() { Stop(); }

void PodWorker::Update(const json& pod) {
  std::lock_guard<std::mutex> lock(mu_);
  pod_ = pod;
  pod_changed_ = true;
  cv_.notify_all();
}

void PodWorker::MarkDeleted() {
  std::lock_guard<std::mutex> lock(mu_);
  deleted_ = true;
  cv_.notify_all();
}

void PodWorker::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

bool PodWorker::done() const {
  std::lock_guard<std::mutex> lock(mu_);
  return done_;
}

void PodWorker::Run() {
  while (true) {
    json pod;
    bool deleted;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (stop_) return;
      pod = pod_;
      deleted = deleted_;
      pod_changed_ = false;
    }
    const json& meta = pod["metadata"];
    if (deleted || (meta.contains("deletionTimestamp") && !meta["deletionTimestamp"].is_null())) {
      int64_t grace = deleted ? 2 : meta.value("deletionGracePeriodSeconds", int64_t{30});
      Terminate(pod, grace, !deleted);
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
      return;
    }
    SyncOnce(pod);
    std::unique_lock<std::mutex> lock(mu_);
    auto wait = terminal_ ? std::chrono::milliseconds(5000) : options_.poll_interval;
    cv_.wait_for(lock, wait, [&] { return stop_ || deleted_ || pod_changed_; });
  }
}

PodEnvContext PodWorker::EnvContext() const {
  PodEnvContext c;
  c.pod_ip = pod_ip_;
  c.host_ip = options_.node_ip;
  c.node_cpu_millis = options_.node_cpu_millis;
  c.node_memory_bytes = options_.node_memory_bytes;
  return c;
}

runtime::PodSandboxConfig PodWorker::SandboxConfig(const json& pod) const {
  const json& spec = pod["spec"];
  const json& meta = pod["metadata"];
  runtime::PodSandboxConfig c;
  c.name = name_;
  c.pod_namespace = namespace_;
  c.uid = uid_;
  c.hostname = Str(spec, "hostname");
  if (c.hostname.empty()) c.hostname = name_.substr(0, 63);
  const json labels = meta.value("labels", json::object());
  for (auto it = labels.begin(); it != labels.end(); ++it) {
    if (it.value().is_string()) c.labels[it.key()] = it.value().get<std::string>();
  }
  c.labels[kPodUidLabel] = uid_;
  c.labels["io.kubernetes.pod.name"] = name_;
  c.labels["io.kubernetes.pod.namespace"] = namespace_;
  for (const auto& container : spec.value("containers", json::array())) {
    for (const auto& p : container.value("ports", json::array())) {
      int host_port = p.value("hostPort", 0);
      if (host_port <= 0) continue;
      runtime::PortMapping m;
      m.protocol = absl::AsciiStrToLower(p.value("protocol", "TCP"));
      m.container_port = p.value("containerPort", 0);
      m.host_port = host_port;
      m.host_ip = p.value("hostIP", "");
      c.port_mappings.push_back(m);
    }
  }
  std::string policy = spec.value("dnsPolicy", "ClusterFirst");
  if ((policy == "ClusterFirst" || policy == "ClusterFirstWithHostNet") && !options_.cluster_dns.empty()) {
    const std::string& d = options_.cluster_domain;
    c.dns.servers = {options_.cluster_dns};
    c.dns.searches = {absl::StrCat(namespace_, ".svc.", d), absl::StrCat("svc.", d), d};
    c.dns.options = {"ndots:5"};
  } else if (policy != "None" && spec.contains("dnsConfig")) {
    c.dns = HostDns();  // Default, with additions below
  }
  if (spec.contains("dnsConfig") && spec["dnsConfig"].is_object()) {
    const json& dc = spec["dnsConfig"];
    for (const auto& s : Strings(dc.value("nameservers", json::array()))) c.dns.servers.push_back(s);
    for (const auto& s : Strings(dc.value("searches", json::array()))) c.dns.searches.push_back(s);
    for (const auto& o : dc.value("options", json::array())) {
      std::string name = Str(o, "name");
      if (name.empty()) continue;
      std::string opt = o.contains("value") && o["value"].is_string() ? name + ":" + o["value"].get<std::string>()
                                                                       : name;
      auto& opts = c.dns.options;
      opts.erase(std::remove_if(opts.begin(), opts.end(),
                                [&](const std::string& x) { return x == name || absl::StartsWith(x, name + ":"); }),
                 opts.end());
      opts.push_back(opt);
    }
  }
  return c;
}

void PodWorker::Adopt(const json& pod) {
  adopted_ = true;
  const json status = pod.value("status", json::object());
  start_time_ = Str(status, "startTime");
  if (start_time_.empty()) start_time_ = NowRfc3339();
  if (!status.empty()) last_status_ = status;
  std::string phase = Str(status, "phase");
  if (phase == "Succeeded" || phase == "Failed") terminal_ = status_final_ = true;
  auto sandboxes = runtime_.ListPodSandboxes();
  if (!sandboxes.ok()) return;
  const runtime::PodSandboxStatus* chosen = nullptr;
  for (const auto& s : *sandboxes) {
    if (s.config.uid != uid_) continue;
    if (!chosen || (s.state == runtime::SandboxState::kReady && chosen->state != runtime::SandboxState::kReady) ||
        (s.state == chosen->state && s.created_at_ns > chosen->created_at_ns)) {
      chosen = &s;
    }
  }
  if (!chosen) return;
  sandbox_id_ = chosen->id;
  sandbox_stopped_ = chosen->state != runtime::SandboxState::kReady;
  pod_ip_ = chosen->ip.empty() ? Str(status, "podIP") : chosen->ip;
  auto containers = runtime_.ListContainers(sandbox_id_);
  if (!containers.ok()) return;
  std::map<std::string, json> previous_statuses;
  for (const char* list : {"initContainerStatuses", "containerStatuses"}) {
    for (const auto& cs : status.value(list, json::array())) previous_statuses[Str(cs, "name")] = cs;
  }
  for (auto* slots : {&init_slots_, &app_slots_}) {
    for (auto& slot : *slots) {
      std::vector<const runtime::ContainerStatus*> mine;
      for (const auto& c : *containers) {
        if (c.name == slot->name) mine.push_back(&c);
      }
      std::sort(mine.begin(), mine.end(), [](auto* a, auto* b) { return a->attempt > b->attempt; });
      if (mine.empty()) continue;
      slot->current_id = mine[0]->id;
      slot->restart_count = mine[0]->attempt;
      if (mine.size() > 1) slot->previous_id = mine[1]->id;
      // Probe results survive the restart through the posted status, so
      // an adopted pod does not flap to unready.
      const json& prev = previous_statuses[slot->name];
      if (Str(prev, "containerID") == "runc://" + slot->current_id) {
        slot->ready = prev.value("ready", false);
        slot->started = prev.value("started", false);
      }
      spdlog::info("kubelet: pod {}/{}: adopted container {} ({}, restart {})", namespace_, name_, slot->name,
                   mine[0]->id, slot->restart_count);
    }
  }
}

void PodWorker::RefreshStatuses() {
  for (auto* slots : {&init_slots_, &app_slots_}) {
    for (auto& slot : *slots) {
      slot->current.reset();
      slot->previous.reset();
      if (!slot->current_id.empty()) {
        auto s = runtime_.GetContainerStatus(slot->current_id);
        if (s.ok()) slot->current = *s;
      }
      if (!slot->previous_id.empty()) {
        auto s = runtime_.GetContainerStatus(slot->previous_id);
        if (s.ok()) slot->previous = *s;
      }
    }
  }
}

bool PodWorker::EnsureSandbox(const json& pod) {
  if (!sandbox_id_.empty()) return true;
  runtime::PodSandboxConfig config = SandboxConfig(pod);
  config.timings = trace_steps();
  auto id = runtime_.RunPodSandbox(config);
  if (!id.ok()) {
    pod_error_ = absl::StrCat("creating the pod sandbox: ", id.status().message());
    spdlog::warn("kubelet: pod {}/{}: {}", namespace_, name_, pod_error_);
    return false;
  }
  sandbox_id_ = *id;
  sandbox_stopped_ = false;
  runtime::ScopedStep status_step(trace_steps(), "sandbox status");
  auto status = runtime_.GetPodSandboxStatus(sandbox_id_);
  if (status.ok()) pod_ip_ = status->ip;
  pod_error_.clear();
  return true;
}

bool PodWorker::EnsureVolumes(const json& pod) {
  auto now = Clock::now();
  if (volumes_ready_ && now < next_volume_refresh_) return true;
  runtime::ScopedStep step(volumes_ready_ ? nullptr : trace_steps(), "volumes");
  auto paths = volumes_.Sync(pod, EnvContext());
  next_volume_refresh_ = now + options_.volume_refresh;
  if (!paths.ok()) {
    if (!volumes_ready_) pod_error_ = absl::StrCat("MountVolume.SetUp failed: ", paths.status().message());
    spdlog::warn("kubelet: pod {}/{}: volumes: {}", namespace_, name_, paths.status().message());
    return volumes_ready_;
  }
  volume_paths_ = *paths;
  if (!volumes_ready_) pod_error_.clear();
  volumes_ready_ = true;
  return true;
}

bool PodWorker::EnsureImage(const json& pod, Slot& slot) {
  if (options_.image_pulls) {
    ImageCheck check = options_.image_pulls->EnsureImage(pod, slot.spec, slot.image_pull, api_);
    if (check.ready) return true;
    slot.waiting_reason = check.reason;
    slot.waiting_message = check.message;
    return false;
  }
  std::string image = Str(slot.spec, "image");
  if (images_ && !images_->Get(image).ok()) {
    slot.waiting_reason = "ErrImageNeverPull";
    slot.waiting_message = absl::StrCat("Container image \"", image,
                                        "\" is not present in the node's image store and this kubelet does not pull "
                                        "from registries (import it with kelpie image import)");
    return false;
  }
  return true;
}

void PodWorker::StartContainer(const json& pod, Slot& slot) {
  const json& c = slot.spec;
  std::string image = Str(c, "image");
  if (!EnsureImage(pod, slot)) return;
  runtime::ScopedStep config_step(trace_steps(), "container config");
  runtime::ContainerConfig config;
  config.name = slot.name;
  config.attempt = slot.current_id.empty() ? 0 : slot.restart_count + 1;
  config.image = image;
  auto env = ContainerEnvironment(pod, c, EnvContext(), api_);
  if (!env.ok()) {
    slot.waiting_reason = "CreateContainerConfigError";
    slot.waiting_message = std::string(env.status().message());
    return;
  }
  config.env = *env;
  config.command = ExpandCommand(Strings(c.value("command", json::array())), config.env);
  config.args = ExpandCommand(Strings(c.value("args", json::array())), config.env);
  config.working_dir = Str(c, "workingDir");
  for (const auto& m : c.value("volumeMounts", json::array())) {
    std::string vol = Str(m, "name");
    auto it = volume_paths_.find(vol);
    if (it == volume_paths_.end()) {
      slot.waiting_reason = "CreateContainerConfigError";
      slot.waiting_message = absl::StrCat("volumeMount \"", vol, "\" refers to no volume of the pod");
      return;
    }
    runtime::VolumeMount vm;
    vm.host_path = it->second;
    if (std::string sub = Str(m, "subPath"); !sub.empty()) {
      if (sub[0] == '/' || absl::StrContains(sub, "..")) {
        slot.waiting_reason = "CreateContainerConfigError";
        slot.waiting_message = absl::StrCat("subPath \"", sub, "\" must be relative without '..'");
        return;
      }
      vm.host_path += "/" + sub;
      (void)MakeDirectories(vm.host_path, 0777);
    }
    vm.container_path = Str(m, "mountPath");
    vm.read_only = m.value("readOnly", false);
    config.mounts.push_back(vm);
  }
  const json pod_sc = pod["spec"].value("securityContext", json::object());
  const json sc = c.value("securityContext", json::object());
  auto int_field = [&](const char* key) -> std::optional<int64_t> {
    if (sc.contains(key) && sc[key].is_number_integer()) return sc[key].get<int64_t>();
    if (pod_sc.contains(key) && pod_sc[key].is_number_integer()) return pod_sc[key].get<int64_t>();
    return std::nullopt;
  };
  config.security.run_as_user = int_field("runAsUser");
  config.security.run_as_group = int_field("runAsGroup");
  config.security.run_as_non_root = sc.value("runAsNonRoot", pod_sc.value("runAsNonRoot", false));
  for (const auto& g : pod_sc.value("supplementalGroups", json::array())) {
    if (g.is_number_integer()) config.security.supplemental_groups.push_back(g.get<int64_t>());
  }
  if (sc.contains("capabilities")) {
    config.security.capabilities_add = Strings(sc["capabilities"].value("add", json::array()));
    config.security.capabilities_drop = Strings(sc["capabilities"].value("drop", json::array()));
  }
  config.security.privileged = sc.value("privileged", false);
  config.security.read_only_root_filesystem = sc.value("readOnlyRootFilesystem", false);
  if (sc.contains("allowPrivilegeEscalation") && sc["allowPrivilegeEscalation"].is_boolean()) {
    config.security.allow_privilege_escalation = sc["allowPrivilegeEscalation"].get<bool>();
  }
  const json res = c.value("resources", json::object());
  config.resources.cpu_limit_millis = QuantityMillis(res, "limits", "cpu");
  config.resources.cpu_request_millis = QuantityMillis(res, "requests", "cpu");
  if (!config.resources.cpu_request_millis) config.resources.cpu_request_millis = config.resources.cpu_limit_millis;
  config.resources.memory_limit_bytes = QuantityMillis(res, "limits", "memory") / 1000;
  config.labels[kPodUidLabel] = uid_;
  config.labels["io.kubernetes.container.name"] = slot.name;
  config.labels["io.kubernetes.pod.name"] = name_;
  config.labels["io.kubernetes.pod.namespace"] = namespace_;
  config.timings = trace_steps();
  config_step.Finish();

  // Created and started in one go (one runc process instead of two).
  auto id = runtime_.RunContainer(sandbox_id_, config);
  if (!id.ok()) {
    slot.waiting_reason = absl::IsAborted(id.status()) ? "RunContainerError" : "CreateContainerError";
    slot.waiting_message = std::string(id.status().message());
    spdlog::warn("kubelet: pod {}/{}: container {}: {}", namespace_, name_, slot.name, slot.waiting_message);
    return;
  }
  if (startup_trace_) startup_trace_->started_container = true;
  // Keep the container before this one (its log is `kubectl logs --previous`).
  if (!slot.previous_id.empty()) (void)runtime_.RemoveContainer(slot.previous_id);
  slot.previous_id = slot.current_id;
  slot.previous = slot.current;
  slot.current_id = *id;
  slot.restart_count = config.attempt;
  slot.waiting_reason.clear();
  slot.waiting_message.clear();
  slot.started = slot.startup.kind == ProbeSpec::Kind::kNone;
  // Without a readiness probe a running container is ready at once (the
  // status posted right after the start says so; no second patch).
  slot.ready = slot.started && slot.readiness.kind == ProbeSpec::Kind::kNone;
  slot.startup_failures = slot.live_failures = slot.ready_failures = slot.ready_successes = 0;
  auto now = Clock::now();
  slot.next_startup = now + std::chrono::seconds(slot.startup.initial_delay_seconds);
  slot.next_live = now + std::chrono::seconds(slot.liveness.initial_delay_seconds);
  slot.next_ready = now + std::chrono::seconds(slot.readiness.initial_delay_seconds);
  runtime::ScopedStep status_step(trace_steps(), "container status");
  auto status = runtime_.GetContainerStatus(*id);
  if (status.ok()) slot.current = *status;
  status_step.Finish();
  spdlog::info("kubelet: pod {}/{}: started container {} ({}, restart {})", namespace_, name_, slot.name, *id,
               slot.restart_count);
}

void PodWorker::RestartWithBackoff(const json& pod, Slot& slot) {
  auto now = Clock::now();
  if (slot.backoff_for != slot.current_id) {
    // First look at this exit: how long to wait before the restart.
    const auto& s = *slot.current;
    if (s.started_at_ns && s.finished_at_ns &&
        std::chrono::nanoseconds(s.finished_at_ns - s.started_at_ns) >= options_.backoff_reset) {
      slot.backoff_steps = 0;
    }
    std::chrono::milliseconds delay{0};
    if (slot.backoff_steps > 0) {
      delay = options_.backoff_initial;
      for (int i = 1; i < slot.backoff_steps && delay < options_.backoff_max; ++i) delay *= 2;
      delay = std::min(delay, options_.backoff_max);
    }
    ++slot.backoff_steps;
    slot.backoff_for = slot.current_id;
    slot.backoff_delay = delay;
    slot.backoff_until = now + delay;
  }
  if (now < slot.backoff_until) {
    slot.waiting_reason = "CrashLoopBackOff";
    slot.waiting_message =
        absl::StrCat("back-off ", std::chrono::duration_cast<std::chrono::seconds>(slot.backoff_delay).count(),
                     "s restarting failed container=", slot.name, " pod=", name_, "_", namespace_, "(", uid_, ")");
    return;
  }
  StartContainer(pod, slot);
}

void PodWorker::RunProbes(const json& pod, Slot& slot) {
  auto now = Clock::now();
  const std::string id = slot.current_id;
  auto run = [&](const ProbeSpec& p) {
    return RunProbe(p, runtime_, id, pod_ip_, std::chrono::seconds(p.timeout_seconds));
  };
  auto kill = [&](const std::string& why) {
    spdlog::info("kubelet: pod {}/{}: container {} {}, will be restarted", namespace_, name_, slot.name, why);
    int64_t grace = pod["spec"].value("terminationGracePeriodSeconds", int64_t{30});
    (void)runtime_.StopContainer(id, std::chrono::seconds(grace));
    auto s = runtime_.GetContainerStatus(id);
    if (s.ok()) slot.current = *s;
    slot.ready = false;
  };
  if (!slot.started) {
    if (now < slot.next_startup) return;
    slot.next_startup = now + std::chrono::seconds(slot.startup.period_seconds);
    ProbeResult r = run(slot.startup);
    if (r.success) {
      slot.started = true;
      slot.next_live = std::max(slot.next_live, now);
      slot.next_ready = std::max(slot.next_ready, now);
    } else if (++slot.startup_failures >= slot.startup.failure_threshold) {
      kill(absl::StrCat("failed startup probe: ", r.message));
      return;
    } else {
      return;
    }
  }
  if (slot.liveness.kind != ProbeSpec::Kind::kNone && now >= slot.next_live) {
    slot.next_live = now + std::chrono::seconds(slot.liveness.period_seconds);
    ProbeResult r = run(slot.liveness);
    if (r.success) {
      slot.live_failures = 0;
    } else if (++slot.live_failures >= slot.liveness.failure_threshold) {
      kill(absl::StrCat("failed liveness probe: ", r.message));
      return;
    }
  }
  if (slot.readiness.kind == ProbeSpec::Kind::kNone) {
    slot.ready = true;
  } else if (now >= slot.next_ready) {
    slot.next_ready = now + std::chrono::seconds(slot.readiness.period_seconds);
    ProbeResult r = run(slot.readiness);
    if (r.success) {
      slot.ready_failures = 0;
      if (++slot.ready_successes >= slot.readiness.success_threshold) slot.ready = true;
    } else {
      slot.ready_successes = 0;
      if (++slot.ready_failures >= slot.readiness.failure_threshold) slot.ready = false;
    }
  }
}

bool PodWorker::NeedsStart() const {
  if (sandbox_id_.empty() || !volumes_ready_) return true;
  for (const auto* slots : {&init_slots_, &app_slots_}) {
    for (const auto& slot : *slots) {
      if (slot->current_id.empty()) return true;
    }
  }
  return false;
}

void PodWorker::SyncOnce(const json& pod) {
  if (startup_trace_ && !startup_trace_->synced) {
    startup_trace_->synced = true;
    startup_trace_->steps.Add("worker wakeup", Clock::now() - startup_trace_->seen);
  }
  if (!adopted_) {
    runtime::ScopedStep step(trace_steps(), "adopt check");
    Adopt(pod);
  }
  RefreshStatuses();
  if (terminal_) {
    if (!sandbox_stopped_ && !sandbox_id_.empty()) {
      // A finished pod keeps its records (logs, statuses) but not its network.
      if (runtime_.StopPodSandbox(sandbox_id_).ok()) sandbox_stopped_ = true;
    }
    PatchStatusIfChanged(pod);
    return;
  }
  const json& spec = pod["spec"];
  if (spec.value("hostNetwork", false)) {
    pod_error_ = "hostNetwork pods are not supported by this kubelet";
    PatchStatusIfChanged(pod);
    return;
  }
  // Starting is bounded across pods; the slot is given back before the
  // status is posted.
  PodStartLimiter::Slot start_slot;
  if (start_limiter_ && NeedsStart()) {
    runtime::ScopedStep step(trace_steps(), "wait for start slot");
    start_slot = start_limiter_->Acquire([this] {
      std::lock_guard<std::mutex> lock(mu_);
      return stop_ || deleted_;
    });
    if (!start_slot.held()) return;  // stopping or deleted: Run() looks again
  }
  if (!EnsureSandbox(pod) || !EnsureVolumes(pod)) {
    start_slot.Release();
    PatchStatusIfChanged(pod);
    return;
  }
  std::string policy = spec.value("restartPolicy", "Always");
  bool initialized = std::any_of(app_slots_.begin(), app_slots_.end(), [](auto& s) { return !s->current_id.empty(); });
  if (!initialized) {
    initialized = true;
    for (auto& slot : init_slots_) {
      if (slot->Succeeded()) continue;
      initialized = false;
      if (!slot->current) {
        StartContainer(pod, *slot);
      } else if (slot->Exited()) {
        if (policy == "Never") {
          init_failed_ = true;
        } else {
          RestartWithBackoff(pod, *slot);
        }
      }
      break;
    }
  }
  if (initialized && !init_failed_) {
    for (auto& slot : app_slots_) {
      if (!slot->current) {
        StartContainer(pod, *slot);
      } else if (slot->Running()) {
        RunProbes(pod, *slot);
      } else if (slot->Exited()) {
        bool restart = policy == "Always" || (policy == "OnFailure" && slot->current->exit_code != 0);
        if (restart) RestartWithBackoff(pod, *slot);
      }
    }
  }
  start_slot.Release();
  json status = BuildStatus(pod);
  std::string phase = status.value("phase", "");
  if (phase == "Succeeded" || phase == "Failed") {
    terminal_ = true;
    if (!sandbox_id_.empty() && runtime_.StopPodSandbox(sandbox_id_).ok()) sandbox_stopped_ = true;
  }
  PatchStatusIfChanged(pod);
}

json PodWorker::BuildStatus(const json& pod) {
  const json& spec = pod["spec"];
  const json old = pod.value("status", json::object());
  std::string policy = spec.value("restartPolicy", "Always");
  auto container_status = [&](Slot& slot, const std::string& default_waiting) {
    json cs = {{"name", slot.name},
               {"image", Str(slot.spec, "image")},
               {"imageID", ""},
               {"restartCount", slot.restart_count},
               {"ready", false},
               {"started", false},
               {"state", json::object()},
               {"lastState", json::object()}};
    if (slot.current) {
      const auto& s = *slot.current;
      cs["containerID"] = "runc://" + s.id;
      if (!s.image_digest.empty()) cs["imageID"] = s.image_digest;
      if (s.state == ContainerState::kRunning) {
        cs["state"]["running"] = {{"startedAt", Rfc3339(s.started_at_ns ? s.started_at_ns : s.created_at_ns)}};
        cs["ready"] = slot.ready;
        cs["started"] = slot.started;
        if (slot.previous) cs["lastState"]["terminated"] = Terminated(*slot.previous);
      } else if (s.state == ContainerState::kCreated) {
        cs["state"]["waiting"] = {{"reason", "ContainerCreating"}};
        if (slot.previous) cs["lastState"]["terminated"] = Terminated(*slot.previous);
      } else if (slot.waiting_reason == "CrashLoopBackOff" && slot.backoff_for == s.id) {
        cs["state"]["waiting"] = {{"reason", slot.waiting_reason}, {"message", slot.waiting_message}};
        cs["lastState"]["terminated"] = Terminated(s);
      } else {
        cs["state"]["terminated"] = Terminated(s);
        if (slot.previous) cs["lastState"]["terminated"] = Terminated(*slot.previous);
      }
    } else {
      std::string reason = slot.waiting_reason.empty() ? default_waiting : slot.waiting_reason;
      cs["state"]["waiting"] = {{"reason", reason}};
      if (!slot.waiting_message.empty()) cs["state"]["waiting"]["message"] = slot.waiting_message;
      else if (!pod_error_.empty()) cs["state"]["waiting"]["message"] = pod_error_;
    }
    return cs;
  };

  bool initialized = true;
  std::vector<std::string> incomplete;
  json init_statuses = json::array();
  bool app_started = std::any_of(app_slots_.begin(), app_slots_.end(), [](auto& s) { return !s->current_id.empty(); });
  for (auto& slot : init_slots_) {
    init_statuses.push_back(container_status(*slot, "PodInitializing"));
    if (!slot->Succeeded() && !app_started) {
      initialized = false;
      incomplete.push_back(slot->name);
    }
  }
  json statuses = json::array();
  int running = 0, waiting = 0, stopped = 0, succeeded = 0;
  std::vector<std::string> unready;
  for (auto& slot : app_slots_) {
    json cs = container_status(*slot, initialized ? "ContainerCreating" : "PodInitializing");
    if (cs["state"].contains("running")) {
      ++running;
    } else if (cs["state"].contains("terminated")) {
      ++stopped;
      if (cs["state"]["terminated"]["exitCode"] == 0) ++succeeded;
    } else if (cs["lastState"].contains("terminated")) {
      ++stopped;
    } else {
      ++waiting;
    }
    if (!cs["ready"].get<bool>()) unready.push_back(slot->name);
    statuses.push_back(cs);
  }
  std::string phase = "Pending";
  if (init_failed_) {
    phase = "Failed";
  } else if (!initialized) {
    phase = "Pending";
  } else if (waiting > 0) {
    phase = "Pending";
  } else if (running > 0) {
    phase = "Running";
  } else if (stopped > 0) {
    if (policy == "Always") {
      phase = "Running";
    } else if (stopped == succeeded) {
      phase = "Succeeded";
    } else if (policy == "Never") {
      phase = "Failed";
    } else {
      phase = "Running";
    }
  }
  if (terminal_) {
    // Once finished a pod stays finished, whatever the runtime reports later.
    std::string last = last_status_ ? last_status_->value("phase", "") : "";
    if (last == "Succeeded" || last == "Failed") phase = last;
  }

  // Conditions: the kubelet's own, plus any others (readiness gates' conditions) kept as they are.
  std::map<std::string, json> previous;
  const json* sources[] = {&old, last_status_ ? &*last_status_ : nullptr};
  for (const json* source : sources) {
    if (!source) continue;
    for (const auto& c : source->value("conditions", json::array())) previous[Str(c, "type")] = c;
  }
  auto condition = [&](const std::string& type, bool value, const std::string& reason, const std::string& message) {
    std::string status = value ? "True" : "False";
    json c = {{"type", type}, {"status", status}, {"lastProbeTime", nullptr}};
    auto it = previous.find(type);
    c["lastTransitionTime"] = it != previous.end() && Str(it->second, "status") == status &&
                                      !Str(it->second, "lastTransitionTime").empty()
                                  ? Str(it->second, "lastTransitionTime")
                                  : NowRfc3339();
    if (!reason.empty()) c["reason"] = reason;
    if (!message.empty()) c["message"] = message;
    return c;
  };
  bool containers_ready = unready.empty() && !app_slots_.empty();
  std::string not_ready_reason = phase == "Succeeded" || phase == "Failed" ? "PodCompleted" : "ContainersNotReady";
  std::string not_ready_message =
      unready.empty() ? "" : absl::StrCat("containers with unready status: [", absl::StrJoin(unready, " "), "]");
  bool gates_ready = true;
  std::string gate_message;
  for (const auto& gate : spec.value("readinessGates", json::array())) {
    std::string type = Str(gate, "conditionType");
    auto it = previous.find(type);
    if (it == previous.end() || Str(it->second, "status") != "True") {
      gates_ready = false;
      gate_message = it == previous.end()
                         ? absl::StrCat("corresponding condition of pod readiness gate \"", type, "\" does not exist.")
                         : absl::StrCat("the status of pod readiness gate \"", type, "\" is not \"True\", but ",
                                        Str(it->second, "status"));
    }
  }
  json conditions = json::array();
  for (const auto& [type, c] : previous) {
    if (type != "PodScheduled" && type != "Initialized" && type != "ContainersReady" && type != "Ready" &&
        type != "PodReadyToStartContainers") {
      conditions.push_back(c);
    }
  }
  conditions.push_back(condition("PodReadyToStartContainers", !sandbox_id_.empty() && !sandbox_stopped_, "", ""));
  conditions.push_back(condition(
      "Initialized", initialized, initialized ? "" : "ContainersNotInitialized",
      initialized ? "" : absl::StrCat("containers with incomplete status: [", absl::StrJoin(incomplete, " "), "]")));
  conditions.push_back(condition("Ready", containers_ready && gates_ready,
                                 containers_ready ? (gates_ready ? "" : "ReadinessGatesNotReady") : not_ready_reason,
                                 containers_ready ? gate_message : not_ready_message));
  conditions.push_back(condition("ContainersReady", containers_ready, containers_ready ? "" : not_ready_reason,
                                 not_ready_message));
  conditions.push_back(condition("PodScheduled", true, "", ""));

  json status = {{"phase", phase},
                 {"conditions", conditions},
                 {"hostIP", options_.node_ip},
                 {"hostIPs", json::array({{{"ip", options_.node_ip}}})},
                 {"startTime", start_time_},
                 {"qosClass", QosClass(spec)},
                 {"containerStatuses", statuses}};
  if (!init_statuses.empty()) status["initContainerStatuses"] = init_statuses;
  if (!pod_ip_.empty()) {
    status["podIP"] = pod_ip_;
    status["podIPs"] = json::array({{{"ip", pod_ip_}}});
  }
  if (!pod_error_.empty() && sandbox_id_.empty()) {
    status["message"] = pod_error_;
  }
  return status;
}

void PodWorker::PatchStatusIfChanged(const json& pod) {
  if (status_final_) return;
  json status = BuildStatus(pod);
  if (last_status_ && *last_status_ == status) return;
  runtime::ScopedStep step(trace_steps(), "status patch");
  if (startup_trace_) startup_trace_->patch_sent_unix_ns = absl::GetCurrentTimeNanos();
  absl::Status st = api_.PatchPodStatus(namespace_, name_, status);
  if (!st.ok()) {
    spdlog::warn("kubelet: pod {}/{}: patching status: {}", namespace_, name_, st.message());
    return;  // tried again on the next sync
  }
  step.Finish();
  last_status_ = status;
  FinishStartupTrace(status);
}

void PodWorker::FinishStartupTrace(const json& status) {
  if (!startup_trace_) return;
  std::string phase = Str(status, "phase");
  if (phase == "Pending") return;
  if (phase == "Running" && startup_trace_->started_container) {
    json steps = json::array();  // [[step, ms], ...] in the order they ran
    for (const auto& [name, took] : startup_trace_->steps.Steps()) {
      steps.push_back({name, std::chrono::duration<double, std::milli>(took).count()});
    }
    json line = {{"pod", absl::StrCat(namespace_, "/", name_)},
                 {"seenAtUnixNs", startup_trace_->seen_unix_ns},
                 {"patchSentAtUnixNs", startup_trace_->patch_sent_unix_ns},
                 {"totalMs", std::chrono::duration<double, std::milli>(Clock::now() - startup_trace_->seen).count()},
                 {"stepsMs", steps}};
    spdlog::info("pod-startup {}", line.dump());
  }
  startup_trace_.reset();  // only the first start is traced
}

void PodWorker::Terminate(const json& pod, int64_t grace_seconds, bool delete_object) {
  auto deadline = Clock::now() + std::chrono::seconds(std::max<int64_t>(grace_seconds, 0));
  std::map<std::string, json> specs;
  for (const char* list : {"initContainers", "containers"}) {
    for (const auto& c : pod["spec"].value(list, json::array())) specs[Str(c, "name")] = c;
  }
  std::vector<std::string> sandbox_ids;
  auto sandboxes = runtime_.ListPodSandboxes();
  if (sandboxes.ok()) {
    for (const auto& s : *sandboxes) {
      if (s.config.uid == uid_) sandbox_ids.push_back(s.id);
    }
  }
  if (pod_ip_.empty() && sandboxes.ok()) {
    for (const auto& s : *sandboxes) {
      if (s.config.uid == uid_ && !s.ip.empty()) pod_ip_ = s.ip;
    }
  }
  // Every running container stops in parallel: preStop hook, SIGTERM, SIGKILL at the deadline.
  std::vector<std::thread> stoppers;
  for (const auto& sandbox : sandbox_ids) {
    auto containers = runtime_.ListContainers(sandbox);
    if (!containers.ok()) continue;
    for (const auto& c : *containers) {
      if (c.state != ContainerState::kRunning && c.state != ContainerState::kCreated) continue;
      stoppers.emplace_back([this, c, deadline, spec = specs[c.name]] {
        ProbeSpec hook = ParseProbe(spec.value("lifecycle", json::object()).value("preStop", json()), spec);
        if (hook.kind != ProbeSpec::Kind::kNone) {
          auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
          if (left.count() > 0) {
            ProbeResult r = RunProbe(hook, runtime_, c.id, pod_ip_, left);
            if (!r.success) {
              spdlog::warn("kubelet: pod {}/{}: preStop hook of {} failed: {}", namespace_, name_, c.name, r.message);
            }
          }
        }
        auto left = std::chrono::duration_cast<std::chrono::seconds>(deadline - Clock::now());
        absl::Status st = runtime_.StopContainer(c.id, std::max(left, std::chrono::seconds(0)));
        if (!st.ok()) spdlog::warn("kubelet: pod {}/{}: stopping {}: {}", namespace_, name_, c.name, st.message());
      });
    }
  }
  for (auto& t : stoppers) t.join();
  for (const auto& sandbox : sandbox_ids) {
    // Retried a few times: a busy runtime or a transient CNI failure must not leave anything behind.
    for (int attempt = 0; attempt < 5; ++attempt) {
      absl::Status st = runtime_.RemovePodSandbox(sandbox);
      if (st.ok()) break;
      spdlog::warn("kubelet: pod {}/{}: removing sandbox {}: {}", namespace_, name_, sandbox, st.message());
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  }
  if (absl::Status st = PodVolumes::Teardown(options_.pods_dir + "/" + uid_); !st.ok()) {
    spdlog::warn("kubelet: pod {}/{}: volumes: {}", namespace_, name_, st.message());
  }
  spdlog::info("kubelet: pod {}/{} ({}) stopped and removed", namespace_, name_, uid_);
  if (!delete_object) return;
  for (int attempt = 0; attempt < 10; ++attempt) {
    absl::Status st = api_.DeletePodNow(namespace_, name_, uid_);
    if (st.ok()) return;
    spdlog::warn("kubelet: pod {}/{}: deleting the pod object: {}", namespace_, name_, st.message());
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

}  // namespace kelpie::kubelet
