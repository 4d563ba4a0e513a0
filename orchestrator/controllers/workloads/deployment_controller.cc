#include "orchestrator/controllers/workloads/deployment_controller.h"

#include <optional>

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "orchestrator/api/selector.h"
#include "orchestrator/client/api_errors.h"
#include "orchestrator/controllers/workloads/deployment_util.h"
#include "orchestrator/controllers/workloads/replica_set_controller.h"
#include "orchestrator/controllers/workloads/workload_util.h"

namespace kelpie::controllers::workloads {

using nlohmann::json;
namespace res = client::resources;

namespace {

constexpr int64_t kNoProgressDeadline = 2147483647;  // math.MaxInt32: no deadline

int64_t Replicas(const json& obj) { return IntAt(obj, "/spec/replicas", 1); }
int64_t StatusInt(const json& obj, const char* field) {
  return obj.contains("status") && obj["status"].is_object() ? obj["status"].value(field, int64_t{0}) : 0;
}
std::string ObjName(const json& obj) { return StringAt(obj, "/metadata/name"); }
std::string Namespace(const json& obj) { return StringAt(obj, "/metadata/namespace"); }

bool HasProgressDeadline(const json& d) {
  return IntAt(d, "/spec/progressDeadlineSeconds", 600) != kNoProgressDeadline;
}

const json* FindCondition(const json& status, const std::string& type) {
  if (!status.is_object() || !status.contains("conditions") || !status["conditions"].is_array()) return nullptr;
  for (const json& c : status["conditions"]) {
    if (c.value("type", "") == type) return &c;
  }
  return nullptr;
}

json NewCondition(const std::string& type, const std::string& status, const std::string& reason,
                  const std::string& message) {
  const std::string now = FormatTime(std::chrono::system_clock::now());
  return {{"type", type}, {"status", status}, {"lastUpdateTime", now}, {"lastTransitionTime", now},
          {"reason", reason}, {"message", message}};
}

void RemoveCondition(json& status, const std::string& type) {
  if (!status.contains("conditions") || !status["conditions"].is_array()) return;
  json kept = json::array();
  for (const json& c : status["conditions"]) {
    if (c.value("type", "") != type) kept.push_back(c);
  }
  status["conditions"] = kept;
}

// deploymentutil.SetDeploymentCondition: an unchanged status and reason
// keeps the existing condition; an unchanged status keeps its transition time.
void SetCondition(json& status, json cond) {
  const json* current = FindCondition(status, cond["type"]);
  if (current != nullptr && current->value("status", "") == cond["status"] &&
      current->value("reason", "") == cond["reason"]) {
    return;
  }
  if (current != nullptr && current->value("status", "") == cond["status"]) {
    cond["lastTransitionTime"] = current->value("lastTransitionTime", cond["lastTransitionTime"].get<std::string>());
  }
  RemoveCondition(status, cond["type"]);
  if (!status.contains("conditions") || !status["conditions"].is_array()) status["conditions"] = json::array();
  status["conditions"].push_back(std::move(cond));
}

std::optional<int64_t> AnnotationInt(const json& obj, const std::string& key) {
  const json annotations = obj["metadata"].value("annotations", json::object());
  if (!annotations.contains(key) || !annotations[key].is_string()) return std::nullopt;
  try {
    return std::stoll(annotations[key].get<std::string>());
  } catch (...) {
    return std::nullopt;
  }
}

bool SetReplicasAnnotations(json& rs, int64_t desired, int64_t max) {
  json& a = rs["metadata"]["annotations"];
  if (!a.is_object()) a = json::object();
  bool changed = false;
  for (auto [key, value] : {std::pair{kDesiredReplicasAnnotation, desired}, std::pair{kMaxReplicasAnnotation, max}}) {
    std::string v = std::to_string(value);
    if (!a.contains(key) || a[key] != v) {
      a[key] = v;
      changed = true;
    }
  }
  return changed;
}

// The pods a ReplicaSet may have right now: its spec, or more while its
// controller has not yet deleted the pods of a scale-down. Surge is
// counted on this, so maxSurge bounds the pods that exist, not only the
// sum of specs (Kubernetes counts specs and can briefly exceed it).
int64_t PodsUpperBound(const json& rs) { return std::max(Replicas(rs), StatusInt(rs, "replicas")); }

std::string CreationTime(const json& obj) { return StringAt(obj, "/metadata/creationTimestamp"); }

// Oldest first; name breaks ties (controller.ReplicaSetsByCreationTimestamp).
bool OlderThan(const json& a, const json& b) {
  if (CreationTime(a) != CreationTime(b)) return CreationTime(a) < CreationTime(b);
  return ObjName(a) < ObjName(b);
}

}  // namespace

std::vector<json*> DeploymentController::Rollout::All() {
  std::vector<json*> all;
  for (json& rs : old_rss) all.push_back(&rs);
  if (new_rs) all.push_back(&*new_rs);
  return all;
}

DeploymentController::DeploymentController(ControllerContext& ctx)
    : ctx_(ctx),
      deployments_(ctx.informers.For(res::kDeployments)),
      replica_sets_(ctx.informers.For(res::kReplicaSets)),
      pods_(ctx.informers.For(res::kPods)),
      replica_set_refs_(ctx.client, res::kReplicaSets, replica_sets_),
      worker_("deployment", ctx.metrics, ctx.clock, [this](const std::string& key) { return Sync(key); }) {
  deployments_.AddIndexer(kNamespaceIndexName, NamespaceIndex);
  pods_.AddIndexer(kControllerUidIndex, ControllerUidIndex);
  deployments_.AddEventHandler({
      .on_add = [this](const json& d) { worker_.queue().Add(ObjectKey(d)); },
      .on_update = [this](const json&, const json& d) { worker_.queue().Add(ObjectKey(d)); },
      .on_delete = [this](const json& d, bool) { worker_.queue().Add(ObjectKey(d)); },
  });
  replica_sets_.AddEventHandler({
      .on_add = [this](const json& rs) { OnReplicaSetAdd(rs); },
      .on_update = [this](const json& o, const json& n) { OnReplicaSetUpdate(o, n); },
      .on_delete = [this](const json& rs, bool) { OnReplicaSetDelete(rs); },
  });
  pods_.AddEventHandler({.on_delete = [this](const json& pod, bool) { OnPodDelete(pod); }});
}

std::string DeploymentController::ResolveControllerRef(const std::string& ns, const json& ref) const {
  if (!ref.is_object() || ref.value("kind", "") != "Deployment") return "";
  std::string key = ObjectKey(ns, ref.value("name", ""));
  auto d = deployments_.store().Get(key);
  if (!d || StringAt(*d, "/metadata/uid") != ref.value("uid", "")) return "";
  return key;
}

void DeploymentController::EnqueueMatchingDeployments(const json& rs) {
  const json labels = rs["metadata"].value("labels", json::object());
  for (const json& d : deployments_.store().ByIndex(kNamespaceIndexName, Namespace(rs))) {
    auto selector = api::LabelSelector::FromJson(d["spec"].value("selector", json::object()));
    if (selector.ok() && !selector->Empty() && selector->Matches(labels)) worker_.queue().Add(ObjectKey(d));
  }
}

void DeploymentController::OnReplicaSetAdd(const json& rs) {
  if (IsDeleting(rs)) return OnReplicaSetDelete(rs);
  json ref = ControllerRefOf(rs);
  if (ref.is_object()) {
    std::string key = ResolveControllerRef(Namespace(rs), ref);
    if (!key.empty()) worker_.queue().Add(key);
    return;
  }
  EnqueueMatchingDeployments(rs);
}

void DeploymentController::OnReplicaSetUpdate(const json& old_rs, const json& rs) {
  if (StringAt(old_rs, "/metadata/resourceVersion") == StringAt(rs, "/metadata/resourceVersion")) return;
  json old_ref = ControllerRefOf(old_rs);
  json ref = ControllerRefOf(rs);
  if (old_ref != ref && old_ref.is_object()) {
    std::string old_key = ResolveControllerRef(Namespace(rs), old_ref);
    if (!old_key.empty()) worker_.queue().Add(old_key);
  }
  if (ref.is_object()) {
    std::string key = ResolveControllerRef(Namespace(rs), ref);
    if (!key.empty()) worker_.queue().Add(key);
    return;
  }
  if (old_rs["metadata"].value("labels", json::object()) != rs["metadata"].value("labels", json::object()) ||
      old_ref.is_object()) {
    EnqueueMatchingDeployments(rs);
  }
}

void DeploymentController::OnReplicaSetDelete(const json& rs) {
  std::string key = ResolveControllerRef(Namespace(rs), ControllerRefOf(rs));
  if (!key.empty()) worker_.queue().Add(key);
}

void DeploymentController::OnPodDelete(const json& pod) {
  // Recreate waits for old pods to be gone.
  json ref = ControllerRefOf(pod);
  if (!ref.is_object() || ref.value("kind", "") != "ReplicaSet") return;
  auto rs = replica_sets_.store().Get(ObjectKey(Namespace(pod), ref.value("name", "")));
  if (!rs) return;
  std::string key = ResolveControllerRef(Namespace(*rs), ControllerRefOf(*rs));
  if (key.empty()) return;
  auto d = deployments_.store().Get(key);
  if (d && StringAt(*d, "/spec/strategy/type") == "Recreate") worker_.queue().Add(key);
}

absl::StatusOr<std::vector<json>> DeploymentController::ClaimReplicaSets(const json& d) {
  auto selector = api::LabelSelector::FromJson(d["spec"].value("selector", json::object()));
  if (!selector.ok()) return selector.status();
  return replica_set_refs_.Claim({d, "apps/v1", "Deployment"}, *selector);
}

absl::Status DeploymentController::WriteStatus(Rollout& r, const json& status) {
  if (r.d.value("status", json::object()) == status) return absl::OkStatus();
  json next = r.d;
  next["status"] = status;
  auto w = ctx_.client.UpdateStatus(res::kDeployments, Namespace(r.d), next);
  if (!w.ok()) return w.status();
  r.d = std::move(*w);
  return absl::OkStatus();
}

absl::Status DeploymentController::SplitAndSyncRevision(Rollout& r, std::vector<json> rss, bool create_new) {
  std::sort(rss.begin(), rss.end(), OlderThan);
  const json tmpl = r.d["spec"].value("template", json::object());
  r.new_rs.reset();
  r.old_rss.clear();
  for (json& rs : rss) {
    if (!r.new_rs && EqualIgnoreHash(rs["spec"].value("template", json::object()), tmpl)) {
      r.new_rs = std::move(rs);
    } else {
      r.old_rss.push_back(std::move(rs));
    }
  }
  int64_t max_old_revision = 0;
  for (const json& rs : r.old_rss) max_old_revision = std::max(max_old_revision, Revision(rs));
  const int64_t new_revision = max_old_revision + 1;

  if (!r.new_rs) {
    if (!create_new) return absl::OkStatus();
    return CreateNewReplicaSet(r);
  }
  // An existing ReplicaSet matches the template (a rollback or a template
  // changed back): it becomes the newest revision.
  json& rs = *r.new_rs;
  bool update = CopyDeploymentAnnotations(r.d, rs);
  if (Revision(rs) < new_revision) {
    rs["metadata"]["annotations"][kRevisionAnnotation] = std::to_string(new_revision);
    update = true;
  }
  const int64_t min_ready = IntAt(r.d, "/spec/minReadySeconds");
  if (IntAt(rs, "/spec/minReadySeconds") != min_ready) {
    rs["spec"]["minReadySeconds"] = min_ready;
    update = true;
  }
  if (update) {
    auto w = ctx_.client.Update(res::kReplicaSets, Namespace(rs), rs);
    if (!w.ok()) return w.status();
    rs = std::move(*w);
  }
  // The deployment mirrors its new ReplicaSet's revision.
  const std::string revision = std::to_string(Revision(rs));
  if (StringAt(r.d, "/metadata/annotations/deployment.kubernetes.io~1revision") != revision) {
    json patch = {{"metadata",
                   {{"annotations", {{kRevisionAnnotation, revision}}},
                    {"resourceVersion", StringAt(r.d, "/metadata/resourceVersion")}}}};
    auto w = ctx_.client.Patch(res::kDeployments, Namespace(r.d), ObjName(r.d), client::PatchType::kMerge, patch);
    if (!w.ok()) return w.status();
    r.d = std::move(*w);
  }
  if (HasProgressDeadline(r.d) && FindCondition(r.d.value("status", json::object()), "Progressing") == nullptr) {
    json status = r.d.value("status", json::object());
    SetCondition(status, NewCondition("Progressing", "True", "FoundNewReplicaSet",
                                      absl::StrCat("Found new replica set \"", ObjName(rs), "\"")));
    KELPIE_RETURN_IF_ERROR(WriteStatus(r, status));
  }
  return absl::OkStatus();
}

absl::Status DeploymentController::CreateNewReplicaSet(Rollout& r) {
  const json& d = r.d;
  std::optional<int32_t> collision_count;
  if (d.contains("status") && d["status"].contains("collisionCount")) {
    collision_count = d["status"]["collisionCount"].get<int32_t>();
  }
  json tmpl = d["spec"].value("template", json::object());
  const std::string hash = ComputeTemplateHash(tmpl, collision_count);
  tmpl["metadata"]["labels"][kPodTemplateHashLabel] = hash;
  json selector = d["spec"].value("selector", json::object());
  selector["matchLabels"][kPodTemplateHashLabel] = hash;
  int64_t max_old_revision = 0;
  for (const json& rs : r.old_rss) max_old_revision = std::max(max_old_revision, Revision(rs));

  int64_t all_replicas = 0;
  for (const json& rs : r.old_rss) all_replicas += PodsUpperBound(rs);
  const int64_t desired = Replicas(d);
  int64_t new_replicas = 0;
  if (StringAt(d, "/spec/strategy/type", "RollingUpdate") == "RollingUpdate") {
    new_replicas = NewRSNewReplicas(desired, MaxSurge(d), all_replicas, 0);
  } else if (r.old_rss.empty() ||
             std::all_of(r.old_rss.begin(), r.old_rss.end(), [](const json& rs) { return Replicas(rs) == 0; })) {
    new_replicas = 0;  // Recreate scales up after old pods are gone
  }
  json rs = {{"apiVersion", "apps/v1"},
             {"kind", "ReplicaSet"},
             {"metadata",
              {{"name", ObjName(d) + "-" + hash},
               {"namespace", Namespace(d)},
               {"labels", tmpl["metadata"]["labels"]},
               {"ownerReferences", json::array({MakeControllerRef(d, "apps/v1", "Deployment")})}}},
             {"spec",
              {{"replicas", new_replicas},
               {"minReadySeconds", IntAt(d, "/spec/minReadySeconds")},
               {"selector", selector},
               {"template", tmpl}}}};
  CopyDeploymentAnnotations(d, rs);
  rs["metadata"]["annotations"][kRevisionAnnotation] = std::to_string(max_old_revision + 1);
  SetReplicasAnnotations(rs, desired, desired + MaxSurge(d));

  auto created = ctx_.client.Create(res::kReplicaSets, Namespace(d), rs);
  if (!created.ok()) {
    if (!client::IsAlreadyExists(created.status())) {
      json status = r.d.value("status", json::object());
      if (HasProgressDeadline(r.d)) {
        SetCondition(status, NewCondition("Progressing", "False", "ReplicaSetCreateError",
                                          absl::StrCat("Failed to create new replica set \"", ObjName(rs),
                                                       "\": ", created.status().message())));
        (void)WriteStatus(r, status);
      }
      ctx_.recorder.Event(r.d, EventType::kWarning, "FailedCreate",
                          absl::StrCat("Failed to create new replica set \"", ObjName(rs), "\": ", created.status().message()));
      return created.status();
    }
    // A ReplicaSet of that name exists: ours with the same template (our
    // cache is behind) or a hash collision, which the next hash avoids.
    auto existing = ctx_.client.Get(res::kReplicaSets, Namespace(d), ObjName(rs));
    if (!existing.ok()) return existing.status();
    json ref = ControllerRefOf(*existing);
    if (ref.is_object() && ref.value("uid", "") == StringAt(d, "/metadata/uid") &&
        EqualIgnoreHash((*existing)["spec"].value("template", json::object()), d["spec"]["template"])) {
      r.new_rs = std::move(*existing);
      return absl::OkStatus();
    }
    json status = r.d.value("status", json::object());
    status["collisionCount"] = collision_count.value_or(0) + 1;
    KELPIE_RETURN_IF_ERROR(WriteStatus(r, status));
    return absl::AbortedError(absl::StrCat("hash collision for ReplicaSet ", ObjName(rs), "; retrying with a new hash"));
  }
  r.new_rs = std::move(*created);
  if (new_replicas > 0) {
    ctx_.recorder.Event(r.d, EventType::kNormal, "ScalingReplicaSet",
                        absl::StrCat("Scaled up replica set ", ObjName(*r.new_rs), " from 0 to ", new_replicas));
  }
  const std::string revision = std::to_string(Revision(*r.new_rs));
  if (StringAt(r.d, "/metadata/annotations/deployment.kubernetes.io~1revision") != revision) {
    json patch = {{"metadata", {{"annotations", {{kRevisionAnnotation, revision}}}}}};
    auto w = ctx_.client.Patch(res::kDeployments, Namespace(r.d), ObjName(r.d), client::PatchType::kMerge, patch);
    if (!w.ok()) return w.status();
    r.d = std::move(*w);
  }
  if (HasProgressDeadline(r.d)) {
    json status = r.d.value("status", json::object());
    SetCondition(status, NewCondition("Progressing", "True", "NewReplicaSetCreated",
                                      absl::StrCat("Created new replica set \"", ObjName(*r.new_rs), "\"")));
    KELPIE_RETURN_IF_ERROR(WriteStatus(r, status));
  }
  return absl::OkStatus();
}

absl::Status DeploymentController::ScaleReplicaSet(Rollout& r, json& rs, int64_t new_scale) {
  const int64_t old_scale = Replicas(rs);
  const bool size_changed = old_scale != new_scale;
  json next = rs;
  bool annotations_changed = SetReplicasAnnotations(next, Replicas(r.d), Replicas(r.d) + MaxSurge(r.d));
  if (!size_changed && !annotations_changed) return absl::OkStatus();
  next["spec"]["replicas"] = new_scale;
  auto w = ctx_.client.Update(res::kReplicaSets, Namespace(rs), next);
  if (!w.ok()) return w.status();
  rs = std::move(*w);
  if (size_changed) {
    ctx_.recorder.Event(r.d, EventType::kNormal, "ScalingReplicaSet",
                        absl::StrCat("Scaled ", new_scale > old_scale ? "up" : "down", " replica set ", ObjName(rs),
                                     " from ", old_scale, " to ", new_scale));
  }
  return absl::OkStatus();
}

bool DeploymentController::IsScalingEvent(const Rollout& r) const {
  auto check = [&](const json& rs) {
    if (Replicas(rs) == 0) return false;
    auto desired = AnnotationInt(rs, kDesiredReplicasAnnotation);
    return desired.has_value() && *desired != Replicas(r.d);
  };
  if (r.new_rs && check(*r.new_rs)) return true;
  return std::any_of(r.old_rss.begin(), r.old_rss.end(), check);
}

absl::Status DeploymentController::Scale(Rollout& r) {
  std::vector<json*> active;
  for (json* rs : r.All()) {
    if (Replicas(*rs) > 0) active.push_back(rs);
  }
  // One active ReplicaSet (or none: the newest) takes the whole size.
  json* target = nullptr;
  if (active.size() == 1) {
    target = active[0];
  } else if (active.empty()) {
    if (r.new_rs) {
      target = &*r.new_rs;
    } else if (!r.old_rss.empty()) {
      target = &*std::max_element(r.old_rss.begin(), r.old_rss.end(), OlderThan);
    }
  }
  if (target != nullptr) {
    if (Replicas(*target) == Replicas(r.d)) return absl::OkStatus();
    return ScaleReplicaSet(r, *target, Replicas(r.d));
  }
  // The new ReplicaSet is saturated: old ones go to zero.
  if (r.new_rs && Replicas(*r.new_rs) == Replicas(r.d) && StatusInt(*r.new_rs, "availableReplicas") == Replicas(r.d)) {
    for (json& rs : r.old_rss) {
      if (Replicas(rs) > 0) KELPIE_RETURN_IF_ERROR(ScaleReplicaSet(r, rs, 0));
    }
    return absl::OkStatus();
  }
  if (StringAt(r.d, "/spec/strategy/type", "RollingUpdate") != "RollingUpdate") return absl::OkStatus();
  // Proportional scaling over the active ReplicaSets.
  int64_t all_replicas = 0;
  for (json* rs : active) all_replicas += Replicas(*rs);
  const int64_t desired = Replicas(r.d);
  const int64_t allowed = desired > 0 ? desired + MaxSurge(r.d) : 0;
  const int64_t to_add = allowed - all_replicas;
  // Scaling up favours big and new ReplicaSets; scaling down big and old.
  std::sort(active.begin(), active.end(), [to_add](const json* a, const json* b) {
    if (Replicas(*a) != Replicas(*b)) return Replicas(*a) > Replicas(*b);
    return to_add > 0 ? OlderThan(*b, *a) : OlderThan(*a, *b);
  });
  std::map<const json*, int64_t> size;
  int64_t added = 0;
  for (json* rs : active) {
    int64_t proportion = 0;
    if (to_add != 0) {
      auto annotated = AnnotationInt(*rs, kMaxReplicasAnnotation);
      if (!annotated) annotated = StatusInt(r.d, "replicas");
      proportion = ReplicaSetProportion(Replicas(*rs), annotated, allowed, to_add, added);
    }
    size[rs] = Replicas(*rs) + proportion;
    added += proportion;
  }
  if (!active.empty()) size[active[0]] = std::max<int64_t>(size[active[0]] + (to_add - added), 0);
  for (json* rs : active) KELPIE_RETURN_IF_ERROR(ScaleReplicaSet(r, *rs, size[rs]));
  return absl::OkStatus();
}

absl::StatusOr<bool> DeploymentController::ReconcileNewReplicaSet(Rollout& r) {
  json& rs = *r.new_rs;
  const int64_t desired = Replicas(r.d);
  if (Replicas(rs) == desired) return false;
  if (Replicas(rs) > desired) {
    KELPIE_RETURN_IF_ERROR(ScaleReplicaSet(r, rs, desired));
    return true;
  }
  int64_t all_replicas = 0;
  for (json* x : r.All()) all_replicas += x == &rs ? Replicas(*x) : PodsUpperBound(*x);
  const int64_t next = NewRSNewReplicas(desired, MaxSurge(r.d), all_replicas, Replicas(rs));
  if (next == Replicas(rs)) return false;
  KELPIE_RETURN_IF_ERROR(ScaleReplicaSet(r, rs, next));
  return true;
}

absl::StatusOr<bool> DeploymentController::ReconcileOldReplicaSets(Rollout& r) {
  int64_t old_pods = 0;
  for (const json& rs : r.old_rss) old_pods += Replicas(rs);
  if (old_pods == 0) return false;
  int64_t all_pods = 0;
  for (json* x : r.All()) all_pods += Replicas(*x);
  const int64_t min_available = Replicas(r.d) - MaxUnavailable(r.d);
  const int64_t new_unavailable =
      r.new_rs ? Replicas(*r.new_rs) - StatusInt(*r.new_rs, "availableReplicas") : 0;
  int64_t max_scaled_down = all_pods - min_available - new_unavailable;
  if (max_scaled_down <= 0) return false;

  // First the old ReplicaSets' unhealthy pods: removing them costs no
  // availability.
  std::vector<json*> old;
  for (json& rs : r.old_rss) old.push_back(&rs);
  std::sort(old.begin(), old.end(), [](const json* a, const json* b) { return OlderThan(*a, *b); });
  int64_t cleaned = 0;
  for (json* rs : old) {
    if (cleaned >= max_scaled_down) break;
    if (Replicas(*rs) == 0) continue;
    const int64_t available = StatusInt(*rs, "availableReplicas");
    if (Replicas(*rs) == available) continue;
    const int64_t down = std::min(max_scaled_down - cleaned, Replicas(*rs) - available);
    KELPIE_RETURN_IF_ERROR(ScaleReplicaSet(r, *rs, Replicas(*rs) - down));
    cleaned += down;
  }
  // Then available old pods, as far as availability allows.
  int64_t available_pods = 0;
  for (json* x : r.All()) available_pods += StatusInt(*x, "availableReplicas");
  int64_t scaled = 0;
  if (available_pods > min_available) {
    const int64_t total = available_pods - min_available;
    for (json* rs : old) {
      if (scaled >= total) break;
      if (Replicas(*rs) == 0) continue;
      const int64_t down = std::min(Replicas(*rs), total - scaled);
      KELPIE_RETURN_IF_ERROR(ScaleReplicaSet(r, *rs, Replicas(*rs) - down));
      scaled += down;
    }
  }
  return cleaned + scaled > 0;
}

bool DeploymentController::OldPodsRunning(const Rollout& r) const {
  for (const json& rs : r.old_rss) {
    if (StatusInt(rs, "replicas") > 0) return true;
    for (const json& pod : pods_.store().ByIndex(kControllerUidIndex, StringAt(rs, "/metadata/uid"))) {
      if (!IsPodTerminal(pod)) return true;
    }
  }
  return false;
}

absl::Status DeploymentController::CleanupOldReplicaSets(Rollout& r) {
  const int64_t limit = IntAt(r.d, "/spec/revisionHistoryLimit", 10);
  std::vector<const json*> cleanable;
  for (const json& rs : r.old_rss) {
    if (!IsDeleting(rs)) cleanable.push_back(&rs);
  }
  const int64_t diff = static_cast<int64_t>(cleanable.size()) - limit;
  if (diff <= 0) return absl::OkStatus();
  std::sort(cleanable.begin(), cleanable.end(), [](const json* a, const json* b) {
    if (Revision(*a) != Revision(*b)) return Revision(*a) < Revision(*b);
    return OlderThan(*a, *b);
  });
  for (int64_t i = 0; i < diff; ++i) {
    const json& rs = *cleanable[i];
    // Only idle ReplicaSets whose status the ReplicaSet controller caught up on.
    if (StatusInt(rs, "replicas") != 0 || Replicas(rs) != 0 ||
        IntAt(rs, "/metadata/generation") > StatusInt(rs, "observedGeneration")) {
      continue;
    }
    auto del = ctx_.client.Delete(res::kReplicaSets, Namespace(rs), ObjName(rs),
                                  {.precondition_uid = StringAt(rs, "/metadata/uid")});
    if (!del.ok() && !client::IsNotFound(del.status())) return del.status();
  }
  return absl::OkStatus();
}

json DeploymentController::CalculateStatus(const Rollout& r) const {
  int64_t replicas = 0, ready = 0, available = 0, total_spec = 0;
  auto add = [&](const json& rs) {
    replicas += StatusInt(rs, "replicas");
    ready += StatusInt(rs, "readyReplicas");
    available += StatusInt(rs, "availableReplicas");
    total_spec += Replicas(rs);
  };
  for (const json& rs : r.old_rss) add(rs);
  if (r.new_rs) add(*r.new_rs);
  json status = r.d.value("status", json::object());
  status["observedGeneration"] = IntAt(r.d, "/metadata/generation");
  status["replicas"] = replicas;
  status["updatedReplicas"] = r.new_rs ? StatusInt(*r.new_rs, "replicas") : 0;
  status["readyReplicas"] = ready;
  status["availableReplicas"] = available;
  status["unavailableReplicas"] = std::max<int64_t>(total_spec - available, 0);
  if (available >= Replicas(r.d) - MaxUnavailable(r.d)) {
    SetCondition(status, NewCondition("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability."));
  } else {
    SetCondition(status, NewCondition("Available", "False", "MinimumReplicasUnavailable",
                                      "Deployment does not have minimum availability."));
  }
  return status;
}

absl::Status DeploymentController::SyncRolloutStatus(Rollout& r) {
  json status = CalculateStatus(r);
  const json old_status = r.d.value("status", json::object());
  if (!HasProgressDeadline(r.d)) RemoveCondition(status, "Progressing");
  const json* current = FindCondition(status, "Progressing");
  const bool complete_already = status.value("replicas", int64_t{0}) == status.value("updatedReplicas", int64_t{0}) &&
                                current != nullptr && current->value("reason", "") == "NewReplicaSetAvailable";
  const std::string rs_name = r.new_rs ? ObjName(*r.new_rs) : "";
  const int64_t desired = Replicas(r.d);
  auto st = [&](const char* f) { return status.value(f, int64_t{0}); };
  auto old_st = [&](const char* f) { return old_status.value(f, int64_t{0}); };
  const bool complete = st("updatedReplicas") == desired && st("replicas") == desired &&
                        st("availableReplicas") == desired &&
                        st("observedGeneration") >= IntAt(r.d, "/metadata/generation");
  const bool progressing = st("updatedReplicas") > old_st("updatedReplicas") ||
                           st("readyReplicas") > old_st("readyReplicas") ||
                           (st("replicas") - st("updatedReplicas")) < (old_st("replicas") - old_st("updatedReplicas")) ||
                           st("availableReplicas") > old_st("availableReplicas");
  const auto now = std::chrono::system_clock::now();
  const int64_t deadline = IntAt(r.d, "/spec/progressDeadlineSeconds", 600);
  auto timed_out = [&]() {
    if (current == nullptr) return false;
    const std::string reason = current->value("reason", "");
    if (reason == "NewReplicaSetAvailable") return false;
    if (reason == "ProgressDeadlineExceeded") return true;
    auto from = ParseTime(current->value("lastUpdateTime", ""));
    return from && *from + std::chrono::seconds(deadline) < now;
  };
  if (HasProgressDeadline(r.d) && !complete_already) {
    if (complete) {
      SetCondition(status, NewCondition("Progressing", "True", "NewReplicaSetAvailable",
                                        absl::StrCat("ReplicaSet \"", rs_name, "\" has successfully progressed.")));
    } else if (progressing) {
      json cond = NewCondition("Progressing", "True", "ReplicaSetUpdated",
                               absl::StrCat("ReplicaSet \"", rs_name, "\" is progressing."));
      // Progress refreshes lastUpdateTime; the transition time stays.
      if (current != nullptr && current->value("status", "") == "True") {
        cond["lastTransitionTime"] = current->value("lastTransitionTime", cond["lastTransitionTime"].get<std::string>());
      }
      RemoveCondition(status, "Progressing");
      status["conditions"].push_back(cond);
    } else if (timed_out()) {
      SetCondition(status, NewCondition("Progressing", "False", "ProgressDeadlineExceeded",
                                        absl::StrCat("ReplicaSet \"", rs_name, "\" has timed out progressing.")));
    }
  }
  // A ReplicaSet that cannot create pods makes the deployment report it.
  // value() returns a temporary that dies at the end of the if's init
  // statement: keep the status in a named copy and copy the condition out.
  std::optional<json> failure;
  for (json* rs : r.All()) {
    const json rs_status = rs->value("status", json::object());
    if (const json* c = FindCondition(rs_status, "ReplicaFailure"); c != nullptr) failure = *c;
  }
  if (failure.has_value()) {
    SetCondition(status, NewCondition("ReplicaFailure", failure->value("status", "True"), failure->value("reason", ""),
                                      failure->value("message", "")));
  } else {
    RemoveCondition(status, "ReplicaFailure");
  }
  if (status.contains("conditions") && status["conditions"].empty()) status.erase("conditions");
  KELPIE_RETURN_IF_ERROR(WriteStatus(r, status));
  // Come back when the deadline passes if nothing else happens by then.
  const json* cond = FindCondition(status, "Progressing");
  if (HasProgressDeadline(r.d) && !complete && cond != nullptr && cond->value("status", "") == "True") {
    if (auto from = ParseTime(cond->value("lastUpdateTime", ""))) {
      auto after = *from + std::chrono::seconds(deadline) - now;
      worker_.queue().AddAfter(ObjectKey(r.d), std::max<Duration>(std::chrono::duration_cast<Duration>(after) +
                                                                      std::chrono::seconds(1),
                                                                  Duration(0)));
    }
  }
  return absl::OkStatus();
}

absl::Status DeploymentController::CheckPausedConditions(Rollout& r) {
  if (!HasProgressDeadline(r.d)) return absl::OkStatus();
  json status = r.d.value("status", json::object());
  const json* cond = FindCondition(status, "Progressing");
  if (cond != nullptr && cond->value("reason", "") == "ProgressDeadlineExceeded") return absl::OkStatus();
  const bool paused = r.d["spec"].value("paused", false);
  const bool paused_cond = cond != nullptr && cond->value("reason", "") == "DeploymentPaused";
  if (paused && !paused_cond) {
    SetCondition(status, NewCondition("Progressing", "Unknown", "DeploymentPaused", "Deployment is paused"));
  } else if (!paused && paused_cond) {
    SetCondition(status, NewCondition("Progressing", "Unknown", "DeploymentResumed", "Deployment is resumed"));
  } else {
    return absl::OkStatus();
  }
  return WriteStatus(r, status);
}

absl::Status DeploymentController::ScaleOnly(Rollout& r) {
  KELPIE_RETURN_IF_ERROR(Scale(r));
  if (r.d["spec"].value("paused", false)) KELPIE_RETURN_IF_ERROR(CleanupOldReplicaSets(r));
  json status = CalculateStatus(r);
  return WriteStatus(r, status);
}

absl::Status DeploymentController::RolloutRolling(Rollout& r) {
  KELPIE_ASSIGN_OR_RETURN(bool scaled_up, ReconcileNewReplicaSet(r));
  if (scaled_up) return SyncRolloutStatus(r);
  KELPIE_ASSIGN_OR_RETURN(bool scaled_down, ReconcileOldReplicaSets(r));
  if (scaled_down) return SyncRolloutStatus(r);
  KELPIE_RETURN_IF_ERROR(SyncRolloutStatus(r));
  const json& s = r.d["status"];
  const int64_t desired = Replicas(r.d);
  if (s.value("updatedReplicas", int64_t{0}) == desired && s.value("replicas", int64_t{0}) == desired &&
      s.value("availableReplicas", int64_t{0}) == desired) {
    KELPIE_RETURN_IF_ERROR(CleanupOldReplicaSets(r));
  }
  return absl::OkStatus();
}

absl::Status DeploymentController::RolloutRecreate(Rollout& r) {
  bool scaled_down = false;
  for (json& rs : r.old_rss) {
    if (Replicas(rs) == 0) continue;
    KELPIE_RETURN_IF_ERROR(ScaleReplicaSet(r, rs, 0));
    scaled_down = true;
  }
  if (scaled_down || OldPodsRunning(r)) return SyncRolloutStatus(r);
  if (!r.new_rs) KELPIE_RETURN_IF_ERROR(CreateNewReplicaSet(r));
  if (r.new_rs && Replicas(*r.new_rs) != Replicas(r.d)) KELPIE_RETURN_IF_ERROR(ScaleReplicaSet(r, *r.new_rs, Replicas(r.d)));
  KELPIE_RETURN_IF_ERROR(SyncRolloutStatus(r));
  const json& s = r.d["status"];
  const int64_t desired = Replicas(r.d);
  if (s.value("updatedReplicas", int64_t{0}) == desired && s.value("availableReplicas", int64_t{0}) == desired) {
    KELPIE_RETURN_IF_ERROR(CleanupOldReplicaSets(r));
  }
  return absl::OkStatus();
}

absl::Status DeploymentController::Sync(const std::string& key) {
  auto cached = deployments_.store().Get(key);
  if (!cached) return absl::OkStatus();
  Rollout r{*cached, std::nullopt, {}};
  auto selector = api::LabelSelector::FromJson(r.d["spec"].value("selector", json::object()));
  if (!selector.ok() || selector->Empty()) {
    ctx_.recorder.Event(r.d, EventType::kWarning, "SelectingAll",
                        "This deployment is selecting all pods. A non-empty selector is required.");
    if (StatusInt(r.d, "observedGeneration") < IntAt(r.d, "/metadata/generation")) {
      json status = r.d.value("status", json::object());
      status["observedGeneration"] = IntAt(r.d, "/metadata/generation");
      return WriteStatus(r, status);
    }
    return absl::OkStatus();
  }
  KELPIE_ASSIGN_OR_RETURN(std::vector<json> rss, ClaimReplicaSets(r.d));
  if (IsDeleting(r.d)) {
    KELPIE_RETURN_IF_ERROR(SplitAndSyncRevision(r, std::move(rss), false));
    return WriteStatus(r, CalculateStatus(r));
  }
  KELPIE_RETURN_IF_ERROR(CheckPausedConditions(r));
  const bool paused = r.d["spec"].value("paused", false);
  if (paused) {
    KELPIE_RETURN_IF_ERROR(SplitAndSyncRevision(r, std::move(rss), false));
    return ScaleOnly(r);
  }
  const bool recreate = StringAt(r.d, "/spec/strategy/type", "RollingUpdate") == "Recreate";
  KELPIE_RETURN_IF_ERROR(SplitAndSyncRevision(r, std::move(rss), false));
  if (IsScalingEvent(r)) return ScaleOnly(r);
  if (recreate) return RolloutRecreate(r);
  if (!r.new_rs) KELPIE_RETURN_IF_ERROR(CreateNewReplicaSet(r));
  return RolloutRolling(r);
}

}  // namespace kelpie::controllers::workloads
