// What the pod worker asks of the API server, behind an interface so tests
// can fake it: the objects containers and volumes read, service-account
// tokens, the pod status subresource and the final deletion.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "orchestrator/client/rest_client.h"

namespace kelpie::kubelet {

class PodApi {
 public:
  virtual ~PodApi() = default;
  // NotFound when absent.
  virtual absl::StatusOr<nlohmann::json> GetConfigMap(const std::string& ns, const std::string& name) = 0;
  virtual absl::StatusOr<nlohmann::json> GetSecret(const std::string& ns, const std::string& name) = 0;
  // The `items` of the namespace's service list.
  virtual absl::StatusOr<nlohmann::json> ListServices(const std::string& ns) = 0;
  virtual absl::StatusOr<nlohmann::json> GetService(const std::string& ns, const std::string& name) = 0;
  // POST serviceaccounts/<sa>/token with a TokenRequest; returns the response.
  virtual absl::StatusOr<nlohmann::json> RequestToken(const std::string& ns, const std::string& service_account,
                                                      const nlohmann::json& token_request) = 0;
  // Merge patch of pods/<name>/status with {"status": status}.
  virtual absl::Status PatchPodStatus(const std::string& ns, const std::string& name,
                                      const nlohmann::json& status) = 0;
  // DELETE with gracePeriodSeconds=0 and a uid precondition (NotFound is success).
  virtual absl::Status DeletePodNow(const std::string& ns, const std::string& name, const std::string& uid) = 0;
};

class RestPodApi : public PodApi {
 public:
  explicit RestPodApi(client::RestClient& client) : client_(client) {}
  absl::StatusOr<nlohmann::json> GetConfigMap(const std::string& ns, const std::string& name) override;
  absl::StatusOr<nlohmann::json> GetSecret(const std::string& ns, const std::string& name) override;
  absl::StatusOr<nlohmann::json> ListServices(const std::string& ns) override;
  absl::StatusOr<nlohmann::json> GetService(const std::string& ns, const std::string& name) override;
  absl::StatusOr<nlohmann::json> RequestToken(const std::string& ns, const std::string& service_account,
                                              const nlohmann::json& token_request) override;
  absl::Status PatchPodStatus(const std::string& ns, const std::string& name, const nlohmann::json& status) override;
  absl::Status DeletePodNow(const std::string& ns, const std::string& name, const std::string& uid) override;

 private:
  client::RestClient& client_;
};

}  // namespace kelpie::kubelet
