// Nodes: a pod CIDR for every node, allocated from the cluster CIDR when the
// Node is created (what kube-controller-manager's node IPAM does with
// --allocate-node-cidrs, done here in the Node's own write so that two nodes
// can never get the same range). Each allocation is a key
// /registry/ranges/podcidrs/<network>-<prefix> created in the same
// transaction as the Node and deleted with it. spec.podCIDR is immutable
// once set, as in Kubernetes.
#pragma once

#include <string>

#include "common/net/ip_cidr.h"
#include "orchestrator/apiserver/resource_strategy.h"

namespace kelpie::apiserver {

class NodeStrategy final : public ResourceStrategy {
 public:
  // Nodes get /`node_mask_size` ranges of `cluster_cidr`.
  NodeStrategy(store::Store& store, net::Ipv4Cidr cluster_cidr, int node_mask_size);

  absl::Status PrepareCreate(nlohmann::json& object, WriteExtras* extras, api::ApiError* error) override;
  absl::Status PrepareUpdate(const nlohmann::json& old_object, nlohmann::json& object, WriteExtras* extras,
                             api::ApiError* error) override;
  void PrepareDelete(const nlohmann::json& object, WriteExtras* extras) override;

  static std::string CidrKey(const std::string& cidr);

 private:
  store::Store& store_;
  net::Ipv4Cidr cluster_cidr_;
  int node_mask_size_;
};

}  // namespace kelpie::apiserver
