#include "orchestrator/controllers/workloads/stateful_set_controller.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "orchestrator/api/selector.h"
#include "orchestrator/client/api_errors.h"
#include "orchestrator/controllers/workloads/workload_util.h"

namespace kelpie::controllers::workloads {

using nlohmann::json;
namespace res = client::resources;

namespace {

std::string ObjName(const json& obj) { return StringAt(obj, "/metadata/name"); }
std::string Namespace(const json& obj) { return StringAt(obj, "/metadata/namespace"); }
json Labels(const json& obj) {
  return obj.contains("metadata") ? obj["metadata"].value("labels", json::object()) : json::object();
}

// Kubernetes' StatefulPodControl event texts: "create Pod web-0 in
// StatefulSet web successful", "... failed error: <why>".
void RecordPodEvent(EventRecorder& recorder, const json& set, const std::string& verb, const std::string& pod,
                    const absl::Status& result) {
  std::string title = verb;
  title[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(title[0])));
  if (result.ok()) {
    recorder.Event(set, EventType::kNormal, "Successful" + title,
                   absl::StrCat(verb, " Pod ", pod, " in StatefulSet ", ObjName(set), " successful"));
  } else {
    recorder.Event(set, EventType::kWarning, "Failed" + title,
                   absl::StrCat(verb, " Pod ", pod, " in StatefulSet ", ObjName(set), " failed error: ", result.message()));
  }
}

}  // namespace

StatefulSetController::StatefulSetController(ControllerContext& ctx)
    : ctx_(ctx),
      sets_(ctx.informers.For(res::kStatefulSets)),
      pods_(ctx.informers.For(res::kPods)),
      revisions_(ctx.informers.For(res::kControllerRevisions)),
      pod_refs_(ctx.client, res::kPods, pods_),
      revision_refs_(ctx.client, res::kControllerRevisions, revisions_),
      worker_("statefulset", ctx.metrics, ctx.clock, [this](const std::string& key) { return Sync(key); }) {
  sets_.AddIndexer(kNamespaceIndexName, NamespaceIndex);
  sets_.AddEventHandler({
      .on_add = [this](const json& set) { worker_.queue().Add(ObjectKey(set)); },
      .on_update = [this](const json&, const json& set) { worker_.queue().Add(ObjectKey(set)); },
      .on_delete = [this](const json& set, bool) { worker_.queue().Add(ObjectKey(set)); },
  });
  pods_.AddEventHandler({
      .on_add = [this](const json& pod) { OnPodAdd(pod); },
      .on_update = [this](const json& old_pod, const json& pod) { OnPodUpdate(old_pod, pod); },
      .on_delete = [this](const json& pod, bool) { OnPodDelete(pod); },
  });
}

std::string StatefulSetController::ResolveControllerRef(const std::string& ns, const json& ref) const {
  if (!ref.is_object() || ref.value("kind", "") != "StatefulSet") return "";
  std::string key = ObjectKey(ns, ref.value("name", ""));
  auto set = sets_.store().Get(key);
  if (!set || StringAt(*set, "/metadata/uid") != ref.value("uid", "")) return "";
  return key;
}

void StatefulSetController::EnqueueSelectingSets(const json& pod) {
  const json labels = Labels(pod);
  for (const json& set : sets_.store().ByIndex(kNamespaceIndexName, Namespace(pod))) {
    auto selector = api::LabelSelector::FromJson(set["spec"].value("selector", json::object()));
    if (selector.ok() && !selector->Empty() && selector->Matches(labels)) worker_.queue().Add(ObjectKey(set));
  }
}

void StatefulSetController::OnPodAdd(const json& pod) {
  if (IsPodDeleting(pod)) return OnPodDelete(pod);
  json ref = ControllerRefOf(pod);
  if (ref.is_object()) {
    std::string key = ResolveControllerRef(Namespace(pod), ref);
    if (!key.empty()) worker_.queue().Add(key);
    return;
  }
  EnqueueSelectingSets(pod);  // an orphan: sets that may adopt it
}

void StatefulSetController::OnPodUpdate(const json& old_pod, const json& pod) {
  if (StringAt(old_pod, "/metadata/resourceVersion") == StringAt(pod, "/metadata/resourceVersion")) return;
  const std::string ns = Namespace(pod);
  const bool labels_changed = Labels(old_pod) != Labels(pod);
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
      auto set = sets_.store().Get(key);
      int64_t min_ready = set ? IntAt(*set, "/spec/minReadySeconds") : 0;
      if (min_ready > 0) worker_.queue().AddAfter(key, std::chrono::seconds(min_ready) + std::chrono::seconds(1));
    }
    return;
  }
  if (labels_changed || old_ref.is_object()) EnqueueSelectingSets(pod);
}

void StatefulSetController::OnPodDelete(const json& pod) {
  std::string key = ResolveControllerRef(Namespace(pod), ControllerRefOf(pod));
  if (!key.empty()) worker_.queue().Add(key);
}

absl::StatusOr<StatefulSetRevisions> StatefulSetController::Revisions(const json& set, std::vector<json>& revisions,
                                                                      int32_t& collision_count) {
  SortRevisions(revisions);
  const std::string ns = Namespace(set);
  const int64_t next_number = NextRevisionNumber(revisions);
  json candidate = NewControllerRevision(set, next_number, collision_count);
  std::vector<size_t> equal;
  for (size_t i = 0; i < revisions.size(); ++i) {
    if (EqualRevision(revisions[i], candidate)) equal.push_back(i);
  }
  json update;
  if (!equal.empty() && equal.back() == revisions.size() - 1) {
    update = revisions.back();  // the newest revision is the template: nothing changed
  } else if (!equal.empty()) {
    // A return to an older template (a rollback): that revision becomes
    // the newest rather than a copy being made.
    json& old = revisions[equal.back()];
    json patch = {{"revision", next_number}, {"metadata", {{"resourceVersion", StringAt(old, "/metadata/resourceVersion")}}}};
    auto patched = ctx_.client.Patch(res::kControllerRevisions, ns, ObjName(old), client::PatchType::kMerge, patch);
    if (!patched.ok()) return patched.status();
    old = *patched;
    update = old;
  } else {
    // A new revision. A name taken by a different template is a hash
    // collision: collisionCount goes up and the name changes.
    for (int attempt = 0;; ++attempt) {
      auto created = ctx_.client.Create(res::kControllerRevisions, ns, candidate);
      if (created.ok()) {
        update = *created;
        revisions.push_back(update);
        break;
      }
      if (!client::IsAlreadyExists(created.status())) return created.status();
      auto existing = ctx_.client.Get(res::kControllerRevisions, ns, ObjName(candidate));
      if (!existing.ok()) return existing.status();
      if (EqualRevision(*existing, candidate)) {
        update = *existing;  // made by an earlier sync the cache has not shown yet
        if (std::none_of(revisions.begin(), revisions.end(),
                         [&](const json& r) { return ObjName(r) == ObjName(update); })) {
          revisions.push_back(update);
        }
        break;
      }
      if (attempt >= 10) return absl::AbortedError("too many ControllerRevision hash collisions");
      ++collision_count;
      candidate = NewControllerRevision(set, next_number, collision_count);
    }
  }
  const std::string current_name = StringAt(set, "/status/currentRevision");
  json current = update;
  for (const json& r : revisions) {
    if (!current_name.empty() && ObjName(r) == current_name) current = r;
  }
  return StatefulSetRevisions{ObjName(current), RevisionTemplate(current), ObjName(update), RevisionTemplate(update)};
}

absl::Status StatefulSetController::ExecuteOne(const json& set, const StatefulSetAction& action) {
  const std::string ns = Namespace(set);
  const std::string pod_name = ObjName(action.pod);
  switch (action.kind) {
    case StatefulSetAction::Kind::kCreate: {
      auto created = ctx_.client.Create(res::kPods, ns, action.pod);
      if (!created.ok() && client::IsAlreadyExists(created.status())) {
        // Our own pod that the cache does not show yet (a Parallel set
        // synced again before the informer caught up): nothing to do.
        auto existing = ctx_.client.Get(res::kPods, ns, pod_name);
        if (existing.ok() && ControllerRefOf(*existing).value("uid", "") == StringAt(set, "/metadata/uid")) {
          return absl::OkStatus();
        }
      }
      RecordPodEvent(ctx_.recorder, set, "create", pod_name, created.status());
      return created.status();
    }
    case StatefulSetAction::Kind::kDelete: {
      if (!action.recreate_reason.empty()) {
        const bool failed = action.recreate_reason == "RecreatingFailedPod";
        ctx_.recorder.Event(set, failed ? EventType::kWarning : EventType::kNormal, action.recreate_reason,
                            absl::StrCat("StatefulSet ", ns, "/", ObjName(set), " is recreating ",
                                         failed ? "failed" : "terminated", " Pod ", pod_name));
      }
      auto deleted = ctx_.client.Delete(res::kPods, ns, pod_name,
                                        {.precondition_uid = StringAt(action.pod, "/metadata/uid")});
      if (!deleted.ok() && client::IsNotFound(deleted.status())) return absl::OkStatus();
      RecordPodEvent(ctx_.recorder, set, "delete", pod_name, deleted.status());
      return deleted.status();
    }
    case StatefulSetAction::Kind::kUpdateIdentity: {
      const StatefulPodIdentity id = ParseStatefulPodName(pod_name);
      json patch = {{"metadata",
                     {{"labels", {{kStatefulSetPodNameLabel, pod_name}, {kPodIndexLabel, std::to_string(id.ordinal)}}},
                      {"resourceVersion", StringAt(action.pod, "/metadata/resourceVersion")}}}};
      auto updated = ctx_.client.Patch(res::kPods, ns, pod_name, client::PatchType::kMerge, patch);
      if (!updated.ok() && client::IsNotFound(updated.status())) return absl::OkStatus();
      RecordPodEvent(ctx_.recorder, set, "update", pod_name, updated.status());
      return updated.status();
    }
  }
  return absl::OkStatus();
}

absl::Status StatefulSetController::Execute(const json& set, const std::vector<StatefulSetAction>& actions,
                                            StatefulSetCounts& counts) {
  auto apply = [&counts](const StatefulSetAction& a) {
    counts.replicas += a.d_replicas;
    counts.current += a.d_current;
    counts.updated += a.d_updated;
  };
  size_t i = 0;
  while (i < actions.size()) {
    size_t end = i;
    while (end < actions.size() && actions[end].kind == StatefulSetAction::Kind::kCreate) ++end;
    if (end - i > 1) {
      // Several creates in a row (Parallel): slow-start batches, as
      // Kubernetes' runForAll does for sets that allow bursts.
      std::mutex mu;
      std::atomic<size_t> next{i};
      BatchResult r = SlowStartBatch(static_cast<int>(end - i), 1, 16, [&]() -> absl::Status {
        const StatefulSetAction& a = actions[next.fetch_add(1)];
        absl::Status s = ExecuteOne(set, a);
        if (s.ok()) {
          std::lock_guard<std::mutex> lock(mu);
          apply(a);
        }
        return s;
      });
      if (!r.first_error.ok()) return r.first_error;
      i = end;
      continue;
    }
    absl::Status s = ExecuteOne(set, actions[i]);
    if (!s.ok()) return s;
    apply(actions[i]);
    ++i;
  }
  return absl::OkStatus();
}

absl::Status StatefulSetController::TruncateHistory(const json& set, const std::vector<json>& pods,
                                                    const std::vector<json>& revisions,
                                                    const StatefulSetRevisions& live_revisions) {
  std::set<std::string> live = {live_revisions.current_name, live_revisions.update_name};
  for (const json& pod : pods) live.insert(PodRevision(pod));
  std::vector<json> sorted = revisions;
  SortRevisions(sorted);
  for (const json& r : RevisionsToTruncate(sorted, live, ReadStatefulSetSpec(set).revision_history_limit)) {
    auto d = ctx_.client.Delete(res::kControllerRevisions, Namespace(set), ObjName(r),
                                {.precondition_uid = StringAt(r, "/metadata/uid")});
    if (!d.ok() && !client::IsNotFound(d.status())) return d.status();
  }
  return absl::OkStatus();
}

absl::Status StatefulSetController::Sync(const std::string& key) {
  auto cached = sets_.store().Get(key);
  if (!cached) return absl::OkStatus();
  const json& set = *cached;
  auto selector = api::LabelSelector::FromJson(set["spec"].value("selector", json::object()));
  if (!selector.ok()) {
    ctx_.recorder.Event(set, EventType::kWarning, "InvalidSelector", std::string(selector.status().message()));
    return absl::OkStatus();  // retrying will not fix the object
  }
  const std::string set_name = ObjName(set);
  const ControllerRefManager::Owner owner{set, "apps/v1", "StatefulSet"};
  // Only pods named after the set are its members (isMemberOf).
  auto pods = pod_refs_.Claim(owner, *selector, [&set_name](const json& pod) {
    return ParseStatefulPodName(ObjName(pod)).parent == set_name;
  });
  if (!pods.ok()) return pods.status();
  auto revisions = revision_refs_.Claim(owner, *selector);
  if (!revisions.ok()) return revisions.status();

  int32_t collision_count = static_cast<int32_t>(IntAt(set, "/status/collisionCount"));
  auto revs = Revisions(set, *revisions, collision_count);
  if (!revs.ok()) return revs.status();

  const auto now = std::chrono::system_clock::now();
  const StatefulSetSpec spec = ReadStatefulSetSpec(set);
  StatefulSetCounts counts = CountStatefulPods(*pods, *revs, spec.min_ready_seconds, now);
  const absl::Status executed = Execute(set, PlanStatefulSetSync(set, *revs, *pods, now), counts);

  // The status is written also after a failed action, with what happened.
  json status = set.value("status", json::object());
  if (!status.is_object()) status = json::object();
  const json computed = StatefulSetStatus(set, *revs, counts, collision_count);
  for (auto it = computed.begin(); it != computed.end(); ++it) status[it.key()] = it.value();
  if (status != set.value("status", json::object())) {
    json next = set;
    next["status"] = status;
    auto w = ctx_.client.UpdateStatus(res::kStatefulSets, Namespace(set), next);
    if (!w.ok() && !client::IsNotFound(w.status()) && executed.ok()) return w.status();
  }
  if (!executed.ok()) return executed;
  absl::Status truncated = TruncateHistory(set, *pods, *revisions, *revs);
  if (!truncated.ok()) return truncated;
  if (spec.min_ready_seconds > 0 && counts.available != spec.replicas) {
    worker_.queue().AddAfter(key, std::chrono::seconds(spec.min_ready_seconds));
  }
  return absl::OkStatus();
}

}  // namespace kelpie::controllers::workloads
