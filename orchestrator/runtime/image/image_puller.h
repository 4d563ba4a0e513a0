// Pulls images from registries into the ImageStore over the OCI
// distribution API: resolves the reference (Docker Hub defaults), follows
// an index / manifest list to its linux/amd64 manifest, downloads the
// config and the layers the store lacks straight into the content store
// (hashed while written, refused on a digest or size mismatch) and records
// the reference. Safe for concurrent use; pulls of the same reference wait
// for each other.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "orchestrator/runtime/image/image_record.h"
#include "orchestrator/runtime/image/registry_credentials.h"
#include "orchestrator/runtime/image/registry_transport.h"

namespace kelpie::image {

class ImageStore;

struct ImagePullerOptions {
  // host[:port] of registries spoken to over plain HTTP (and whose token
  // endpoints may be plain HTTP too). Everything else is HTTPS only.
  std::set<std::string> insecure_registries;
  // PEM bundle trusted instead of the system store ("" = system store).
  std::string ca_file;
};

class ImagePuller {
 public:
  // Makes the transport for one registry (tests inject fakes).
  using TransportFactory = std::function<std::unique_ptr<RegistryTransport>(bool plain_http)>;

  // `store` must outlive the puller. Transports are libcurl by default.
  ImagePuller(ImageStore& store, ImagePullerOptions options, TransportFactory transports = nullptr);

  // Pulls `reference` ("busybox", "localhost:5000/app:1", "x@sha256:...").
  // `credentials` are used when the registry asks for them.
  absl::StatusOr<ImageRecord> Pull(absl::string_view reference,
                                   const std::optional<RegistryCredentials>& credentials = std::nullopt);

  bool IsInsecure(const std::string& registry) const { return options_.insecure_registries.count(registry) > 0; }

 private:
  std::shared_ptr<std::mutex> LockFor(const std::string& reference);

  ImageStore& store_;
  const ImagePullerOptions options_;
  TransportFactory transports_;
  std::mutex mu_;
  std::map<std::string, std::weak_ptr<std::mutex>> in_flight_;
};

}  // namespace kelpie::image
