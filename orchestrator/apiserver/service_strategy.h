// Services: defaulting and validation of spec, ClusterIP allocation from the
// service CIDR and NodePort allocation from the node port range. Each
// allocation is a key (/registry/ranges/serviceips/<ip>,
// /registry/ranges/servicenodeports/<port>) created in the same transaction
// as the Service and deleted with it.
#pragma once

#include <cstdint>
#include <string>

#include "common/net/ip_cidr.h"
#include "orchestrator/apiserver/resource_strategy.h"

namespace kelpie::apiserver {

struct NodePortRange {
  int first = 30000;
  int last = 32767;
};

class ServiceStrategy final : public ResourceStrategy {
 public:
  ServiceStrategy(store::Store& store, net::Ipv4Cidr service_cidr, NodePortRange node_ports);

  absl::Status PrepareCreate(nlohmann::json& object, WriteExtras* extras, api::ApiError* error) override;
  absl::Status PrepareUpdate(const nlohmann::json& old_object, nlohmann::json& object, WriteExtras* extras,
                             api::ApiError* error) override;
  void PrepareDelete(const nlohmann::json& object, WriteExtras* extras) override;

  static std::string IpKey(const std::string& ip);
  static std::string NodePortKey(int port);

 private:
  absl::Status DefaultAndValidate(nlohmann::json& svc, api::ApiError* error);
  absl::Status AllocateClusterIp(nlohmann::json& svc, WriteExtras* extras, api::ApiError* error);
  absl::Status AllocateNodePorts(nlohmann::json& svc, const nlohmann::json* old_svc, WriteExtras* extras,
                                 api::ApiError* error);
  bool KeyExists(const std::string& key);

  store::Store& store_;
  net::Ipv4Cidr cidr_;
  NodePortRange node_ports_;
};

}  // namespace kelpie::apiserver
