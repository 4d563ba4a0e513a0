#include "orchestrator/controllers/workloads/deployment_util.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "orchestrator/controllers/workloads/workload_util.h"

namespace kelpie::controllers::workloads {

using nlohmann::json;

absl::StatusOr<int64_t> ScaledValueFromIntOrPercent(const json& value, int64_t total, bool round_up) {
  if (value.is_null()) return 0;
  if (value.is_number_integer()) return value.get<int64_t>();
  if (!value.is_string()) return absl::InvalidArgumentError("invalid value for IntOrString: not an int or string");
  std::string s = value.get<std::string>();
  int64_t v = 0;
  if (s.empty() || s.back() != '%' || !absl::SimpleAtoi(s.substr(0, s.size() - 1), &v)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid value for IntOrString: invalid type: string is not a percentage: \"", s, "\""));
  }
  // Integer arithmetic, as intstr does, so 33% of 3 is exactly 0.99.
  if (round_up) return (v * total + 99) / 100;
  return (v * total) / 100;
}

absl::StatusOr<Fenceposts> ResolveFenceposts(const json& max_surge, const json& max_unavailable, int64_t desired) {
  auto surge = ScaledValueFromIntOrPercent(max_surge.is_null() ? json(0) : max_surge, desired, true);
  if (!surge.ok()) return surge.status();
  auto unavailable = ScaledValueFromIntOrPercent(max_unavailable.is_null() ? json(0) : max_unavailable, desired, false);
  if (!unavailable.ok()) return unavailable.status();
  Fenceposts f{*surge, *unavailable};
  if (f.max_surge == 0 && f.max_unavailable == 0) f.max_unavailable = 1;
  return f;
}

Fenceposts DeploymentFenceposts(const json& d) {
  const int64_t desired = IntAt(d, "/spec/replicas", 1);
  if (StringAt(d, "/spec/strategy/type", "RollingUpdate") != "RollingUpdate") return {0, 0};
  const json ru = d.contains(json::json_pointer("/spec/strategy/rollingUpdate"))
                      ? d.at(json::json_pointer("/spec/strategy/rollingUpdate"))
                      : json::object();
  const json surge = ru.is_object() && ru.contains("maxSurge") ? ru["maxSurge"] : json("25%");
  const json unavailable = ru.is_object() && ru.contains("maxUnavailable") ? ru["maxUnavailable"] : json("25%");
  auto f = ResolveFenceposts(surge, unavailable, desired);
  // Validation rejects malformed values; treat a stored one as the defaults.
  if (!f.ok()) f = ResolveFenceposts("25%", "25%", desired);
  return *f;
}

int64_t MaxUnavailable(const json& d) {
  const int64_t desired = IntAt(d, "/spec/replicas", 1);
  if (StringAt(d, "/spec/strategy/type", "RollingUpdate") != "RollingUpdate" || desired == 0) return 0;
  return std::min(DeploymentFenceposts(d).max_unavailable, desired);
}

int64_t MaxSurge(const json& d) {
  if (StringAt(d, "/spec/strategy/type", "RollingUpdate") != "RollingUpdate") return 0;
  return DeploymentFenceposts(d).max_surge;
}

int64_t NewRSNewReplicas(int64_t desired, int64_t max_surge, int64_t all_rs_replicas, int64_t new_rs_replicas) {
  const int64_t max_total = desired + max_surge;
  if (all_rs_replicas >= max_total) return new_rs_replicas;  // cannot scale up
  const int64_t scale_up = std::min(max_total - all_rs_replicas, desired - new_rs_replicas);
  return new_rs_replicas + std::max<int64_t>(scale_up, 0);
}

int64_t ReplicaSetProportion(int64_t rs_replicas, std::optional<int64_t> annotated_max_replicas,
                             int64_t deployment_replicas_with_surge, int64_t to_add, int64_t added) {
  if (rs_replicas == 0 || to_add == 0 || !annotated_max_replicas || *annotated_max_replicas == 0) return 0;
  // The size this ReplicaSet would have if the deployment's new size were
  // spread as its old size was.
  const double share = static_cast<double>(rs_replicas) * static_cast<double>(deployment_replicas_with_surge) /
                       static_cast<double>(*annotated_max_replicas);
  const int64_t fraction = static_cast<int64_t>(std::llround(share)) - rs_replicas;
  const int64_t allowed = to_add - added;
  if (to_add > 0) return std::min(fraction, allowed);
  return std::max(fraction, allowed);
}

int64_t Revision(const json& obj) {
  std::string v = StringAt(obj, "/metadata/annotations/deployment.kubernetes.io~1revision");
  int64_t r = 0;
  return absl::SimpleAtoi(v, &r) ? r : 0;
}

bool SkipCopyAnnotation(const std::string& key) {
  return key == "kubectl.kubernetes.io/last-applied-configuration" || key == kRevisionAnnotation ||
         key == kRevisionHistoryAnnotation || key == kDesiredReplicasAnnotation || key == kMaxReplicasAnnotation ||
         key == "deprecated.deployment.rollback.to";
}

bool CopyDeploymentAnnotations(const json& d, json& rs) {
  const json da = json(d["metadata"].value("annotations", json::object()));
  json& ra = rs["metadata"]["annotations"];
  if (!ra.is_object()) ra = json::object();
  bool changed = false;
  for (auto it = da.begin(); it != da.end(); ++it) {
    if (SkipCopyAnnotation(it.key())) continue;
    if (!ra.contains(it.key()) || ra[it.key()] != it.value()) {
      ra[it.key()] = it.value();
      changed = true;
    }
  }
  return changed;
}

}  // namespace kelpie::controllers::workloads
