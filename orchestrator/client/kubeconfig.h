// kubeconfig files: writing the admin kubeconfig, and reading one to reach
// the API server (the current context's cluster and user).
#pragma once

#include <sys/types.h>

#include <string>

#include "absl/status/statusor.h"
#include "common/http/http_client.h"

namespace kelpie::client {

struct KubeconfigContents {
  std::string cluster_name = "kelpie";
  std::string user_name = "kelpie-admin";
  std::string server;  // https://host:port
  std::string ca_certificate_pem;
  std::string client_certificate_pem;
  std::string client_key_pem;
  std::string token;
};

// Serializes `contents` as a kubeconfig (embedded base64 *-data fields) and
// writes it atomically with `mode` (0600 for credentials).
absl::Status WriteKubeconfig(const std::string& path, const KubeconfigContents& contents,
                             mode_t mode);

// Reads the current context of a kubeconfig. Errors name the file and the
// missing or malformed field.
absl::StatusOr<KubeconfigContents> LoadKubeconfig(const std::string& path);

// HTTP client options that authenticate as the kubeconfig's user.
http::HttpClientOptions ClientOptionsFromKubeconfig(const KubeconfigContents& contents);

}  // namespace kelpie::client
