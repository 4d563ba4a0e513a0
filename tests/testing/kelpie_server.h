// A real `kelpie server` process for integration and e2e tests: temp data
// dir, free port, ready when /readyz answers; killed by pid when destroyed.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/http/http_client.h"
#include "common/subprocess.h"

namespace kelpie::testing {

class KelpieServer {
 public:
  // Starts `kelpie server --data-dir <data_dir>` on 127.0.0.1:<port> with
  // `extra_args`, and waits until it is ready. The server registers no node
  // of its own unless `extra_args` has --register-node=true.
  static absl::StatusOr<std::unique_ptr<KelpieServer>> Start(const std::string& data_dir, int port,
                                                             const std::string& log_file,
                                                             std::vector<std::string> extra_args = {});

  const std::string& kubeconfig() const { return kubeconfig_; }
  int port() const { return port_; }
  ChildProcess& process() { return *process_; }
  std::string Log() const;

  // A client authenticated as the admin of the written kubeconfig.
  absl::StatusOr<std::unique_ptr<http::HttpClient>> AdminClient() const;

  // Runs the real kubectl against this server (60 s timeout).
  SubprocessResult Kubectl(const std::vector<std::string>& args,
                           const std::string& kubeconfig_override = "",
                           const std::optional<std::string>& stdin_text = std::nullopt) const;

 private:
  KelpieServer() = default;
  std::string kubeconfig_;
  std::string log_file_;
  int port_ = 0;
  std::optional<ChildProcess> process_;
};

}  // namespace kelpie::testing
