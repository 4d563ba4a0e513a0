// A normalized image reference split into what the distribution API needs:
// the registry host, the repository path and the tag or digest to resolve.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kelpie::image {

struct RegistryReference {
  std::string normalized;  // docker.io/library/busybox:latest
  std::string registry;    // docker.io, localhost:5000, quay.io
  std::string repository;  // library/busybox
  std::string tag;         // may be empty when a digest is given
  std::string digest;      // sha256:..., or empty

  // What GET /v2/<repository>/manifests/<...> takes: the digest if any, else the tag.
  const std::string& ManifestReference() const { return digest.empty() ? tag : digest; }
  // The host serving the API: Docker Hub's "docker.io" is registry-1.docker.io.
  std::string ApiHost() const;
};

// Normalizes `reference` ("busybox", "localhost:5000/app@sha256:...") and splits it.
absl::StatusOr<RegistryReference> ParseRegistryReference(absl::string_view reference);

}  // namespace kelpie::image
