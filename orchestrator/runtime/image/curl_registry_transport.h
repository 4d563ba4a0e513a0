// RegistryTransport over libcurl: HTTPS verified against the system trust
// store (or a given CA file), plain HTTP only when the caller allows it,
// redirects followed (blob downloads are often redirected to storage), a
// stalled transfer ends after `stall_timeout` without progress.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "orchestrator/runtime/image/registry_transport.h"

namespace kelpie::image {

struct CurlTransportOptions {
  // Allow http:// URLs (and redirects to them). Off: only https://.
  bool allow_plain_http = false;
  // Extra CA bundle (PEM file) instead of the system trust store.
  std::string ca_file;
  std::chrono::seconds connect_timeout{15};
  std::chrono::seconds stall_timeout{60};
  std::string user_agent = "kelpie";
};

class CurlRegistryTransport : public RegistryTransport {
 public:
  explicit CurlRegistryTransport(CurlTransportOptions options);
  ~CurlRegistryTransport() override;

  absl::StatusOr<RegistryHttpResponse> Send(
      const RegistryHttpRequest& request,
      const std::function<absl::Status(absl::string_view)>* sink = nullptr) override;

 private:
  const CurlTransportOptions options_;
};

}  // namespace kelpie::image
