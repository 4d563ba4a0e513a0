#include "orchestrator/kubelet/server/kubelet_api.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <climits>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "orchestrator/kubelet/server/kubelet_server.h"
#include "orchestrator/runtime/image/image_store.h"
#include "orchestrator/runtime/runc_pod_runtime.h"

namespace kelpie::kubelet {

void AddKubeletApiFlags(CLI::App& app, KubeletApiOptions& options) {
  app.add_option("--kubelet-bind-address", options.bind_address, "Address the kubelet API listens on")
      ->capture_default_str();
  app.add_option("--kubelet-tls-cert-file", options.certificate_file,
                 "Serving certificate of the kubelet API, signed by the cluster CA (kelpie server issues its own)");
  app.add_option("--kubelet-tls-private-key-file", options.private_key_file, "Key of --kubelet-tls-cert-file");
  app.add_option("--kubelet-client-ca-file", options.client_ca_file,
                 "CA whose client certificates the kubelet API accepts (default: the cluster CA)");
  // The runtime's state (<data-dir>/runtime) and the log folder are the pod
  // worker's (--pod-log-dir of the kubelet flags); the caller copies them in.
}

absl::StatusOr<std::unique_ptr<KubeletApi>> KubeletApi::Start(KubeletApiOptions options, const std::string& data_dir) {
  std::unique_ptr<KubeletApi> api(new KubeletApi());
  auto images = image::ImageStore::Open(data_dir);
  if (!images.ok()) return images.status();
  api->images_ = std::move(*images);
  runtime::RuncRuntimeOptions ro;
  ro.state_dir = options.runtime_state_dir.empty() ? data_dir + "/runtime" : options.runtime_state_dir;
  ro.log_dir = options.pod_log_dir;
  char self[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return absl::InternalError("cannot find the kelpie binary for the runtime shim");
  ro.shim_command = {std::string(self, static_cast<size_t>(n)), "runtime-shim"};
  // This handle only reads sandboxes, containers and logs and runs execs:
  // it never networks a pod, so its CNI network is a named placeholder
  // that cannot clash with the one the node's pods use.
  ro.cni.network_name = "kelpie-kubelet-api";
  ro.cni.pod_cidr = "192.0.2.0/24";
  auto rt = runtime::RuncPodRuntime::Create(ro, *api->images_);
  if (!rt.ok()) return rt.status();
  api->runtime_ = std::move(*rt);
  KubeletServerOptions so;
  so.bind_address = options.bind_address;
  so.port = static_cast<uint16_t>(options.port);
  so.certificate_file = options.certificate_file;
  so.private_key_file = options.private_key_file;
  so.client_ca_file = options.client_ca_file;
  auto server = KubeletServer::Start(so, *api->runtime_);
  if (!server.ok()) return server.status();
  api->server_ = std::move(*server);
  spdlog::info("kubelet API listening on https://{}:{}", options.bind_address, api->server_->port());
  return api;
}

KubeletApi::~KubeletApi() { Stop(); }

uint16_t KubeletApi::port() const { return server_ ? server_->port() : 0; }

void KubeletApi::Stop() {
  if (server_) server_->Stop();
}

}  // namespace kelpie::kubelet
