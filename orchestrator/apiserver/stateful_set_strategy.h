// StatefulSets: the defaults kube-apiserver gives apps/v1 StatefulSets
// (SetDefaults_StatefulSet) on every write: replicas 1,
// podManagementPolicy OrderedReady, updateStrategy RollingUpdate with
// rollingUpdate.partition 0, revisionHistoryLimit 10 and a Retain/Retain
// persistentVolumeClaimRetentionPolicy. kubectl relies on them (`rollout
// status statefulset` refuses a set whose updateStrategy.type is empty).
#pragma once

#include "orchestrator/apiserver/resource_strategy.h"

namespace kelpie::apiserver {

class StatefulSetStrategy final : public ResourceStrategy {
 public:
  absl::Status PrepareCreate(nlohmann::json& object, WriteExtras* extras, api::ApiError* error) override;
  absl::Status PrepareUpdate(const nlohmann::json& old_object, nlohmann::json& object, WriteExtras* extras,
                             api::ApiError* error) override;
  void PrepareDelete(const nlohmann::json&, WriteExtras*) override {}

  // Fills in the defaults Kubernetes would; fields already set are kept.
  static void ApplyDefaults(nlohmann::json& stateful_set);
};

}  // namespace kelpie::apiserver
