// NodeApi over an HTTPS client to the API server (JSON, merge patches).
#pragma once

#include <memory>

#include "common/http/http_client.h"
#include "orchestrator/kubelet/node_registrar.h"

namespace kelpie::kubelet {

class HttpNodeApi : public NodeApi {
 public:
  explicit HttpNodeApi(std::unique_ptr<http::HttpClient> client) : client_(std::move(client)) {}

  absl::StatusOr<nlohmann::json> GetNode(const std::string& name) override;
  absl::StatusOr<nlohmann::json> CreateNode(const nlohmann::json& node) override;
  absl::StatusOr<nlohmann::json> PatchNode(const std::string& name, const nlohmann::json& patch) override;
  absl::StatusOr<nlohmann::json> PatchNodeStatus(const std::string& name, const nlohmann::json& patch) override;
  absl::StatusOr<nlohmann::json> GetLease(const std::string& name_space, const std::string& name) override;
  absl::StatusOr<nlohmann::json> CreateLease(const nlohmann::json& lease) override;
  absl::StatusOr<nlohmann::json> UpdateLease(const nlohmann::json& lease) override;

 private:
  absl::StatusOr<nlohmann::json> Call(const std::string& method, const std::string& target,
                                      const std::string& content_type, const std::string& body);
  std::unique_ptr<http::HttpClient> client_;
};

}  // namespace kelpie::kubelet
