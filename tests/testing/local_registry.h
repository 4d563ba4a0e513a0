// Debian's docker-registry (distribution 2.8) as a child process of the
// test on a free loopback port, storing into a temp folder; killed by pid
// when destroyed. The test pushes images to it itself, through the
// distribution API (blob uploads and manifest PUTs).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/subprocess.h"
#include "orchestrator/runtime/image/registry_credentials.h"

namespace kelpie::testing {

struct LocalRegistryOptions {
  // Token auth: the registry sends clients to `token_realm` and accepts
  // JWTs from `token_issuer` signed by the key of `token_cert_file`.
  std::string token_realm;
  std::string token_service = "kelpie-test-registry";
  std::string token_issuer = "kelpie-test-issuer";
  std::string token_cert_file;
};

struct PushedManifest {
  std::string digest;
  std::string media_type;
  size_t size = 0;
};

class LocalRegistry {
 public:
  // Starts docker-registry with its config and storage under `dir`; ready
  // when GET /v2/ answers (200, or 401 with token auth).
  static absl::StatusOr<std::unique_ptr<LocalRegistry>> Start(const std::string& dir,
                                                              LocalRegistryOptions options = {});
  ~LocalRegistry();

  // host:port on 127.0.0.1.
  const std::string& host() const { return host_; }
  // Where the registry keeps blob `digest` (for tests that damage it).
  std::string BlobDataPath(const std::string& digest) const;

  // Uploads a blob (POST + PUT ?digest=) and returns its digest.
  absl::StatusOr<std::string> PushBlob(const std::string& repository, const std::string& content,
                                       const std::optional<image::RegistryCredentials>& creds = std::nullopt);
  absl::StatusOr<PushedManifest> PushManifest(const std::string& repository, const std::string& reference,
                                              const std::string& media_type, const std::string& body,
                                              const std::optional<image::RegistryCredentials>& creds = std::nullopt);
  // The busybox image (one gzip layer) as an OCI manifest under `tag`;
  // `architecture` goes into its config.
  absl::StatusOr<PushedManifest> PushBusybox(const std::string& repository, const std::string& tag,
                                             const std::string& architecture = "amd64",
                                             const std::optional<image::RegistryCredentials>& creds = std::nullopt);

 private:
  LocalRegistry() = default;
  std::string host_;
  std::string storage_;
  std::optional<ChildProcess> process_;
};

}  // namespace kelpie::testing
