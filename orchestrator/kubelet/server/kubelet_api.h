// The kubelet API as `kelpie server` and `kelpie agent` run it: the pod
// runtime over the node's state directory and the KubeletServer on top.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace CLI {
class App;
}

namespace kelpie::image {
class ImageStore;
}
namespace kelpie::runtime {
class RuncPodRuntime;
}

namespace kelpie::kubelet {

class KubeletServer;

struct KubeletApiOptions {
  std::string bind_address = "0.0.0.0";
  int port = 10250;
  std::string certificate_file;  // serving certificate signed by the cluster CA
  std::string private_key_file;
  std::string client_ca_file;    // the cluster CA
  std::string runtime_state_dir;  // default <data-dir>/runtime
  std::string pod_log_dir = "/var/log/pods";
};

// --kubelet-bind-address, --kubelet-tls-cert-file, --kubelet-tls-private-key-file,
// --kubelet-client-ca-file.
void AddKubeletApiFlags(CLI::App& app, KubeletApiOptions& options);

class KubeletApi {
 public:
  // `data_dir` holds the image store (and the runtime state by default).
  static absl::StatusOr<std::unique_ptr<KubeletApi>> Start(KubeletApiOptions options, const std::string& data_dir);
  ~KubeletApi();
  uint16_t port() const;
  void Stop();

 private:
  KubeletApi() = default;
  std::unique_ptr<image::ImageStore> images_;
  std::unique_ptr<runtime::RuncPodRuntime> runtime_;
  std::unique_ptr<KubeletServer> server_;
};

}  // namespace kelpie::kubelet
