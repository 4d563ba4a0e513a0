// One repository of one registry, spoken to over the OCI distribution API
// (v2): manifests by tag or digest with the Accept headers for OCI and
// Docker v2 manifests and indexes, blobs streamed to a sink. Auth follows
// the registry's 401 challenge: `Bearer realm=...,service=...,scope=...`
// sends the client to the token endpoint (anonymously, or with the
// credentials as basic auth) and retries with the token; `Basic` retries
// with the credentials.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "orchestrator/runtime/image/registry_credentials.h"
#include "orchestrator/runtime/image/registry_transport.h"

namespace kelpie::image {

struct FetchedManifest {
  std::string media_type;  // from the document, else the Content-Type
  std::string body;
  std::string digest;  // sha256 of body
};

// The parameters of a WWW-Authenticate challenge ("Bearer" / "Basic").
struct AuthChallenge {
  std::string scheme;  // lower case
  std::string realm, service, scope;
};
// Parses `Bearer realm="...",service="...",scope="repository:a/b:pull,push"`.
std::optional<AuthChallenge> ParseAuthChallenge(absl::string_view header);

class RegistryClient {
 public:
  // `api_host` is host[:port]; `plain_http` speaks http:// to it (insecure
  // registries only). `transport` must outlive the client.
  RegistryClient(RegistryTransport& transport, std::string api_host, bool plain_http,
                 std::optional<RegistryCredentials> credentials);

  // GET /v2/<repository>/manifests/<reference>. Schema 1 manifests are refused.
  absl::StatusOr<FetchedManifest> GetManifest(const std::string& repository, const std::string& reference);
  // GET /v2/<repository>/blobs/<digest>, the body handed to `sink` as it arrives.
  absl::Status FetchBlob(const std::string& repository, const std::string& digest,
                         const std::function<absl::Status(absl::string_view)>& sink);

  // Sends a request to this registry with the auth dance (the scope asked
  // for is `repository:<repository>:<actions>`). For tests that push too.
  absl::StatusOr<RegistryHttpResponse> Send(RegistryHttpRequest request, const std::string& repository,
                                            const std::string& actions,
                                            const std::function<absl::Status(absl::string_view)>* sink = nullptr);

  std::string BaseUrl() const;

 private:
  absl::Status Authenticate(const AuthChallenge& challenge, const std::string& repository,
                            const std::string& actions);
  void AddAuthorization(RegistryHttpRequest& request) const;

  RegistryTransport& transport_;
  const std::string api_host_;
  const bool plain_http_;
  const std::optional<RegistryCredentials> credentials_;
  std::string bearer_token_;
  bool use_basic_ = false;
};

// The message a registry's error document carries ({"errors":[{"code","message"}]}),
// or a short form of the body.
std::string RegistryErrorMessage(const RegistryHttpResponse& response);

}  // namespace kelpie::image
