#include "orchestrator/runtime/image/image_puller.h"

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "orchestrator/runtime/image/content_store.h"
#include "orchestrator/runtime/image/curl_registry_transport.h"
#include "orchestrator/runtime/image/digest.h"
#include "orchestrator/runtime/image/image_store.h"
#include "orchestrator/runtime/image/registry_client.h"
#include "orchestrator/runtime/image/registry_reference.h"

namespace kelpie::image {
namespace {

bool IsIndex(const FetchedManifest& m, const nlohmann::json& doc) {
  return m.media_type == "application/vnd.oci.image.index.v1+json" ||
         m.media_type == "application/vnd.docker.distribution.manifest.list.v2+json" ||
         (m.media_type.empty() && doc.contains("manifests"));
}

}  // namespace

ImagePuller::ImagePuller(ImageStore& store, ImagePullerOptions options, TransportFactory transports)
    : store_(store), options_(std::move(options)), transports_(std::move(transports)) {
  if (!transports_) {
    std::string ca_file = options_.ca_file;
    transports_ = [ca_file](bool plain_http) -> std::unique_ptr<RegistryTransport> {
      CurlTransportOptions o;
      o.allow_plain_http = plain_http;
      o.ca_file = ca_file;
      return std::make_unique<CurlRegistryTransport>(o);
    };
  }
}

std::shared_ptr<std::mutex> ImagePuller::LockFor(const std::string& reference) {
  std::lock_guard<std::mutex> lock(mu_);
  std::shared_ptr<std::mutex> m = in_flight_[reference].lock();
  if (!m) {
    m = std::make_shared<std::mutex>();
    in_flight_[reference] = m;
  }
  // Forget entries nobody holds any more.
  for (auto it = in_flight_.begin(); it != in_flight_.end();) {
    it = it->second.expired() ? in_flight_.erase(it) : std::next(it);
  }
  return m;
}

absl::StatusOr<ImageRecord> ImagePuller::Pull(absl::string_view reference,
                                              const std::optional<RegistryCredentials>& credentials) {
  KELPIE_ASSIGN_OR_RETURN(RegistryReference ref, ParseRegistryReference(reference));
  std::shared_ptr<std::mutex> pull_lock = LockFor(ref.normalized);
  std::lock_guard<std::mutex> serialize(*pull_lock);

  const bool plain_http = IsInsecure(ref.registry);
  std::unique_ptr<RegistryTransport> transport = transports_(plain_http);
  RegistryClient client(*transport, ref.ApiHost(), plain_http, credentials);
  const std::string name = absl::StrCat(ref.registry, "/", ref.repository);

  KELPIE_ASSIGN_OR_RETURN(FetchedManifest manifest, client.GetManifest(ref.repository, ref.ManifestReference()));
  if (!ref.digest.empty() && manifest.digest != ref.digest) {
    return absl::DataLossError(absl::StrCat("manifest ", ref.normalized, " hashes to ", manifest.digest,
                                            " instead of the digest asked for"));
  }
  // Follow indexes (nested ones too) to the linux/amd64 manifest.
  for (int depth = 0;; ++depth) {
    nlohmann::json doc = nlohmann::json::parse(manifest.body, nullptr, false);
    if (!IsIndex(manifest, doc)) break;
    if (depth >= 4) return absl::InvalidArgumentError(absl::StrCat("image index of ", ref.normalized, " nests too deeply"));
    std::string chosen;
    std::vector<std::string> seen;
    for (const auto& m : doc.value("manifests", nlohmann::json::array())) {
      if (!m.is_object()) continue;
      const nlohmann::json platform = m.value("platform", nlohmann::json::object());
      std::string os = platform.value("os", ""), arch = platform.value("architecture", "");
      if (os == "linux" && arch == "amd64") {
        chosen = m.value("digest", "");
        break;
      }
      seen.push_back(absl::StrCat(os, "/", arch));
    }
    if (chosen.empty()) {
      return absl::NotFoundError(absl::StrCat("image ", ref.normalized, " has no linux/amd64 image (it has: ",
                                              seen.empty() ? "nothing" : absl::StrJoin(seen, ", "), ")"));
    }
    KELPIE_RETURN_IF_ERROR(ValidateDigest(chosen));
    KELPIE_ASSIGN_OR_RETURN(manifest, client.GetManifest(ref.repository, chosen));
    if (manifest.digest != chosen) {
      return absl::DataLossError(absl::StrCat("manifest ", name, "@", chosen, " is corrupt: its content hashes to ",
                                              manifest.digest));
    }
  }

  nlohmann::json doc = nlohmann::json::parse(manifest.body, nullptr, false);
  struct Blob {
    std::string digest;
    int64_t size;
  };
  std::vector<Blob> blobs;
  try {
    const auto& config = doc.at("config");
    blobs.push_back({config.at("digest").get<std::string>(), config.value("size", int64_t{-1})});
    for (const auto& layer : doc.at("layers")) {
      if (absl::StrContains(layer.value("mediaType", ""), "zstd")) {
        return absl::UnimplementedError(absl::StrCat("image ", ref.normalized, " has a zstd-compressed layer (",
                                                     layer.value("digest", ""),
                                                     "); only gzip and uncompressed layers are supported"));
      }
      blobs.push_back({layer.at("digest").get<std::string>(), layer.value("size", int64_t{-1})});
    }
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("manifest ", manifest.digest, " of ", ref.normalized,
                                                   " is malformed: ", e.what()));
  }

  ContentStore& content = store_.content();
  ImageStore::Pins pins(store_);
  pins.Pin(manifest.digest);
  KELPIE_RETURN_IF_ERROR(content.WriteString(manifest.body, manifest.digest).status());
  uint64_t downloaded = 0;
  for (const Blob& blob : blobs) {
    KELPIE_RETURN_IF_ERROR(ValidateDigest(blob.digest));
    pins.Pin(blob.digest);
    if (content.Contains(blob.digest)) continue;
    KELPIE_ASSIGN_OR_RETURN(std::unique_ptr<BlobWriter> writer, content.NewWriter());
    KELPIE_RETURN_IF_ERROR(client.FetchBlob(ref.repository, blob.digest, [&](absl::string_view data) {
      if (blob.size >= 0 && writer->size() + data.size() > static_cast<uint64_t>(blob.size)) {
        return absl::DataLossError(absl::StrCat("blob ", blob.digest, " of ", name, " is longer than the ",
                                                blob.size, " bytes its descriptor says"));
      }
      return writer->Append(data.data(), data.size());
    }));
    absl::StatusOr<BlobInfo> info = writer->Commit(blob.digest, blob.size);
    if (!info.ok()) {
      return absl::Status(info.status().code(), absl::StrCat("pulling ", ref.normalized, ": ", info.status().message()));
    }
    downloaded += info->size;
  }
  KELPIE_ASSIGN_OR_RETURN(ImageRecord record, store_.AddImage(ref.normalized, manifest.digest));
  spdlog::info("pulled {} ({}, {} bytes downloaded)", ref.normalized, manifest.digest, downloaded);
  return record;
}

}  // namespace kelpie::image
