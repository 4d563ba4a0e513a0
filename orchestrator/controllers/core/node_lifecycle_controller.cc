#include "orchestrator/controllers/core/node_lifecycle_controller.h"

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/log.h"
#include "orchestrator/client/api_errors.h"
#include "orchestrator/controllers/rest_event_recorder.h"

namespace kelpie::controllers {

using nlohmann::json;

namespace {
constexpr char kNodeIndex[] = "node";
constexpr char kLeaseNamespace[] = "kube-node-lease";

json ConditionOf(const json& node, const std::string& type) {
  const json status = node.value("status", json::object());
  for (const auto& c : status.value("conditions", json::array())) {
    if (c.value("type", "") == type) return c;
  }
  return json();
}

bool Tolerates(const json& toleration, const json& taint) {
  std::string effect = toleration.value("effect", "");
  if (!effect.empty() && effect != taint.value("effect", "")) return false;
  std::string key = toleration.value("key", "");
  std::string op = toleration.value("operator", "Equal");
  if (key.empty()) return op == "Exists";
  if (key != taint.value("key", "")) return false;
  if (op == "Exists") return true;
  return toleration.value("value", "") == taint.value("value", "");
}

std::chrono::system_clock::time_point ParseTimeOr(const std::string& text, std::chrono::system_clock::time_point d) {
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, text, &t, &err)) return d;
  return absl::ToChronoTime(t);
}

bool IsNoExecute(const json& taint) { return taint.value("effect", "") == "NoExecute"; }
}  // namespace

std::optional<int64_t> TolerationSecondsFor(const json& pod, const json& taint, int64_t default_seconds) {
  const json tolerations = pod.value("spec", json::object()).value("tolerations", json::array());
  bool matched = false;
  std::optional<int64_t> best;  // the longest matching toleration wins
  bool forever = false;
  for (const auto& t : tolerations) {
    if (!Tolerates(t, taint)) continue;
    matched = true;
    if (!t.contains("tolerationSeconds") || !t["tolerationSeconds"].is_number_integer()) {
      forever = true;
      continue;
    }
    int64_t s = std::max<int64_t>(0, t["tolerationSeconds"].get<int64_t>());
    best = best ? std::max(*best, s) : s;
  }
  if (forever) return std::nullopt;
  if (matched) return best;
  const std::string key = taint.value("key", "");
  if (key == kNotReadyTaint || key == kUnreachableTaint) return default_seconds;
  return 0;
}

NodeLifecycleController::NodeLifecycleController(ControllerContext& ctx, NodeLifecycleOptions options)
    : ctx_(ctx),
      options_(options),
      nodes_(ctx.informers.For(client::resources::kNodes)),
      leases_(ctx.informers.For(client::resources::kLeases)),
      pods_(ctx.informers.For(client::resources::kPods)) {
  pods_.AddIndexer(kNodeIndex, PodNodeNameIndex);
}

NodeLifecycleController::~NodeLifecycleController() { Stop(); }

void NodeLifecycleController::Run(int) {
  std::lock_guard<std::mutex> lock(mu_);
  if (thread_.joinable() || stop_) return;
  thread_ = std::thread([this] { Loop(); });
}

void NodeLifecycleController::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void NodeLifecycleController::Loop() {
  for (;;) {
    MonitorOnce();
    std::unique_lock<std::mutex> lock(mu_);
    if (cv_.wait_for(lock, options_.monitor_period, [this] { return stop_; })) return;
  }
}

void NodeLifecycleController::MonitorOnce() {
  const auto now = std::chrono::steady_clock::now();
  std::set<std::string> seen;
  for (const auto& node : nodes_.store().List()) {
    const std::string name = node["metadata"].value("name", "");
    seen.insert(name);
    // A heartbeat is a change of the Lease's renewTime or of the Ready
    // condition's lastHeartbeatTime, timed by this controller's clock.
    std::string renew;
    if (auto lease = leases_.store().Get(ObjectKey(kLeaseNamespace, name))) {
      renew = (*lease).value("spec", json::object()).value("renewTime", "");
    }
    json ready_condition = ConditionOf(node, "Ready");
    std::string heartbeat = ready_condition.is_object() ? ready_condition.value("lastHeartbeatTime", "") : "";
    auto it = health_.find(name);
    if (it == health_.end()) {
      health_[name] = Health{renew, heartbeat, now};
    } else if (it->second.lease_renew != renew || it->second.ready_heartbeat != heartbeat) {
      it->second = Health{renew, heartbeat, now};
    }
    std::string ready = ready_condition.is_object() ? ready_condition.value("status", "Unknown") : "Unknown";
    if (now - health_[name].probe > options_.grace_period && ready != "Unknown") {
      MarkUnknown(node);
      ready = "Unknown";
    }
    ReconcileTaints(node, ready);
    EvictPods(node);
  }
  for (auto it = health_.begin(); it != health_.end();) {
    it = seen.count(it->first) ? std::next(it) : health_.erase(it);
  }
}

void NodeLifecycleController::MarkUnknown(const json& node) {
  const std::string name = node["metadata"].value("name", "");
  const std::string now = EventTimestamp(std::chrono::system_clock::now());
  json conditions = node.value("status", json::object()).value("conditions", json::array());
  bool has_ready = false;
  for (auto& c : conditions) {
    if (c.value("type", "") == "Ready") has_ready = true;
    c["status"] = "Unknown";
    c["reason"] = "NodeStatusUnknown";
    c["message"] = "Kubelet stopped posting node status.";
    c["lastTransitionTime"] = now;
  }
  if (!has_ready) {
    conditions.push_back({{"type", "Ready"},
                          {"status", "Unknown"},
                          {"reason", "NodeStatusNeverUpdated"},
                          {"message", "Kubelet never posted node status."},
                          {"lastHeartbeatTime", now},
                          {"lastTransitionTime", now}});
  }
  auto patched = ctx_.client.Patch(client::resources::kNodes, "", name, client::PatchType::kMerge,
                                   json{{"status", {{"conditions", conditions}}}}, "status");
  if (!patched.ok()) {
    spdlog::warn("nodelifecycle: marking node {} Unknown: {}", name, patched.status().message());
    return;
  }
  spdlog::info("nodelifecycle: node {} stopped posting status; Ready=Unknown", name);
  ctx_.recorder.Event(node, EventType::kNormal, "NodeNotReady",
                      absl::StrCat("Node ", name, " status is now: NodeNotReady"));
  MarkPodsNotReady(name);
}

void NodeLifecycleController::MarkPodsNotReady(const std::string& node_name) {
  const std::string now = EventTimestamp(std::chrono::system_clock::now());
  for (const auto& pod : pods_.store().ByIndex(kNodeIndex, node_name)) {
    json conditions = pod.value("status", json::object()).value("conditions", json::array());
    bool changed = false;
    for (auto& c : conditions) {
      if (c.value("type", "") == "Ready" && c.value("status", "") != "False") {
        c["status"] = "False";
        c["lastTransitionTime"] = now;
        changed = true;
      }
    }
    if (!changed) continue;
    const json meta = pod["metadata"];
    auto r = ctx_.client.Patch(client::resources::kPods, meta.value("namespace", ""), meta.value("name", ""),
                               client::PatchType::kMerge, json{{"status", {{"conditions", conditions}}}}, "status");
    if (!r.ok() && !client::IsNotFound(r.status())) {
      spdlog::warn("nodelifecycle: marking pod {} not ready: {}", ObjectKey(pod), r.status().message());
    }
  }
}

void NodeLifecycleController::ReconcileTaints(const json& node, const std::string& ready) {
  std::string wanted;
  if (ready == "False") wanted = kNotReadyTaint;
  if (ready == "Unknown") wanted = kUnreachableTaint;
  json taints = node.value("spec", json::object()).value("taints", json::array());
  json next = json::array();
  bool has_wanted = false, changed = false;
  for (const auto& t : taints) {
    const std::string key = t.value("key", "");
    if (IsNoExecute(t) && (key == kNotReadyTaint || key == kUnreachableTaint)) {
      if (key == wanted) {
        has_wanted = true;
      } else {
        changed = true;
        continue;
      }
    }
    next.push_back(t);
  }
  if (!wanted.empty() && !has_wanted) {
    next.push_back({{"key", wanted},
                    {"effect", "NoExecute"},
                    {"timeAdded", EventTimestamp(std::chrono::system_clock::now())}});
    changed = true;
  }
  if (!changed) return;
  json updated = node;
  updated["spec"]["taints"] = next;
  if (next.empty()) updated["spec"].erase("taints");
  auto r = ctx_.client.Update(client::resources::kNodes, "", updated);
  if (!r.ok()) {
    // A conflict is retried next period with the fresh node.
    spdlog::debug("nodelifecycle: taints of {}: {}", node["metadata"].value("name", ""), r.status().message());
    return;
  }
  spdlog::info("nodelifecycle: node {} taints now {}", node["metadata"].value("name", ""), next.dump());
}

void NodeLifecycleController::EvictPods(const json& node) {
  json taints = node.value("spec", json::object()).value("taints", json::array());
  std::vector<json> no_execute;
  for (const auto& t : taints) {
    if (IsNoExecute(t)) no_execute.push_back(t);
  }
  if (no_execute.empty()) return;
  const auto now = std::chrono::system_clock::now();
  for (const auto& pod : pods_.store().ByIndex(kNodeIndex, node["metadata"].value("name", ""))) {
    const json meta = pod["metadata"];
    if (meta.contains("deletionTimestamp")) continue;
    std::optional<std::chrono::system_clock::time_point> deadline;
    for (const auto& t : no_execute) {
      const std::string key = t.value("key", "");
      int64_t def = key == kNotReadyTaint ? options_.default_not_ready_toleration_seconds
                                          : options_.default_unreachable_toleration_seconds;
      auto seconds = TolerationSecondsFor(pod, t, def);
      if (!seconds) continue;
      auto at = ParseTimeOr(t.value("timeAdded", ""), now) + std::chrono::seconds(*seconds);
      deadline = deadline ? std::min(*deadline, at) : at;
    }
    if (!deadline || now < *deadline) continue;
    const std::string ns = meta.value("namespace", "");
    const std::string name = meta.value("name", "");
    ctx_.recorder.Event(pod, EventType::kNormal, "TaintManagerEviction",
                        absl::StrCat("Marking for deletion Pod ", ns, "/", name));
    auto r = ctx_.client.Delete(client::resources::kPods, ns, name);
    if (!r.ok() && !client::IsNotFound(r.status())) {
      spdlog::warn("nodelifecycle: evicting {}/{}: {}", ns, name, r.status().message());
    } else {
      spdlog::info("nodelifecycle: evicted {}/{} from tainted node {}", ns, name, node["metadata"].value("name", ""));
    }
  }
}

}  // namespace kelpie::controllers
