// The StatefulSet controller's pure logic, as Kubernetes'
// stateful_set_utils.go and stateful_set_control.go define it: pod identity
// (`<set>-<ordinal>`, the pod-name and pod-index labels, hostname and
// subdomain), revisions (ControllerRevision objects holding the pod
// template), status counting, and the plan of one sync — which pods to
// create, delete or relabel, in which order — for the OrderedReady and
// Parallel pod management policies and the RollingUpdate and OnDelete
// update strategies. No I/O here: the controller executes the plan.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "orchestrator/controllers/workloads/workload_util.h"

namespace kelpie::controllers::workloads {

inline constexpr char kStatefulSetPodNameLabel[] = "statefulset.kubernetes.io/pod-name";
inline constexpr char kPodIndexLabel[] = "apps.kubernetes.io/pod-index";
inline constexpr char kControllerRevisionHashLabel[] = "controller-revision-hash";
// The label a ControllerRevision carries with its hash.
inline constexpr char kControllerRevisionHashKey[] = "controller.kubernetes.io/hash";

// "<parent>-<ordinal>": the parent name and ordinal, ordinal -1 when the
// name does not end in a dash and a non-negative number.
struct StatefulPodIdentity {
  std::string parent;
  int64_t ordinal = -1;
};
StatefulPodIdentity ParseStatefulPodName(const std::string& name);
std::string StatefulPodName(const std::string& set_name, int64_t ordinal);

// The spec fields the controller acts on, with Kubernetes' defaults
// applied (replicas 1, OrderedReady, RollingUpdate with partition 0 and
// maxUnavailable 1, revisionHistoryLimit 10, ordinals.start 0).
struct StatefulSetSpec {
  std::string name;
  std::string ns;
  int64_t replicas = 1;
  int64_t start_ordinal = 0;
  bool parallel = false;  // podManagementPolicy: Parallel
  bool on_delete = false;  // updateStrategy.type: OnDelete
  int64_t partition = 0;
  int64_t max_unavailable = 1;
  int64_t min_ready_seconds = 0;
  std::string service_name;
  int64_t revision_history_limit = 10;
};
StatefulSetSpec ReadStatefulSetSpec(const nlohmann::json& set);

// Pod predicates of the StatefulSet controller.
bool IsRunningAndReady(const nlohmann::json& pod);
bool IsRunningAndAvailable(const nlohmann::json& pod, int64_t min_ready_seconds, WallTime now);
// Running, Ready and not being deleted.
bool IsStatefulPodHealthy(const nlohmann::json& pod);
// The revision (ControllerRevision name) a pod was made from.
std::string PodRevision(const nlohmann::json& pod);

// The pod for `ordinal`: the template's labels, annotations and spec, the
// controller ownerReference, name `<set>-<ordinal>`, the identity labels,
// hostname = the pod name, subdomain = serviceName, and the revision label.
nlohmann::json NewStatefulSetPod(const nlohmann::json& set, const nlohmann::json& pod_template,
                                 const std::string& revision, int64_t ordinal);
// Name, namespace and identity labels as the set would give them.
bool IdentityMatches(const nlohmann::json& set, const nlohmann::json& pod);

// --- revisions ---
// The template a ControllerRevision holds (data.spec.template).
nlohmann::json RevisionTemplate(const nlohmann::json& revision);
// `<set>-<hash of the template and collision count>`.
std::string ControllerRevisionName(const std::string& set_name, const nlohmann::json& pod_template,
                                   int32_t collision_count);
// A ControllerRevision of the set's current template, as Kubernetes'
// history.NewControllerRevision makes it: the template's labels plus the
// hash label, a controller ownerReference, data = {"spec":{"template":
// {..., "$patch":"replace"}}} (what `kubectl rollout undo` applies), and
// `revision` = `number`.
nlohmann::json NewControllerRevision(const nlohmann::json& set, int64_t number, int32_t collision_count);
// Whether two revisions hold the same template.
bool EqualRevision(const nlohmann::json& a, const nlohmann::json& b);
// Orders by revision number, then creation time, then name.
void SortRevisions(std::vector<nlohmann::json>& revisions);
// One more than the highest revision number (1 when there is none).
int64_t NextRevisionNumber(const std::vector<nlohmann::json>& revisions);
// The revisions (sorted oldest first) to delete so that at most `limit`
// revisions that are not live (not in `live`: current, update, and any
// pod's revision) are kept; the oldest go.
std::vector<nlohmann::json> RevisionsToTruncate(const std::vector<nlohmann::json>& sorted_revisions,
                                                const std::set<std::string>& live, int64_t limit);

// --- one sync ---
struct StatefulSetRevisions {
  std::string current_name;
  nlohmann::json current_template;
  std::string update_name;
  nlohmann::json update_template;
};

struct StatefulSetCounts {
  int64_t replicas = 0;
  int64_t ready = 0;
  int64_t available = 0;
  int64_t current = 0;
  int64_t updated = 0;
};
// Counted as Kubernetes' updateStatus does: every pod; ready = Running and
// Ready; available = also ready for minReadySeconds; current / updated =
// not being deleted and made from that revision.
StatefulSetCounts CountStatefulPods(const std::vector<nlohmann::json>& pods, const StatefulSetRevisions& revisions,
                                    int64_t min_ready_seconds, WallTime now);

struct StatefulSetAction {
  enum class Kind { kCreate, kDelete, kUpdateIdentity };
  Kind kind = Kind::kCreate;
  nlohmann::json pod;  // the pod to create, or the existing pod
  // For deletions of Failed/Succeeded pods: the event Kubernetes records
  // (RecreatingFailedPod, RecreatingTerminatedPod); empty otherwise.
  std::string recreate_reason;
  // What the status counts gain once the action succeeded.
  int64_t d_replicas = 0;
  int64_t d_current = 0;
  int64_t d_updated = 0;
};

// The actions of one sync, in the order they are carried out (stop at the
// first failure), for `pods` (the set's claimed pods, deleting ones too):
//  1. replicas (ordinals [start, start+replicas)) in ascending order:
//     Failed/Succeeded pods are deleted to be created anew; missing pods
//     are created — from the current revision below the partition, else
//     from the update revision; pods whose identity labels are off are
//     relabelled. OrderedReady (monotonic) stops after a create or at a
//     pod that is terminating, not Running and Ready, or not yet available.
//  2. condemned pods (ordinals outside the range), highest ordinal first;
//     OrderedReady deletes one at a time, only when every replica is
//     healthy (an unhealthy condemned pod may go first).
//  3. RollingUpdate: replicas at or above the partition not at the update
//     revision are deleted, highest ordinal first, while fewer than
//     maxUnavailable replicas are unavailable (terminating, not ready or
//     not yet available); OnDelete replaces only pods deleted by others.
// Nothing for a set being deleted.
std::vector<StatefulSetAction> PlanStatefulSetSync(const nlohmann::json& set, const StatefulSetRevisions& revisions,
                                                   const std::vector<nlohmann::json>& pods, WallTime now);

// The status to write: counts after the actions that succeeded, revisions,
// observedGeneration, collisionCount; a RollingUpdate whose pods are all
// updated and ready makes the update revision current (completeRollingUpdate).
nlohmann::json StatefulSetStatus(const nlohmann::json& set, const StatefulSetRevisions& revisions,
                                 const StatefulSetCounts& counts, int32_t collision_count);

}  // namespace kelpie::controllers::workloads
