#include "tests/unit/store/etcd_process.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "orchestrator/store/etcd_store.h"

namespace kelpie::store::testing {

int FreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

absl::StatusOr<std::unique_ptr<EtcdProcess>> EtcdProcess::Start(const std::string& data_dir,
                                                                 const Tls* tls) {
  auto etcd = FindExecutable("etcd");
  if (!etcd) return absl::NotFoundError("etcd is not installed (Debian package etcd-server)");
  KELPIE_RETURN_IF_ERROR(MakeDirectories(data_dir, 0700));
  const int client_port = FreeLoopbackPort();
  const int peer_port = FreeLoopbackPort();
  const std::string client =
      absl::StrCat(tls ? "https" : "http", "://127.0.0.1:", client_port);
  const std::string peer = absl::StrCat("http://127.0.0.1:", peer_port);
  ChildProcess::Options options;
  options.stdout_path = data_dir + "/etcd.log";
  std::vector<std::string> argv = {
      *etcd, "--name", "kelpie-test", "--data-dir", data_dir + "/member-data",
      "--listen-client-urls", client, "--advertise-client-urls", client,
      "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
      "--initial-cluster", absl::StrCat("kelpie-test=", peer), "--initial-cluster-state", "new",
      "--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn"};
  if (tls) {
    argv.insert(argv.end(), {"--cert-file", tls->cert_file, "--key-file", tls->key_file,
                             "--trusted-ca-file", tls->ca_file, "--client-cert-auth"});
  }
  KELPIE_ASSIGN_OR_RETURN(ChildProcess child, ChildProcess::Start(argv, options));
  std::unique_ptr<EtcdProcess> process(new EtcdProcess(std::move(child), client));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  absl::Status last;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!process->child_.running()) {
      auto log = ReadFileToString(options.stdout_path);
      return absl::InternalError(absl::StrCat("etcd exited at start: ",
                                              log.ok() ? log->substr(0, 2000) : ""));
    }
    EtcdStoreOptions probe;
    probe.endpoints = {client};
    probe.request_timeout = std::chrono::seconds(1);
    if (tls) {
      probe.ca_file = tls->ca_file;
      probe.cert_file = tls->client_cert_file;
      probe.key_file = tls->client_key_file;
    }
    auto store = EtcdStore::Open(probe);
    if (store.ok()) return process;
    last = store.status();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return absl::DeadlineExceededError(absl::StrCat("etcd did not start: ", last.message()));
}

}  // namespace kelpie::store::testing
