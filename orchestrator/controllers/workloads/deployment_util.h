// The arithmetic of Deployment rollouts, as Kubernetes' deploymentutil
// defines it: maxSurge/maxUnavailable from integers or percentages
// (surge rounds up, unavailable rounds down, both zero means one
// unavailable), how far the new ReplicaSet may grow, proportional scaling
// shares, and the revision annotations.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include <nlohmann/json.hpp>

namespace kelpie::controllers::workloads {

inline constexpr char kRevisionAnnotation[] = "deployment.kubernetes.io/revision";
inline constexpr char kRevisionHistoryAnnotation[] = "deployment.kubernetes.io/revision-history";
inline constexpr char kDesiredReplicasAnnotation[] = "deployment.kubernetes.io/desired-replicas";
inline constexpr char kMaxReplicasAnnotation[] = "deployment.kubernetes.io/max-replicas";

// An IntOrString (e.g. 2 or "25%") resolved against `total`; percentages
// round up or down. Errors on a malformed string, as intstr does.
absl::StatusOr<int64_t> ScaledValueFromIntOrPercent(const nlohmann::json& value, int64_t total, bool round_up);

struct Fenceposts {
  int64_t max_surge = 0;
  int64_t max_unavailable = 0;
};
// ResolveFenceposts: surge rounded up, unavailable rounded down; when both
// come out zero, unavailable is 1 so the rollout can make progress.
absl::StatusOr<Fenceposts> ResolveFenceposts(const nlohmann::json& max_surge, const nlohmann::json& max_unavailable,
                                             int64_t desired);
// The strategy's values (defaults 25%/25%; Recreate: 0 surge, 0 unavailable
// limit not applying). max_unavailable is capped at the desired count.
Fenceposts DeploymentFenceposts(const nlohmann::json& deployment);
int64_t MaxUnavailable(const nlohmann::json& deployment);
int64_t MaxSurge(const nlohmann::json& deployment);

// How many replicas the new ReplicaSet may have now in a rolling update:
// never more than desired + maxSurge pods in all ReplicaSets together.
int64_t NewRSNewReplicas(int64_t desired, int64_t max_surge, int64_t all_rs_replicas, int64_t new_rs_replicas);

// Proportional scaling (deploymentutil.GetProportion): how much of
// `to_add` (negative: to remove) this ReplicaSet takes, from its size
// relative to the deployment size recorded in its max-replicas annotation.
int64_t ReplicaSetProportion(int64_t rs_replicas, std::optional<int64_t> annotated_max_replicas,
                             int64_t deployment_replicas_with_surge, int64_t to_add, int64_t added);

// The revision annotation as a number (0 when absent or malformed).
int64_t Revision(const nlohmann::json& obj);

// Copies the deployment's annotations onto a ReplicaSet except the ones that
// belong to the deployment alone (last-applied-configuration, revision and
// replica annotations, rollback request). Returns whether anything changed.
bool CopyDeploymentAnnotations(const nlohmann::json& deployment, nlohmann::json& rs);
// Whether an annotation stays on the deployment (is not copied or restored).
bool SkipCopyAnnotation(const std::string& key);

}  // namespace kelpie::controllers::workloads
