// Registry credentials: user name and password (basic auth, also sent to
// the token endpoint), as a Kubernetes `.dockerconfigjson` pull secret
// holds them.
#pragma once

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kelpie::image {

struct RegistryCredentials {
  std::string username;
  std::string password;
  // An OAuth2 refresh token (`identitytoken`), exchanged at the token endpoint.
  std::string identity_token;
};

// Finds the entry of a docker config document ({"auths": {KEY: {...}}}) for
// `registry` ("docker.io", "localhost:5000"). Keys may be bare hosts or URLs
// ("https://index.docker.io/v1/"); an entry gives "username"/"password" or
// "auth" (base64 of "user:password"). Returns nullopt when no entry matches;
// a malformed document is an error.
absl::StatusOr<std::optional<RegistryCredentials>> FindDockerConfigCredentials(absl::string_view docker_config_json,
                                                                              absl::string_view registry);

}  // namespace kelpie::image
