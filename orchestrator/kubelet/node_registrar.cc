#include "orchestrator/kubelet/node_registrar.h"

#include "common/log.h"
#include "orchestrator/api/object_meta.h"

namespace kelpie::kubelet {
namespace {

using nlohmann::json;

constexpr char kLeaseNamespace[] = "kube-node-lease";

// RFC 3339 with microseconds, as Lease renewTime (MicroTime) requires.
std::string NowMicroTime() {
  auto now = std::chrono::system_clock::now();
  std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  auto micros = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() % 1000000;
  std::tm tm;
  gmtime_r(&seconds, &tm);
  char buf[48];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  char out[64];
  std::snprintf(out, sizeof(out), "%s.%06lldZ", buf, static_cast<long long>(micros));
  return out;
}

}  // namespace

NodeRegistrar::NodeRegistrar(NodeApi& api, NodeFacts facts, NodeRegistrarOptions options)
    : api_(api), facts_(std::move(facts)), options_(std::move(options)) {}

json NodeRegistrar::Conditions(const json& current) {
  NodeReadiness readiness = options_.readiness();
  std::string now = api::NowRfc3339();
  struct Wanted {
    const char* type;
    bool status;
    std::string reason;
    std::string message;
  };
  const Wanted wanted[] = {
      {"MemoryPressure", false, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"},
      {"DiskPressure", false, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"},
      {"PIDPressure", false, "KubeletHasSufficientPID", "kubelet has sufficient PID available"},
      {"Ready", readiness.ready, readiness.reason, readiness.message},
  };
  json out = json::array();
  for (const Wanted& w : wanted) {
    std::string status = w.status ? "True" : "False";
    std::string transition = now;
    if (current.is_array()) {
      for (const auto& c : current) {
        if (c.is_object() && c.value("type", "") == w.type && c.value("status", "") == status) {
          transition = c.value("lastTransitionTime", now);
        }
      }
    }
    out.push_back({{"type", w.type},
                   {"status", status},
                   {"reason", w.reason},
                   {"message", w.message},
                   {"lastHeartbeatTime", now},
                   {"lastTransitionTime", transition}});
  }
  return out;
}

absl::Status NodeRegistrar::Register() {
  const std::string& name = options_.settings.name;
  json desired = NodeObject(facts_, options_.settings);
  auto existing = api_.GetNode(name);
  if (!existing.ok() && existing.status().code() != absl::StatusCode::kNotFound) return existing.status();
  if (!existing.ok()) {
    json created = desired;
    created["status"]["conditions"] = Conditions(json());
    auto made = api_.CreateNode(created);
    if (made.ok()) {
      spdlog::info("registered node {}", name);
    } else if (made.status().code() != absl::StatusCode::kAlreadyExists) {
      return made.status();
    }
  } else {
    // Labels this node owns are (re)set; labels others added stay.
    json patch = {{"metadata", {{"labels", desired["metadata"]["labels"]}}}};
    if (desired["spec"].contains("podCIDR") && !(*existing)["spec"].contains("podCIDR")) {
      patch["spec"] = desired["spec"];
    }
    auto patched = api_.PatchNode(name, patch);
    if (!patched.ok()) return patched.status();
    spdlog::info("node {} was registered before; updated it", name);
  }
  return PostStatus();
}

absl::Status NodeRegistrar::PostStatus() {
  const std::string& name = options_.settings.name;
  auto current = api_.GetNode(name);
  if (!current.ok()) return current.status();
  json desired = NodeObject(facts_, options_.settings);
  json status = desired["status"];
  json old_conditions = (*current).contains("status") && (*current)["status"].is_object()
                            ? (*current)["status"].value("conditions", json::array())
                            : json::array();
  status["conditions"] = Conditions(old_conditions);
  auto patched = api_.PatchNodeStatus(name, {{"status", status}});
  return patched.ok() ? absl::OkStatus() : patched.status();
}

absl::Status NodeRegistrar::RenewLease() {
  const std::string& name = options_.settings.name;
  auto lease = api_.GetLease(kLeaseNamespace, name);
  if (!lease.ok() && lease.status().code() != absl::StatusCode::kNotFound) return lease.status();
  if (!lease.ok()) {
    json fresh = {{"apiVersion", "coordination.k8s.io/v1"},
                  {"kind", "Lease"},
                  {"metadata", {{"name", name}, {"namespace", kLeaseNamespace}}},
                  {"spec",
                   {{"holderIdentity", name},
                    {"leaseDurationSeconds", options_.lease_duration.count()},
                    {"renewTime", NowMicroTime()}}}};
    // Owned by the Node, so deleting the Node deletes its Lease.
    auto node = api_.GetNode(name);
    if (node.ok()) {
      fresh["metadata"]["ownerReferences"] = json::array({{{"apiVersion", "v1"},
                                                           {"kind", "Node"},
                                                           {"name", name},
                                                           {"uid", (*node)["metadata"].value("uid", "")}}});
    }
    auto made = api_.CreateLease(fresh);
    return made.ok() || made.status().code() == absl::StatusCode::kAlreadyExists ? absl::OkStatus() : made.status();
  }
  json renewed = *lease;
  renewed["spec"]["holderIdentity"] = name;
  renewed["spec"]["leaseDurationSeconds"] = options_.lease_duration.count();
  renewed["spec"]["renewTime"] = NowMicroTime();
  auto updated = api_.UpdateLease(renewed);
  return updated.ok() ? absl::OkStatus() : updated.status();
}

void NodeRegistrar::Run() {
  auto wait = [this](std::chrono::seconds d) {
    std::unique_lock lock(mu_);
    return !cv_.wait_for(lock, d, [this] { return stopping_; });
  };
  std::chrono::seconds backoff{1};
  while (true) {
    absl::Status st = Register();
    if (st.ok()) break;
    spdlog::warn("registering node {} failed (retrying in {} s): {}", options_.settings.name, backoff.count(),
                 st.ToString());
    if (!wait(backoff)) return;
    backoff = std::min(backoff * 2, std::chrono::seconds(30));
  }
  auto last_status = std::chrono::steady_clock::now();
  do {
    if (absl::Status st = RenewLease(); !st.ok()) {
      spdlog::warn("renewing the lease of node {}: {}", options_.settings.name, st.ToString());
    }
    if (std::chrono::steady_clock::now() - last_status >= options_.status_interval) {
      if (absl::Status st = PostStatus(); !st.ok()) {
        spdlog::warn("posting the status of node {}: {}", options_.settings.name, st.ToString());
      }
      last_status = std::chrono::steady_clock::now();
    }
  } while (wait(options_.renew_interval));
}

void NodeRegistrar::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
}

}  // namespace kelpie::kubelet
