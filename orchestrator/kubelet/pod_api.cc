#include "orchestrator/kubelet/pod_api.h"

#include "orchestrator/client/api_errors.h"

namespace kelpie::kubelet {

using nlohmann::json;

absl::StatusOr<json> RestPodApi::GetConfigMap(const std::string& ns, const std::string& name) {
  return client_.Get(client::resources::kConfigMaps, ns, name);
}

absl::StatusOr<json> RestPodApi::GetSecret(const std::string& ns, const std::string& name) {
  return client_.Get(client::resources::kSecrets, ns, name);
}

absl::StatusOr<json> RestPodApi::ListServices(const std::string& ns) {
  auto list = client_.List(client::resources::kServices, ns);
  if (!list.ok()) return list.status();
  return list->contains("items") ? (*list)["items"] : json::array();
}

absl::StatusOr<json> RestPodApi::GetService(const std::string& ns, const std::string& name) {
  return client_.Get(client::resources::kServices, ns, name);
}

absl::StatusOr<json> RestPodApi::RequestToken(const std::string& ns, const std::string& service_account,
                                              const json& token_request) {
  return client_.Request("POST", client::resources::kServiceAccounts.Path(ns, service_account, "token"),
                         "application/json", token_request.dump());
}

absl::Status RestPodApi::PatchPodStatus(const std::string& ns, const std::string& name, const json& status) {
  auto r = client_.Patch(client::resources::kPods, ns, name, client::PatchType::kMerge, json{{"status", status}},
                         "status");
  return r.status();
}

absl::Status RestPodApi::DeletePodNow(const std::string& ns, const std::string& name, const std::string& uid) {
  client::DeleteOptions options;
  options.grace_period_seconds = 0;
  options.precondition_uid = uid;
  auto r = client_.Delete(client::resources::kPods, ns, name, options);
  if (!r.ok() && client::IsNotFound(r.status())) return absl::OkStatus();
  return r.status();
}

}  // namespace kelpie::kubelet
