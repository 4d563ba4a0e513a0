#include "orchestrator/controllers/workloads/stateful_set_util.h"

#include <algorithm>
#include <optional>

#include "absl/strings/numbers.h"
#include "orchestrator/controllers/workloads/deployment_util.h"

namespace kelpie::controllers::workloads {

using nlohmann::json;

StatefulPodIdentity ParseStatefulPodName(const std::string& name) {
  const size_t dash = name.rfind('-');
  if (dash == std::string::npos || dash + 1 >= name.size()) return {};
  const std::string digits = name.substr(dash + 1);
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) return {};
  int32_t ordinal = 0;  // Kubernetes parses the ordinal as a 32-bit integer
  if (!absl::SimpleAtoi(digits, &ordinal) || ordinal < 0) return {};
  return {name.substr(0, dash), ordinal};
}

std::string StatefulPodName(const std::string& set_name, int64_t ordinal) {
  return set_name + "-" + std::to_string(ordinal);
}

StatefulSetSpec ReadStatefulSetSpec(const json& set) {
  StatefulSetSpec s;
  s.name = StringAt(set, "/metadata/name");
  s.ns = StringAt(set, "/metadata/namespace");
  s.replicas = std::max<int64_t>(0, IntAt(set, "/spec/replicas", 1));
  s.start_ordinal = std::max<int64_t>(0, IntAt(set, "/spec/ordinals/start", 0));
  s.parallel = StringAt(set, "/spec/podManagementPolicy") == "Parallel";
  s.on_delete = StringAt(set, "/spec/updateStrategy/type") == "OnDelete";
  s.partition = std::max<int64_t>(0, IntAt(set, "/spec/updateStrategy/rollingUpdate/partition", 0));
  const json::json_pointer mu("/spec/updateStrategy/rollingUpdate/maxUnavailable");
  if (set.contains(mu) && !set.at(mu).is_null()) {
    // Rounded down; never below 1 (getStatefulSetMaxUnavailable).
    s.max_unavailable = std::max<int64_t>(1, ScaledValueFromIntOrPercent(set.at(mu), s.replicas, false).value_or(1));
  }
  s.min_ready_seconds = std::max<int64_t>(0, IntAt(set, "/spec/minReadySeconds"));
  s.service_name = StringAt(set, "/spec/serviceName");
  s.revision_history_limit = std::max<int64_t>(0, IntAt(set, "/spec/revisionHistoryLimit", 10));
  return s;
}

bool IsRunningAndReady(const json& pod) { return StringAt(pod, "/status/phase") == "Running" && IsPodReady(pod); }

bool IsRunningAndAvailable(const json& pod, int64_t min_ready_seconds, WallTime now) {
  return StringAt(pod, "/status/phase") == "Running" && IsPodAvailable(pod, min_ready_seconds, now);
}

bool IsStatefulPodHealthy(const json& pod) { return IsRunningAndReady(pod) && !IsDeleting(pod); }

std::string PodRevision(const json& pod) {
  return StringAt(pod, "/metadata/labels/controller-revision-hash");
}

json NewStatefulSetPod(const json& set, const json& pod_template, const std::string& revision, int64_t ordinal) {
  const std::string name = StatefulPodName(StringAt(set, "/metadata/name"), ordinal);
  const json tmeta = pod_template.is_object() ? pod_template.value("metadata", json::object()) : json::object();
  json labels = tmeta.value("labels", json::object());
  if (!labels.is_object()) labels = json::object();
  labels[kStatefulSetPodNameLabel] = name;
  labels[kPodIndexLabel] = std::to_string(ordinal);
  labels[kControllerRevisionHashLabel] = revision;
  json meta = {{"name", name},
               {"namespace", StringAt(set, "/metadata/namespace")},
               {"labels", labels},
               {"ownerReferences", json::array({MakeControllerRef(set, "apps/v1", "StatefulSet")})}};
  for (const char* field : {"annotations", "finalizers"}) {
    if (tmeta.contains(field) && !tmeta[field].is_null()) meta[field] = tmeta[field];
  }
  json spec = pod_template.is_object() ? pod_template.value("spec", json::object()) : json::object();
  // Set on creation only: both are immutable in a pod.
  spec["hostname"] = name;
  const std::string service = StringAt(set, "/spec/serviceName");
  if (!service.empty()) spec["subdomain"] = service;
  return {{"apiVersion", "v1"}, {"kind", "Pod"}, {"metadata", meta}, {"spec", spec}};
}

bool IdentityMatches(const json& set, const json& pod) {
  const std::string name = StringAt(pod, "/metadata/name");
  const StatefulPodIdentity id = ParseStatefulPodName(name);
  const json labels = pod.contains("metadata") ? pod["metadata"].value("labels", json::object()) : json::object();
  auto label = [&labels](const char* key) {
    return labels.is_object() && labels.contains(key) && labels[key].is_string() ? labels[key].get<std::string>()
                                                                                 : std::string();
  };
  return id.ordinal >= 0 && id.parent == StringAt(set, "/metadata/name") &&
         StringAt(pod, "/metadata/namespace") == StringAt(set, "/metadata/namespace") &&
         label(kStatefulSetPodNameLabel) == name && label(kPodIndexLabel) == std::to_string(id.ordinal);
}

// --- revisions ---

json RevisionTemplate(const json& revision) {
  const json::json_pointer p("/data/spec/template");
  if (!revision.contains(p) || !revision.at(p).is_object()) return json::object();
  json t = revision.at(p);
  t.erase("$patch");
  return t;
}

std::string ControllerRevisionName(const std::string& set_name, const json& pod_template, int32_t collision_count) {
  std::string prefix = set_name;
  if (prefix.size() > 223) prefix.resize(223);  // the name stays a valid object name
  return prefix + "-" + ComputeTemplateHash(pod_template, collision_count);
}

json NewControllerRevision(const json& set, int64_t number, int32_t collision_count) {
  const json tmpl = set.contains("spec") ? set["spec"].value("template", json::object()) : json::object();
  const std::string name = ControllerRevisionName(StringAt(set, "/metadata/name"), tmpl, collision_count);
  json labels = tmpl.is_object() ? json(tmpl.value("metadata", json::object())).value("labels", json::object())
                                 : json::object();
  if (!labels.is_object()) labels = json::object();
  labels[kControllerRevisionHashKey] = name.substr(name.rfind('-') + 1);
  json data_template = tmpl;
  data_template["$patch"] = "replace";
  return {{"apiVersion", "apps/v1"},
          {"kind", "ControllerRevision"},
          {"metadata",
           {{"name", name},
            {"namespace", StringAt(set, "/metadata/namespace")},
            {"labels", labels},
            {"ownerReferences", json::array({MakeControllerRef(set, "apps/v1", "StatefulSet")})}}},
          {"data", {{"spec", {{"template", data_template}}}}},
          {"revision", number}};
}

bool EqualRevision(const json& a, const json& b) { return EqualIgnoreHash(RevisionTemplate(a), RevisionTemplate(b)); }

void SortRevisions(std::vector<json>& revisions) {
  std::stable_sort(revisions.begin(), revisions.end(), [](const json& a, const json& b) {
    const int64_t ra = IntAt(a, "/revision"), rb = IntAt(b, "/revision");
    if (ra != rb) return ra < rb;
    const std::string ca = StringAt(a, "/metadata/creationTimestamp"), cb = StringAt(b, "/metadata/creationTimestamp");
    if (ca != cb) return ca < cb;
    return StringAt(a, "/metadata/name") < StringAt(b, "/metadata/name");
  });
}

int64_t NextRevisionNumber(const std::vector<json>& revisions) {
  int64_t max = 0;
  for (const json& r : revisions) max = std::max(max, IntAt(r, "/revision"));
  return max + 1;
}

std::vector<json> RevisionsToTruncate(const std::vector<json>& sorted_revisions, const std::set<std::string>& live,
                                      int64_t limit) {
  std::vector<json> history;
  for (const json& r : sorted_revisions) {
    if (!live.count(StringAt(r, "/metadata/name"))) history.push_back(r);
  }
  if (static_cast<int64_t>(history.size()) <= limit) return {};
  history.resize(history.size() - static_cast<size_t>(limit));
  return history;
}

// --- one sync ---

StatefulSetCounts CountStatefulPods(const std::vector<json>& pods, const StatefulSetRevisions& revisions,
                                    int64_t min_ready_seconds, WallTime now) {
  StatefulSetCounts c;
  for (const json& pod : pods) {
    ++c.replicas;
    if (IsRunningAndReady(pod)) {
      ++c.ready;
      if (IsRunningAndAvailable(pod, min_ready_seconds, now)) ++c.available;
    }
    if (IsDeleting(pod)) continue;
    const std::string rev = PodRevision(pod);
    if (rev == revisions.current_name) ++c.current;
    if (rev == revisions.update_name) ++c.updated;
  }
  return c;
}

namespace {

// A replica slot: the existing pod, or the one that would be created.
struct Slot {
  json pod;
  bool exists = false;
};

int64_t OrdinalOf(const json& pod) { return ParseStatefulPodName(StringAt(pod, "/metadata/name")).ordinal; }

}  // namespace

std::vector<StatefulSetAction> PlanStatefulSetSync(const json& set, const StatefulSetRevisions& revisions,
                                                   const std::vector<json>& pods, WallTime now) {
  std::vector<StatefulSetAction> actions;
  if (IsDeleting(set)) return actions;
  const StatefulSetSpec spec = ReadStatefulSetSpec(set);
  const bool monotonic = !spec.parallel;
  const int64_t end_ordinal = spec.start_ordinal + spec.replicas;  // exclusive

  auto new_pod = [&](int64_t ordinal) {
    // newVersionedStatefulSetPod: below the partition a RollingUpdate keeps
    // creating pods of the current revision.
    if (!spec.on_delete && ordinal < spec.partition) {
      return NewStatefulSetPod(set, revisions.current_template, revisions.current_name, ordinal);
    }
    return NewStatefulSetPod(set, revisions.update_template, revisions.update_name, ordinal);
  };
  auto revision_deltas = [&](StatefulSetAction& a, int64_t sign) {
    const std::string rev = PodRevision(a.pod);
    if (rev == revisions.current_name) a.d_current += sign;
    if (rev == revisions.update_name) a.d_updated += sign;
  };

  std::vector<Slot> replicas(static_cast<size_t>(spec.replicas));
  std::vector<json> condemned;
  for (const json& pod : pods) {
    const int64_t ord = OrdinalOf(pod);
    if (ord >= spec.start_ordinal && ord < end_ordinal) {
      replicas[static_cast<size_t>(ord - spec.start_ordinal)] = {pod, true};
    } else if (ord >= 0) {
      condemned.push_back(pod);
    }
  }
  for (size_t i = 0; i < replicas.size(); ++i) {
    if (!replicas[i].exists) replicas[i].pod = new_pod(spec.start_ordinal + static_cast<int64_t>(i));
  }
  // Highest ordinal first: the order of deletion.
  std::sort(condemned.begin(), condemned.end(), [](const json& a, const json& b) { return OrdinalOf(a) > OrdinalOf(b); });

  // The first unhealthy pod: replicas by ordinal, then condemned by ordinal.
  std::string first_unhealthy;
  for (const Slot& s : replicas) {
    if (!s.exists || !IsStatefulPodHealthy(s.pod)) {
      first_unhealthy = StringAt(s.pod, "/metadata/name");
      break;
    }
  }
  if (first_unhealthy.empty()) {
    for (auto it = condemned.rbegin(); it != condemned.rend(); ++it) {
      if (!IsStatefulPodHealthy(*it)) {
        first_unhealthy = StringAt(*it, "/metadata/name");
        break;
      }
    }
  }

  // 1. Replicas in ascending ordinal order.
  for (Slot& slot : replicas) {
    const std::string phase = StringAt(slot.pod, "/status/phase");
    if (slot.exists && (phase == "Failed" || phase == "Succeeded") && !IsDeleting(slot.pod)) {
      // Deleted now, created anew once the deletion is seen (the name is
      // taken until then).
      StatefulSetAction a{StatefulSetAction::Kind::kDelete, slot.pod,
                          phase == "Failed" ? "RecreatingFailedPod" : "RecreatingTerminatedPod"};
      a.d_replicas = -1;
      revision_deltas(a, -1);
      actions.push_back(std::move(a));
      if (monotonic) return actions;
      continue;
    }
    if (!slot.exists) {
      StatefulSetAction a{StatefulSetAction::Kind::kCreate, slot.pod};
      a.d_replicas = 1;
      revision_deltas(a, +1);
      actions.push_back(std::move(a));
      if (monotonic) return actions;
      continue;
    }
    if (IsDeleting(slot.pod) && monotonic) return actions;  // wait for the deletion to finish
    if (!IsRunningAndReady(slot.pod) && monotonic) return actions;
    if (!IsRunningAndAvailable(slot.pod, spec.min_ready_seconds, now) && monotonic) return actions;
    if (!IsDeleting(slot.pod) && !IdentityMatches(set, slot.pod)) {
      actions.push_back({StatefulSetAction::Kind::kUpdateIdentity, slot.pod});
    }
  }

  // 2. Condemned pods, highest ordinal first.
  for (const json& pod : condemned) {
    if (IsDeleting(pod)) {
      if (monotonic) return actions;
      continue;
    }
    const bool is_first_unhealthy = StringAt(pod, "/metadata/name") == first_unhealthy;
    if (monotonic && !is_first_unhealthy &&
        (!IsRunningAndReady(pod) || !IsRunningAndAvailable(pod, spec.min_ready_seconds, now))) {
      return actions;
    }
    StatefulSetAction a{StatefulSetAction::Kind::kDelete, pod};
    revision_deltas(a, -1);
    actions.push_back(std::move(a));
    if (monotonic) return actions;
  }

  // 3. Updates.
  if (spec.on_delete) return actions;
  int64_t unavailable = 0;
  for (const Slot& s : replicas) {
    if (!s.exists || !IsStatefulPodHealthy(s.pod) || !IsRunningAndAvailable(s.pod, spec.min_ready_seconds, now)) {
      ++unavailable;
    }
  }
  int64_t budget = spec.max_unavailable - unavailable;
  for (auto it = replicas.rbegin(); it != replicas.rend() && budget > 0; ++it) {
    const int64_t ordinal = OrdinalOf(it->pod);
    if (ordinal < spec.partition) break;
    if (!it->exists || IsDeleting(it->pod) || PodRevision(it->pod) == revisions.update_name) continue;
    StatefulSetAction a{StatefulSetAction::Kind::kDelete, it->pod};
    a.d_current = -1;  // as Kubernetes counts it
    actions.push_back(std::move(a));
    --budget;
  }
  return actions;
}

json StatefulSetStatus(const json& set, const StatefulSetRevisions& revisions, const StatefulSetCounts& counts,
                       int32_t collision_count) {
  const StatefulSetSpec spec = ReadStatefulSetSpec(set);
  int64_t current = counts.current;
  std::string current_revision = revisions.current_name;
  if (!spec.on_delete && counts.updated == counts.replicas && counts.ready == counts.replicas) {
    current = counts.updated;
    current_revision = revisions.update_name;
  }
  return {{"observedGeneration", IntAt(set, "/metadata/generation")},
          {"replicas", counts.replicas},
          {"readyReplicas", counts.ready},
          {"currentReplicas", current},
          {"updatedReplicas", counts.updated},
          {"availableReplicas", counts.available},
          {"currentRevision", current_revision},
          {"updateRevision", revisions.update_name},
          {"collisionCount", collision_count}};
}

}  // namespace kelpie::controllers::workloads
