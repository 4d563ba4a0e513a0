#include "orchestrator/apiserver/stateful_set_strategy.h"

namespace kelpie::apiserver {

using nlohmann::json;

namespace {
bool Missing(const json& obj, const char* field) { return !obj.contains(field) || obj[field].is_null(); }
}  // namespace

void StatefulSetStrategy::ApplyDefaults(json& sts) {
  if (!sts.is_object()) return;
  if (Missing(sts, "spec") || !sts["spec"].is_object()) sts["spec"] = json::object();
  json& spec = sts["spec"];
  if (Missing(spec, "replicas")) spec["replicas"] = 1;
  if (Missing(spec, "podManagementPolicy")) spec["podManagementPolicy"] = "OrderedReady";
  if (Missing(spec, "revisionHistoryLimit")) spec["revisionHistoryLimit"] = 10;
  if (Missing(spec, "updateStrategy") || !spec["updateStrategy"].is_object()) spec["updateStrategy"] = json::object();
  json& strategy = spec["updateStrategy"];
  if (Missing(strategy, "type") || strategy["type"] == "") {
    strategy["type"] = "RollingUpdate";
    if (Missing(strategy, "rollingUpdate")) strategy["rollingUpdate"] = json::object();
  }
  if (strategy["type"] == "RollingUpdate" && strategy.contains("rollingUpdate") && strategy["rollingUpdate"].is_object() &&
      Missing(strategy["rollingUpdate"], "partition")) {
    strategy["rollingUpdate"]["partition"] = 0;
  }
  if (Missing(spec, "persistentVolumeClaimRetentionPolicy") || !spec["persistentVolumeClaimRetentionPolicy"].is_object()) {
    spec["persistentVolumeClaimRetentionPolicy"] = json::object();
  }
  json& retention = spec["persistentVolumeClaimRetentionPolicy"];
  if (Missing(retention, "whenDeleted")) retention["whenDeleted"] = "Retain";
  if (Missing(retention, "whenScaled")) retention["whenScaled"] = "Retain";
}

absl::Status StatefulSetStrategy::PrepareCreate(json& object, WriteExtras*, api::ApiError*) {
  ApplyDefaults(object);
  return absl::OkStatus();
}

absl::Status StatefulSetStrategy::PrepareUpdate(const json&, json& object, WriteExtras*, api::ApiError*) {
  ApplyDefaults(object);
  return absl::OkStatus();
}

}  // namespace kelpie::apiserver
