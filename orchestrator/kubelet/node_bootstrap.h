// Joining a cluster with a token (`kelpie agent --server URL --token
// TOKEN`): the agent fetches the cluster CA from /cacerts without trusting
// it, checks it against the hash pinned in the token, makes its own key and
// asks the server (authenticated by the token's secret) for a node client
// certificate (system:node:<name>, group system:nodes) and a kubelet serving
// certificate. It writes them with a kubeconfig under its data directory and
// reuses them on later starts while they still fit.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kelpie::kubelet {

struct NodeBootstrapOptions {
  std::string server;     // https://host:port
  std::string token;      // K10<CA hash>::<secret>
  std::string node_name;
  std::vector<std::string> addresses;  // for the serving certificate
  std::string directory;  // the agent's data dir: kubeconfig.yaml, pki/
};

struct NodeCredentials {
  std::string kubeconfig_path;
  std::string ca_file;
  std::string serving_certificate_file;
  std::string serving_key_file;
  bool issued = false;  // false: the files of an earlier join were reused
};

absl::StatusOr<NodeCredentials> BootstrapNodeCredentials(const NodeBootstrapOptions& options);

}  // namespace kelpie::kubelet
