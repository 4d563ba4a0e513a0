#include "orchestrator/controllers/workloads/daemon_set_controller.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "orchestrator/client/api_errors.h"
#include "orchestrator/controllers/workloads/deployment_util.h"
#include "orchestrator/controllers/workloads/replica_set_controller.h"
#include "orchestrator/controllers/workloads/workload_util.h"

namespace kelpie::controllers::workloads {

using nlohmann::json;
namespace res = client::resources;

namespace {
constexpr char kRevisionHashLabel[] = "controller-revision-hash";

bool Tolerates(const json& toleration, const json& taint) {
  const std::string effect = toleration.value("effect", "");
  if (!effect.empty() && effect != taint.value("effect", "")) return false;
  const std::string key = toleration.value("key", "");
  const std::string op = toleration.value("operator", "Equal");
  if (key.empty()) return op == "Exists";  // empty key with Exists tolerates everything
  if (key != taint.value("key", "")) return false;
  if (op == "Exists") return true;
  return toleration.value("value", "") == taint.value("value", "");
}
}  // namespace

bool ToleratesTaints(const json& tolerations, const json& taints) {
  if (!taints.is_array()) return true;
  for (const json& taint : taints) {
    const std::string effect = taint.value("effect", "");
    if (effect != "NoSchedule" && effect != "NoExecute") continue;
    bool ok = false;
    if (tolerations.is_array()) {
      for (const json& t : tolerations) ok = ok || Tolerates(t, taint);
    }
    if (!ok) return false;
  }
  return true;
}

json WithDaemonTolerations(json tolerations, bool host_network) {
  if (!tolerations.is_array()) tolerations = json::array();
  auto add = [&](const std::string& key, const std::string& effect) {
    for (const json& t : tolerations) {
      if (t.value("key", "") == key && t.value("effect", "") == effect && t.value("operator", "") == "Exists") return;
    }
    tolerations.push_back({{"key", key}, {"operator", "Exists"}, {"effect", effect}});
  };
  add("node.kubernetes.io/not-ready", "NoExecute");
  add("node.kubernetes.io/unreachable", "NoExecute");
  add("node.kubernetes.io/disk-pressure", "NoSchedule");
  add("node.kubernetes.io/memory-pressure", "NoSchedule");
  add("node.kubernetes.io/pid-pressure", "NoSchedule");
  add("node.kubernetes.io/unschedulable", "NoSchedule");
  if (host_network) add("node.kubernetes.io/network-unavailable", "NoSchedule");
  return tolerations;
}

void PinToNode(json& spec, const std::string& node) {
  json term = {{"matchFields", json::array({{{"key", "metadata.name"}, {"operator", "In"}, {"values", {node}}}})}};
  json& required = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
  if (!required.is_object() || !required.contains("nodeSelectorTerms") || !required["nodeSelectorTerms"].is_array() ||
      required["nodeSelectorTerms"].empty()) {
    required = {{"nodeSelectorTerms", json::array({term})}};
    return;
  }
  // Kubernetes replaces the matchFields of every term so that each still
  // applies its own label expressions and names this node.
  for (json& t : required["nodeSelectorTerms"]) t["matchFields"] = term["matchFields"];
}

std::string DaemonPodNode(const json& pod) {
  std::string node = StringAt(pod, "/spec/nodeName");
  if (!node.empty()) return node;
  const json::json_pointer terms(
      "/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms");
  if (!pod.contains(terms) || !pod.at(terms).is_array()) return "";
  for (const json& t : pod.at(terms)) {
    for (const json& f : t.value("matchFields", json::array())) {
      if (f.value("key", "") == "metadata.name" && f.contains("values") && !f["values"].empty()) return f["values"][0];
    }
  }
  return "";
}

DaemonSetController::DaemonSetController(ControllerContext& ctx)
    : ctx_(ctx),
      daemon_sets_(ctx.informers.For(res::kDaemonSets)),
      nodes_(ctx.informers.For(res::kNodes)),
      pods_(ctx.informers.For(res::kPods)),
      worker_("daemonset", ctx.metrics, ctx.clock, [this](const std::string& key) { return Sync(key); }) {
  pods_.AddIndexer(kControllerUidIndex, ControllerUidIndex);
  daemon_sets_.AddEventHandler({
      .on_add = [this](const json& ds) { worker_.queue().Add(ObjectKey(ds)); },
      .on_update = [this](const json&, const json& ds) { worker_.queue().Add(ObjectKey(ds)); },
      .on_delete =
          [this](const json& ds, bool) {
            expectations_.Delete(ObjectKey(ds));
            worker_.queue().Add(ObjectKey(ds));
          },
  });
  nodes_.AddEventHandler({
      .on_add = [this](const json&) { EnqueueAll(); },
      .on_update =
          [this](const json& old_node, const json& node) {
            // Heartbeats change only status; labels and taints decide eligibility.
            if (old_node["metadata"].value("labels", json::object()) != node["metadata"].value("labels", json::object()) ||
                old_node.value("spec", json::object()) != node.value("spec", json::object())) {
              EnqueueAll();
            }
          },
      .on_delete = [this](const json&, bool) { EnqueueAll(); },
  });
  pods_.AddEventHandler({
      .on_add =
          [this](const json& pod) {
            std::string key = KeyOf(pod);
            if (key.empty()) return;
            expectations_.CreationObserved(key);
            worker_.queue().Add(key);
          },
      .on_update =
          [this](const json& old_pod, const json& pod) {
            if (StringAt(old_pod, "/metadata/resourceVersion") == StringAt(pod, "/metadata/resourceVersion")) return;
            std::string key = KeyOf(pod);
            if (key.empty()) return;
            if (IsPodDeleting(pod) && !IsPodDeleting(old_pod)) expectations_.DeletionObserved(key, ObjectKey(pod));
            worker_.queue().Add(key);
          },
      .on_delete =
          [this](const json& pod, bool) {
            std::string key = KeyOf(pod);
            if (key.empty()) return;
            expectations_.DeletionObserved(key, ObjectKey(pod));
            worker_.queue().Add(key);
          },
  });
}

std::string DaemonSetController::KeyOf(const json& pod) const {
  json ref = ControllerRefOf(pod);
  if (!ref.is_object() || ref.value("kind", "") != "DaemonSet") return "";
  std::string key = ObjectKey(StringAt(pod, "/metadata/namespace"), ref.value("name", ""));
  auto ds = daemon_sets_.store().Get(key);
  if (!ds || StringAt(*ds, "/metadata/uid") != ref.value("uid", "")) return "";
  return key;
}

void DaemonSetController::EnqueueAll() {
  for (const std::string& key : daemon_sets_.store().ListKeys()) worker_.queue().Add(key);
}

absl::Status DaemonSetController::Sync(const std::string& key) {
  auto cached = daemon_sets_.store().Get(key);
  if (!cached) {
    expectations_.Delete(key);
    return absl::OkStatus();
  }
  const json& ds = *cached;
  if (IsDeleting(ds)) return absl::OkStatus();
  const std::string ns = StringAt(ds, "/metadata/namespace");
  const json tmpl = ds["spec"].value("template", json::object());
  const json tspec = tmpl.value("spec", json::object());
  const std::string hash = ComputeTemplateHash(tmpl, ds.contains("status") && ds["status"].contains("collisionCount")
                                                         ? std::optional<int32_t>(ds["status"]["collisionCount"].get<int32_t>())
                                                         : std::nullopt);
  const json tolerations = WithDaemonTolerations(tspec.value("tolerations", json::array()), tspec.value("hostNetwork", false));
  const json node_selector = tspec.value("nodeSelector", json::object());
  const int64_t min_ready = IntAt(ds, "/spec/minReadySeconds");
  const auto now = std::chrono::system_clock::now();

  // Eligible nodes.
  std::map<std::string, bool> should_run;
  for (const json& node : nodes_.store().List()) {
    const bool eligible = LabelsContain(node["metadata"].value("labels", json::object()), node_selector) &&
                          ToleratesTaints(tolerations, json(node.value("spec", json::object())).value("taints", json::array()));
    should_run[StringAt(node, "/metadata/name")] = eligible;
  }
  // Pods by node.
  std::map<std::string, std::vector<json>> by_node;
  std::vector<json> to_delete;
  for (json& pod : pods_.store().ByIndex(kControllerUidIndex, StringAt(ds, "/metadata/uid"))) {
    if (StringAt(pod, "/metadata/namespace") != ns || IsPodDeleting(pod)) continue;
    std::string node = DaemonPodNode(pod);
    auto it = should_run.find(node);
    if (it == should_run.end() || !it->second) {
      to_delete.push_back(std::move(pod));  // node gone or no longer eligible
    } else if (StringAt(pod, "/status/phase") == "Failed") {
      // Kubernetes deletes failed daemon pods so they are created anew.
      ctx_.recorder.Event(ds, EventType::kWarning, "FailedDaemonPod",
                          absl::StrCat("Found failed daemon pod ", ns, "/", StringAt(pod, "/metadata/name"),
                                       " on node ", node, ", will try to kill it"));
      to_delete.push_back(std::move(pod));
    } else {
      by_node[node].push_back(std::move(pod));
    }
  }
  std::vector<std::string> create_on;
  int64_t desired = 0, current = 0, ready = 0, available = 0, updated = 0, misscheduled = 0;
  int64_t unavailable_now = 0;
  std::vector<json> old_pods_available, old_pods_unavailable;
  for (const auto& [node, eligible] : should_run) {
    if (!eligible) continue;
    ++desired;
    auto it = by_node.find(node);
    if (it == by_node.end() || it->second.empty()) {
      create_on.push_back(node);
      ++unavailable_now;
      continue;
    }
    std::vector<json>& pods = it->second;
    // Keep the oldest pod; others on the node are surplus.
    std::sort(pods.begin(), pods.end(), [](const json& a, const json& b) {
      return StringAt(a, "/metadata/creationTimestamp") < StringAt(b, "/metadata/creationTimestamp");
    });
    for (size_t i = 1; i < pods.size(); ++i) to_delete.push_back(pods[i]);
    const json& pod = pods[0];
    ++current;
    const bool is_ready = IsPodReady(pod);
    const bool is_available = IsPodAvailable(pod, min_ready, now);
    if (is_ready) ++ready;
    if (is_available) ++available;
    if (!is_available) ++unavailable_now;
    if (StringAt(pod, "/metadata/labels/controller-revision-hash") == hash) {
      ++updated;
    } else if (is_available) {
      old_pods_available.push_back(pod);
    } else {
      old_pods_unavailable.push_back(pod);
    }
  }
  for (const json& pod : to_delete) {
    std::string node = DaemonPodNode(pod);
    auto it = should_run.find(node);
    if (it != should_run.end() && !it->second) ++misscheduled;
  }

  absl::Status manage;
  if (expectations_.Satisfied(key)) {
    // Rolling update: old unavailable pods go at once; available ones as far
    // as maxUnavailable allows.
    if (StringAt(ds, "/spec/updateStrategy/type", "RollingUpdate") == "RollingUpdate") {
      const json::json_pointer p("/spec/updateStrategy/rollingUpdate/maxUnavailable");
      const json max_unavailable_value = ds.contains(p) ? ds.at(p) : json(1);
      int64_t max_unavailable = ScaledValueFromIntOrPercent(max_unavailable_value, desired, true).value_or(1);
      if (max_unavailable == 0) max_unavailable = 1;
      for (const json& pod : old_pods_unavailable) to_delete.push_back(pod);
      int64_t budget = max_unavailable - unavailable_now;
      for (const json& pod : old_pods_available) {
        if (budget <= 0) break;
        to_delete.push_back(pod);
        --budget;
      }
    }
    std::vector<std::string> delete_keys;
    for (const json& pod : to_delete) delete_keys.push_back(ObjectKey(pod));
    expectations_.Expect(key, static_cast<int>(create_on.size()), delete_keys);
    for (const json& pod : to_delete) {
      const std::string name = StringAt(pod, "/metadata/name");
      auto d = ctx_.client.Delete(res::kPods, ns, name, {.precondition_uid = StringAt(pod, "/metadata/uid")});
      if (d.ok()) {
        ctx_.recorder.Event(ds, EventType::kNormal, "SuccessfulDelete", absl::StrCat("Deleted pod: ", name));
        continue;
      }
      expectations_.DeletionObserved(key, ObjectKey(pod));
      if (!client::IsNotFound(d.status()) && manage.ok()) manage = d.status();
    }
    json labels = json(tmpl.value("metadata", json::object())).value("labels", json::object());
    labels[kRevisionHashLabel] = hash;
    for (const std::string& node : create_on) {
      json spec = tspec;
      spec["tolerations"] = tolerations;
      PinToNode(spec, node);
      json meta = {{"generateName", StringAt(ds, "/metadata/name") + "-"},
                   {"namespace", ns},
                   {"labels", labels},
                   {"ownerReferences", json::array({MakeControllerRef(ds, "apps/v1", "DaemonSet")})}};
      const json tmeta = tmpl.value("metadata", json::object());
      if (tmeta.contains("annotations")) meta["annotations"] = tmeta["annotations"];
      json pod = {{"apiVersion", "v1"}, {"kind", "Pod"}, {"metadata", meta}, {"spec", spec}};
      auto created = ctx_.client.Create(res::kPods, ns, pod);
      if (!created.ok()) {
        ctx_.recorder.Event(ds, EventType::kWarning, "FailedCreate",
                            absl::StrCat("Error creating: ", created.status().message()));
        expectations_.CreationSkipped(key);
        if (manage.ok()) manage = created.status();
        continue;
      }
      ctx_.recorder.Event(ds, EventType::kNormal, "SuccessfulCreate",
                          absl::StrCat("Created pod: ", StringAt(*created, "/metadata/name")));
    }
  }

  json status = {{"desiredNumberScheduled", desired},
                 {"currentNumberScheduled", current},
                 {"numberMisscheduled", misscheduled},
                 {"numberReady", ready},
                 {"numberAvailable", available},
                 {"numberUnavailable", std::max<int64_t>(desired - available, 0)},
                 {"updatedNumberScheduled", updated},
                 {"observedGeneration", IntAt(ds, "/metadata/generation")}};
  if (ds.contains("status") && ds["status"].contains("collisionCount")) status["collisionCount"] = ds["status"]["collisionCount"];
  if (status != ds.value("status", json::object())) {
    json next = ds;
    next["status"] = status;
    auto w = ctx_.client.UpdateStatus(res::kDaemonSets, ns, next);
    if (!w.ok() && !client::IsNotFound(w.status())) return w.status();
  }
  if (manage.ok() && min_ready > 0 && available < ready) {
    worker_.queue().AddAfter(key, std::chrono::seconds(min_ready));
  }
  return manage;
}

}  // namespace kelpie::controllers::workloads
