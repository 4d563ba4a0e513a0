#include "orchestrator/controllers/workloads/replica_set_controller.h"

#include <algorithm>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "orchestrator/api/selector.h"
#include "orchestrator/client/api_errors.h"
#include "orchestrator/controllers/workloads/workload_util.h"

namespace kelpie::controllers::workloads {

using nlohmann::json;
namespace res = client::resources;

namespace {
// Creates in flight at once within a slow-start batch. The API server's
// store commits all writes waiting at once (group commit), so a batch costs
// about one commit latency per `kMaxParallelCreates` pods: 16 made scaling
// to 1,000 pods take ~60 commit round trips.
constexpr int kMaxParallelCreates = 64;
}  // namespace

ReplicaSetController::ReplicaSetController(ControllerContext& ctx)
    : ctx_(ctx),
      pods_(ctx.informers.For(res::kPods)),
      replica_sets_(ctx.informers.For(res::kReplicaSets)),
      pod_refs_(ctx.client, res::kPods, pods_),
      worker_("replicaset", ctx.metrics, ctx.clock, [this](const std::string& key) { return Sync(key); }) {
  replica_sets_.AddIndexer(kNamespaceIndexName, NamespaceIndex);
  replica_sets_.AddEventHandler({
      .on_add = [this](const json& rs) { worker_.queue().Add(ObjectKey(rs)); },
      .on_update = [this](const json&, const json& rs) { worker_.queue().Add(ObjectKey(rs)); },
      .on_delete =
          [this](const json& rs, bool) {
            expectations_.Delete(ObjectKey(rs));
            worker_.queue().Add(ObjectKey(rs));
          },
  });
  pods_.AddEventHandler({
      .on_add = [this](const json& pod) { OnPodAdd(pod); },
      .on_update = [this](const json& old_pod, const json& pod) { OnPodUpdate(old_pod, pod); },
      .on_delete = [this](const json& pod, bool) { OnPodDelete(pod); },
  });
}

std::string ReplicaSetController::ResolveControllerRef(const std::string& ns, const json& ref) const {
  if (!ref.is_object() || ref.value("kind", "") != "ReplicaSet") return "";
  std::string key = ObjectKey(ns, ref.value("name", ""));
  auto rs = replica_sets_.store().Get(key);
  if (!rs || StringAt(*rs, "/metadata/uid") != ref.value("uid", "")) return "";
  return key;
}

void ReplicaSetController::EnqueueMatchingReplicaSets(const json& pod) {
  const std::string ns = StringAt(pod, "/metadata/namespace");
  const json labels = pod["metadata"].value("labels", json::object());
  for (const json& rs : replica_sets_.store().ByIndex(kNamespaceIndexName, ns)) {
    auto selector = api::LabelSelector::FromJson(rs["spec"].value("selector", json::object()));
    if (selector.ok() && !selector->Empty() && selector->Matches(labels)) worker_.queue().Add(ObjectKey(rs));
  }
}

void ReplicaSetController::OnPodAdd(const json& pod) {
  if (IsPodDeleting(pod)) return OnPodDelete(pod);
  const std::string ns = StringAt(pod, "/metadata/namespace");
  json ref = ControllerRefOf(pod);
  if (ref.is_object()) {
    std::string key = ResolveControllerRef(ns, ref);
    if (key.empty()) return;
    expectations_.CreationObserved(key);
    worker_.queue().Add(key);
    return;
  }
  EnqueueMatchingReplicaSets(pod);
}

void ReplicaSetController::OnPodUpdate(const json& old_pod, const json& pod) {
  if (StringAt(old_pod, "/metadata/resourceVersion") == StringAt(pod, "/metadata/resourceVersion")) return;
  const std::string ns = StringAt(pod, "/metadata/namespace");
  const bool labels_changed = old_pod["metadata"].value("labels", json::object()) !=
                              pod["metadata"].value("labels", json::object());
  if (IsPodDeleting(pod) && !IsPodDeleting(old_pod)) {
    // A graceful deletion: the replacement can be made now, as Kubernetes
    // does, rather than after the kubelet finishes.
    OnPodDelete(pod);
    if (labels_changed) OnPodDelete(old_pod);
    return;
  }
  json old_ref = ControllerRefOf(old_pod);
  json ref = ControllerRefOf(pod);
  if (old_ref != ref && old_ref.is_object()) {
    std::string old_key = ResolveControllerRef(ns, old_ref);
    if (!old_key.empty()) worker_.queue().Add(old_key);
  }
  if (ref.is_object()) {
    std::string key = ResolveControllerRef(ns, ref);
    if (key.empty()) return;
    worker_.queue().Add(key);
    // A pod that just became ready turns available minReadySeconds later.
    if (!IsPodReady(old_pod) && IsPodReady(pod)) {
      auto rs = replica_sets_.store().Get(key);
      int64_t min_ready = rs ? IntAt(*rs, "/spec/minReadySeconds") : 0;
      if (min_ready > 0) worker_.queue().AddAfter(key, std::chrono::seconds(min_ready) + std::chrono::seconds(1));
    }
    return;
  }
  if (labels_changed || old_ref.is_object()) EnqueueMatchingReplicaSets(pod);
}

void ReplicaSetController::OnPodDelete(const json& pod) {
  json ref = ControllerRefOf(pod);
  if (!ref.is_object()) return;
  std::string key = ResolveControllerRef(StringAt(pod, "/metadata/namespace"), ref);
  if (key.empty()) return;
  expectations_.DeletionObserved(key, ObjectKey(pod));
  worker_.queue().Add(key);
}

absl::StatusOr<std::vector<json>> ReplicaSetController::ClaimPods(const json& rs) {
  auto selector = api::LabelSelector::FromJson(rs["spec"].value("selector", json::object()));
  if (!selector.ok()) return selector.status();
  return pod_refs_.Claim({rs, "apps/v1", "ReplicaSet"}, *selector);
}

namespace {
json PodFromTemplate(const json& rs) {
  const json tmpl = rs["spec"].value("template", json::object());
  const json tmeta = tmpl.value("metadata", json::object());
  json meta = {{"generateName", StringAt(rs, "/metadata/name") + "-"},
               {"namespace", StringAt(rs, "/metadata/namespace")},
               {"ownerReferences", json::array({MakeControllerRef(rs, "apps/v1", "ReplicaSet")})}};
  for (const char* field : {"labels", "annotations", "finalizers"}) {
    if (tmeta.contains(field) && !tmeta[field].is_null()) meta[field] = tmeta[field];
  }
  return {{"apiVersion", "v1"}, {"kind", "Pod"}, {"metadata", meta}, {"spec", tmpl.value("spec", json::object())}};
}
}  // namespace

absl::Status ReplicaSetController::ManageReplicas(const std::string& key, const json& rs,
                                                  const std::vector<json>& active) {
  const std::string ns = StringAt(rs, "/metadata/namespace");
  const int64_t desired = IntAt(rs, "/spec/replicas", 1);
  const int64_t diff = static_cast<int64_t>(active.size()) - desired;
  if (diff < 0) {
    const int n = static_cast<int>(std::min<int64_t>(-diff, kBurstReplicas));
    expectations_.ExpectCreations(key, n);
    const json pod = PodFromTemplate(rs);
    BatchResult r = SlowStartBatch(n, 1, kMaxParallelCreates, [&]() -> absl::Status {
      auto created = ctx_.client.Create(res::kPods, ns, pod);
      if (!created.ok()) {
        // A namespace being deleted refuses creates; Kubernetes records no event for it.
        ctx_.recorder.Event(rs, EventType::kWarning, "FailedCreate",
                            absl::StrCat("Error creating: ", created.status().message()));
        return created.status();
      }
      ctx_.recorder.Event(rs, EventType::kNormal, "SuccessfulCreate",
                          absl::StrCat("Created pod: ", StringAt(*created, "/metadata/name")));
      return absl::OkStatus();
    });
    for (int i = r.succeeded; i < n; ++i) expectations_.CreationSkipped(key);
    return r.first_error;
  }
  if (diff > 0) {
    const int n = static_cast<int>(std::min<int64_t>(diff, kBurstReplicas));
    std::vector<size_t> order = RankPodsForDeletion(active);
    std::vector<std::string> keys;
    for (int i = 0; i < n; ++i) keys.push_back(ObjectKey(active[order[i]]));
    expectations_.ExpectDeletions(key, keys);
    std::mutex mu;
    absl::Status first;
    std::atomic<int> next{0};
    auto work = [&] {
      for (int i; (i = next.fetch_add(1)) < n;) {
        const json& pod = active[order[i]];
        const std::string name = StringAt(pod, "/metadata/name");
        auto d = ctx_.client.Delete(res::kPods, ns, name, {.precondition_uid = StringAt(pod, "/metadata/uid")});
        if (d.ok() || client::IsNotFound(d.status())) {
          if (d.ok()) ctx_.recorder.Event(rs, EventType::kNormal, "SuccessfulDelete", absl::StrCat("Deleted pod: ", name));
          if (!d.ok()) expectations_.DeletionObserved(key, keys[i]);
          continue;
        }
        expectations_.DeletionObserved(key, keys[i]);  // it will not happen
        ctx_.recorder.Event(rs, EventType::kWarning, "FailedDelete",
                            absl::StrCat("Error deleting: ", d.status().message()));
        std::lock_guard<std::mutex> lock(mu);
        if (first.ok()) first = d.status();
      }
    };
    std::vector<std::thread> pool;
    for (int i = 0; i < std::min(n, 16); ++i) pool.emplace_back(work);
    for (auto& t : pool) t.join();
    return first;
  }
  return absl::OkStatus();
}

absl::Status ReplicaSetController::UpdateStatus(const json& rs, const json& status) {
  const json current = rs.value("status", json::object());
  bool same = true;
  for (const char* f : {"replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas", "observedGeneration"}) {
    if (current.value(f, int64_t{0}) != status.value(f, int64_t{0})) same = false;
  }
  if (current.value("conditions", json::array()) != status.value("conditions", json::array())) same = false;
  if (same) return absl::OkStatus();
  json next = rs;
  next["status"] = status;
  auto r = ctx_.client.UpdateStatus(res::kReplicaSets, StringAt(rs, "/metadata/namespace"), next);
  if (r.ok() || client::IsNotFound(r.status())) return absl::OkStatus();
  return r.status();
}

absl::Status ReplicaSetController::Sync(const std::string& key) {
  auto cached = replica_sets_.store().Get(key);
  if (!cached) {
    expectations_.Delete(key);
    return absl::OkStatus();
  }
  const json& rs = *cached;
  auto selector = api::LabelSelector::FromJson(rs["spec"].value("selector", json::object()));
  if (!selector.ok()) {
    ctx_.recorder.Event(rs, EventType::kWarning, "InvalidSelector", std::string(selector.status().message()));
    return absl::OkStatus();  // retrying will not fix the object
  }
  const bool need_sync = expectations_.Satisfied(key);
  auto pods = ClaimPods(rs);
  if (!pods.ok()) return pods.status();
  std::vector<json> active;
  for (json& p : *pods) {
    if (IsPodActive(p)) active.push_back(std::move(p));
  }
  absl::Status manage;
  if (need_sync && !IsDeleting(rs)) manage = ManageReplicas(key, rs, active);

  const auto now = std::chrono::system_clock::now();
  const int64_t min_ready = IntAt(rs, "/spec/minReadySeconds");
  const json template_labels = json(rs["spec"].value("template", json::object())).value("metadata", json::object()).value("labels", json::object());
  int64_t labeled = 0, ready = 0, available = 0;
  for (const json& p : active) {
    if (LabelsContain(p["metadata"].value("labels", json::object()), template_labels)) ++labeled;
    if (IsPodReady(p)) ++ready;
    if (IsPodAvailable(p, min_ready, now)) ++available;
  }
  json status = {{"replicas", static_cast<int64_t>(active.size())},
                 {"fullyLabeledReplicas", labeled},
                 {"readyReplicas", ready},
                 {"availableReplicas", available},
                 {"observedGeneration", IntAt(rs, "/metadata/generation")}};
  json conditions = json::array();
  for (const json& c : json(rs.value("status", json::object())).value("conditions", json::array())) {
    if (c.value("type", "") == "ReplicaFailure") {
      if (!manage.ok()) conditions.push_back(c);  // keep its transition time
    } else {
      conditions.push_back(c);
    }
  }
  if (!manage.ok() && std::none_of(conditions.begin(), conditions.end(),
                                   [](const json& c) { return c.value("type", "") == "ReplicaFailure"; })) {
    conditions.push_back({{"type", "ReplicaFailure"},
                          {"status", "True"},
                          {"lastTransitionTime", FormatTime(now)},
                          {"reason", "FailedCreate"},
                          {"message", std::string(manage.message())}});
  }
  if (!conditions.empty()) status["conditions"] = conditions;
  absl::Status st = UpdateStatus(rs, status);
  if (!manage.ok()) return manage;
  if (!st.ok()) return st;
  if (min_ready > 0 && ready == IntAt(rs, "/spec/replicas", 1) && available != ready) {
    worker_.queue().AddAfter(key, std::chrono::seconds(min_ready));
  }
  return absl::OkStatus();
}

}  // namespace kelpie::controllers::workloads
