#include "tests/testing/kelpie_server.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "orchestrator/client/kubeconfig.h"
#include "tests/testing/test_env.h"

namespace kelpie::testing {

using namespace std::chrono_literals;

absl::StatusOr<std::unique_ptr<KelpieServer>> KelpieServer::Start(const std::string& data_dir, int port,
                                                                  const std::string& log_file,
                                                                  std::vector<std::string> extra_args) {
  std::unique_ptr<KelpieServer> s(new KelpieServer());
  s->kubeconfig_ = data_dir + "/kubeconfig.yaml";
  s->log_file_ = log_file;
  s->port_ = port;
  std::vector<std::string> argv = {KelpieBinary(), "server", "--data-dir", data_dir, "--secure-port",
                                   std::to_string(port), "--bind-address", "127.0.0.1"};
  // Tests see only the nodes they create unless they ask for the server's
  // own node.
  // The same for service routing, which attaches to the host's cgroup root
  // unless told otherwise, for network observability, and for cluster DNS, which takes the cluster DNS
  // address and port 53 on the host.
  // A flag counts only by its exact name: `--service-routing-maintenance-interval`
  // must not pass for `--service-routing` and leave routing on the host.
  auto has = [&](const std::string& name) {
    for (const auto& a : extra_args) {
      if (a == name || a.rfind(name + "=", 0) == 0) return true;
    }
    return false;
  };
  const bool node_flag = has("--register-node"), routing_flag = has("--service-routing"), dns_flag = has("--dns"),
             observability_flag = has("--network-observability"), pods_flag = has("--run-pods"),
             kubelet_port_flag = has("--kubelet-port"), pulls_flag = has("--image-pulls");
  if (!node_flag) argv.push_back("--register-node=false");
  if (!routing_flag) argv.push_back("--service-routing=false");
  if (!dns_flag) argv.push_back("--dns=false");
  // Network observability loads node-wide programs and takes a fixed port.
  if (!observability_flag) argv.push_back("--network-observability=false");
  // A registered node runs no pods (host bridge, cgroups) and serves no
  // kubelet API (a fixed port) unless the test asks.
  if (!pods_flag) argv.push_back("--run-pods=false");
  if (!kubelet_port_flag) argv.push_back("--kubelet-port=0");
  // Pods run images the test imported; no registry but a test's loopback one is ever contacted.
  if (!pulls_flag) argv.push_back("--image-pulls=false");
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  ChildProcess::Options o;
  o.stdout_path = log_file;
  o.kill_with_parent = true;
  auto child = ChildProcess::Start(argv, o);
  if (!child.ok()) return child.status();
  s->process_.emplace(std::move(*child));
  for (int i = 0; i < 500; ++i) {
    if (PathExists(s->kubeconfig_)) {
      auto client = s->AdminClient();
      if (client.ok()) {
        auto r = (*client)->Do({.method = "GET", .target = "/readyz"});
        if (r.ok() && r->status == 200) return s;
      }
    }
    if (!s->process_->running()) {
      return absl::InternalError(absl::StrCat("kelpie server exited:\n", s->Log()));
    }
    std::this_thread::sleep_for(20ms);
  }
  return absl::DeadlineExceededError(absl::StrCat("kelpie server did not become ready:\n", s->Log()));
}

std::string KelpieServer::Log() const { return ReadFileToString(log_file_).value_or(""); }

absl::StatusOr<std::unique_ptr<http::HttpClient>> KelpieServer::AdminClient() const {
  auto kc = client::LoadKubeconfig(kubeconfig_);
  if (!kc.ok()) return kc.status();
  return http::HttpClient::Create(client::ClientOptionsFromKubeconfig(*kc));
}

SubprocessResult KelpieServer::Kubectl(const std::vector<std::string>& args,
                                       const std::string& kubeconfig_override,
                                       const std::optional<std::string>& stdin_text) const {
  std::vector<std::string> argv = {"kubectl", "--kubeconfig",
                                   kubeconfig_override.empty() ? kubeconfig_ : kubeconfig_override};
  argv.insert(argv.end(), args.begin(), args.end());
  SubprocessOptions o;
  o.timeout = 60s;
  o.stdin_text = stdin_text;
  auto r = RunSubprocess(argv, o);
  if (!r.ok()) {
    SubprocessResult failed;
    failed.stderr_text = std::string(r.status().message());
    return failed;
  }
  return *r;
}

}  // namespace kelpie::testing
