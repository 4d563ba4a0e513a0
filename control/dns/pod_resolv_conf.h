// The resolv.conf the kubelet writes into a pod with dnsPolicy ClusterFirst,
// in the layout Kubernetes uses:
//   search <ns>.svc.<domain> svc.<domain> <domain> [host search domains]
//   nameserver <cluster DNS IP>...
//   options ndots:5
#pragma once

#include <string>
#include <vector>

namespace kelpie::dns {

struct PodResolvConfOptions {
  std::vector<std::string> nameservers = {"10.43.0.10"};  // cluster DNS service IPs
  std::string cluster_domain = "cluster.local";
  // The node's own search domains, appended after the cluster ones (the
  // kubelet does this from its --resolv-conf). Kubernetes keeps at most 32
  // search domains in total.
  std::vector<std::string> host_search = {};
  int ndots = 5;
};

std::string BuildPodResolvConf(const std::string& pod_namespace, const PodResolvConfOptions& options = {});

}  // namespace kelpie::dns
