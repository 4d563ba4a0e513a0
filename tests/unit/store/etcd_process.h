// A private etcd server for tests and benchmarks: loopback ports picked at
// start, its own data folder, killed (by pid) and reaped on destruction.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/subprocess.h"

namespace kelpie::store::testing {

class EtcdProcess {
 public:
  // Serve clients over TLS with these PEM files and require client
  // certificates signed by `ca_file`; the readiness probe presents
  // `client_cert_file`/`client_key_file`.
  struct Tls {
    std::string ca_file;
    std::string cert_file;
    std::string key_file;
    std::string client_cert_file;
    std::string client_key_file;
  };

  // Starts `etcd` from PATH with data under `data_dir` and waits until it
  // serves requests (over TLS when `tls` is given).
  static absl::StatusOr<std::unique_ptr<EtcdProcess>> Start(const std::string& data_dir,
                                                            const Tls* tls = nullptr);

  // http://127.0.0.1:PORT (https:// with TLS)
  const std::string& endpoint() const { return endpoint_; }
  pid_t pid() const { return child_.pid(); }

 private:
  EtcdProcess(ChildProcess child, std::string endpoint)
      : child_(std::move(child)), endpoint_(std::move(endpoint)) {}
  ChildProcess child_;
  std::string endpoint_;
};

// A loopback TCP port that was free when asked for.
int FreeLoopbackPort();

}  // namespace kelpie::store::testing
