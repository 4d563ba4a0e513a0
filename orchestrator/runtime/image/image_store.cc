#include "orchestrator/runtime/image/image_store.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/files.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "orchestrator/runtime/image/image_archive.h"
#include "orchestrator/runtime/image/image_reference.h"
#include "orchestrator/runtime/image/layer_unpacker.h"
#include "orchestrator/runtime/image/tar_reader.h"

namespace kelpie::image {
namespace {

constexpr uint64_t kMaxDocumentSize = 4 << 20;  // manifests, indexes, configs

constexpr const char* kOciManifest = "application/vnd.oci.image.manifest.v1+json";
constexpr const char* kOciIndex = "application/vnd.oci.image.index.v1+json";
constexpr const char* kOciConfig = "application/vnd.oci.image.config.v1+json";
constexpr const char* kOciLayer = "application/vnd.oci.image.layer.v1.tar";
constexpr const char* kOciLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip";
constexpr const char* kDockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
constexpr const char* kDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json";

bool IsIndexMediaType(absl::string_view t) { return t == kOciIndex || t == kDockerManifestList; }

std::string BlobMember(absl::string_view digest) { return absl::StrCat("blobs/sha256/", DigestHex(digest)); }

absl::StatusOr<nlohmann::json> ParseJsonObject(absl::string_view text, absl::string_view what) {
  nlohmann::json doc = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is not a JSON object"));
  }
  return doc;
}

absl::Status RemoveTree(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot remove ", path, ": ", ec.message()));
  return absl::OkStatus();
}

}  // namespace

ImageStore::Pins::~Pins() {
  std::lock_guard<std::mutex> lock(store_.mu_);
  for (const std::string& d : digests_) store_.pinned_.erase(store_.pinned_.find(d));
}

void ImageStore::Pins::Pin(const std::string& digest) {
  std::lock_guard<std::mutex> lock(store_.mu_);
  store_.pinned_.insert(digest);
  digests_.push_back(digest);
}

absl::StatusOr<ImageRecord> ImageStore::AddImage(absl::string_view reference, const std::string& manifest_digest) {
  KELPIE_ASSIGN_OR_RETURN(std::string normalized, NormalizeReference(reference));
  KELPIE_RETURN_IF_ERROR(ValidateDigest(manifest_digest));
  KELPIE_ASSIGN_OR_RETURN(ImageRecord record, RecordFromManifest(manifest_digest));
  record.reference = normalized;
  std::lock_guard<std::mutex> lock(mu_);
  KELPIE_RETURN_IF_ERROR(index_.Put(record));
  return record;
}

std::string UnpackedImage::OverlayLowerDirs() const {
  std::vector<std::string> top_first(layer_dirs.rbegin(), layer_dirs.rend());
  return absl::StrJoin(top_first, ":");
}

absl::StatusOr<std::unique_ptr<ImageStore>> ImageStore::Open(const std::string& data_dir) {
  std::string root = data_dir + "/images";
  KELPIE_RETURN_IF_ERROR(MakeDirectories(root + "/layers", 0755));
  KELPIE_ASSIGN_OR_RETURN(std::unique_ptr<ContentStore> content, ContentStore::Open(root));
  KELPIE_ASSIGN_OR_RETURN(ReferenceIndex index, ReferenceIndex::Load(root + "/repositories.json"));
  return std::unique_ptr<ImageStore>(new ImageStore(root, std::move(content), std::move(index)));
}

std::string ImageStore::LayerDir(absl::string_view diff_id) const {
  return absl::StrCat(root_, "/layers/", DigestHex(diff_id));
}

absl::Status ImageStore::CopyBlob(const ImageArchive& archive, const std::string& digest, int64_t size,
                                  Pins& pins) {
  KELPIE_RETURN_IF_ERROR(ValidateDigest(digest));
  pins.Pin(digest);
  if (content_->Contains(digest)) return absl::OkStatus();
  absl::StatusOr<std::unique_ptr<FileSource>> member = archive.OpenMember(BlobMember(digest));
  if (!member.ok()) {
    return absl::NotFoundError(absl::StrCat("image archive ", archive.name(), " lacks blob ", digest));
  }
  return content_->Write(**member, digest, size).status();
}

absl::StatusOr<std::string> ImageStore::ChooseManifest(const ImageArchive& archive, const std::string& digest,
                                                       const std::string& media_type, int depth) {
  KELPIE_RETURN_IF_ERROR(ValidateDigest(digest));
  if (depth > 4) return absl::InvalidArgumentError(absl::StrCat("image index ", digest, " nests too deeply"));
  absl::StatusOr<std::string> text = archive.ReadSmall(BlobMember(digest), kMaxDocumentSize);
  if (!text.ok()) return absl::NotFoundError(absl::StrCat("image archive ", archive.name(), " lacks blob ", digest));
  if (std::string actual = Sha256Digest(*text); actual != digest) {
    return absl::DataLossError(absl::StrCat("blob ", digest, " in ", archive.name(), " is corrupt: its content hashes to ", actual));
  }
  KELPIE_ASSIGN_OR_RETURN(nlohmann::json doc, ParseJsonObject(*text, absl::StrCat("document ", digest)));
  std::string type = media_type.empty() ? doc.value("mediaType", "") : media_type;
  bool is_index = IsIndexMediaType(type) || (type.empty() && doc.contains("manifests"));
  if (!is_index) return digest;
  std::vector<std::string> seen;
  for (const auto& m : doc.value("manifests", nlohmann::json::array())) {
    const nlohmann::json platform = m.value("platform", nlohmann::json::object());
    std::string os = platform.value("os", ""), arch = platform.value("architecture", "");
    if (os == "linux" && arch == "amd64") {
      return ChooseManifest(archive, m.value("digest", ""), m.value("mediaType", ""), depth + 1);
    }
    seen.push_back(absl::StrCat(os, "/", arch));
  }
  return absl::NotFoundError(absl::StrCat("image index ", digest, " has no linux/amd64 image (it has: ",
                                          seen.empty() ? "nothing" : absl::StrJoin(seen, ", "), ")"));
}

absl::StatusOr<ImageRecord> ImageStore::ImportManifest(const ImageArchive& archive, const std::string& digest,
                                                       Pins& pins) {
  KELPIE_RETURN_IF_ERROR(CopyBlob(archive, digest, -1, pins));
  return RecordFromManifest(digest);
}

// Reads a stored manifest, checks its config and layers are stored and
// consistent, and describes the image.
absl::StatusOr<ImageRecord> ImageStore::RecordFromManifest(const std::string& manifest_digest) {
  KELPIE_ASSIGN_OR_RETURN(std::string text, content_->ReadVerified(manifest_digest, kMaxDocumentSize));
  KELPIE_ASSIGN_OR_RETURN(nlohmann::json manifest,
                          ParseJsonObject(text, absl::StrCat("manifest ", manifest_digest)));
  ImageRecord record;
  record.manifest_digest = manifest_digest;
  try {
    record.config_digest = manifest.at("config").at("digest").get<std::string>();
    for (const auto& layer : manifest.at("layers")) {
      std::string type = layer.value("mediaType", "");
      if (absl::StrContains(type, "zstd")) {
        return absl::UnimplementedError(absl::StrCat("layer ", layer.value("digest", ""), " of manifest ",
                                                     manifest_digest, " is zstd-compressed; only gzip and "
                                                     "uncompressed layers are supported"));
      }
      record.layer_digests.push_back(layer.at("digest").get<std::string>());
    }
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("manifest ", manifest_digest, " is malformed: ", e.what()));
  }
  KELPIE_ASSIGN_OR_RETURN(std::string config_text, content_->ReadVerified(record.config_digest, kMaxDocumentSize));
  KELPIE_ASSIGN_OR_RETURN(ImageConfig config, ParseImageConfig(config_text, record.config_digest));
  if (config.diff_ids.size() != record.layer_digests.size()) {
    return absl::InvalidArgumentError(absl::StrCat("manifest ", manifest_digest, " lists ",
                                                   record.layer_digests.size(), " layers but config ",
                                                   record.config_digest, " has ", config.diff_ids.size(),
                                                   " diff_ids"));
  }
  record.diff_ids = config.diff_ids;
  record.created = config.created;
  record.size = config_text.size();
  for (const std::string& layer : record.layer_digests) {
    KELPIE_ASSIGN_OR_RETURN(uint64_t size, content_->SizeOf(layer));
    record.size += size;
  }
  record.imported_unix = static_cast<int64_t>(std::time(nullptr));
  return record;
}

absl::StatusOr<std::vector<ImageRecord>> ImageStore::ImportOciLayout(const ImageArchive& archive,
                                                                     const std::string& name, Pins& pins) {
  KELPIE_ASSIGN_OR_RETURN(std::string index_text, archive.ReadSmall("index.json", kMaxDocumentSize));
  KELPIE_ASSIGN_OR_RETURN(nlohmann::json index,
                          ParseJsonObject(index_text, absl::StrCat(archive.name(), ": index.json")));
  std::vector<std::pair<std::vector<std::string>, std::string>> images;  // names, manifest digest
  for (const auto& descriptor : index.value("manifests", nlohmann::json::array())) {
    if (!descriptor.is_object()) continue;
    KELPIE_ASSIGN_OR_RETURN(std::string manifest,
                            ChooseManifest(archive, descriptor.value("digest", ""),
                                           descriptor.value("mediaType", ""), 0));
    std::vector<std::string> names;
    const nlohmann::json annotations = descriptor.value("annotations", nlohmann::json::object());
    // containerd and docker put the full name here; the OCI key may hold only a tag.
    for (const char* key : {"io.containerd.image.name", "org.opencontainers.image.ref.name"}) {
      std::string value = annotations.value(key, "");
      if (!value.empty()) {
        names.push_back(value);
        break;
      }
    }
    images.emplace_back(names, manifest);
  }
  if (images.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("image archive ", archive.name(), ": index.json lists no images"));
  }
  if (!name.empty()) {
    if (images.size() != 1) {
      return absl::InvalidArgumentError(absl::StrCat("image archive ", archive.name(), " holds ", images.size(),
                                                     " images; a name can only be given to one"));
    }
    images[0].first = {name};
  }
  std::vector<ImageRecord> out;
  for (auto& [names, manifest] : images) {
    if (names.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("image ", manifest, " in ", archive.name(),
                                                     " has no name (org.opencontainers.image.ref.name); "
                                                     "give one with --name"));
    }
    KELPIE_ASSIGN_OR_RETURN(std::string reference, NormalizeReference(names[0]));
    // Copy the blobs the manifest needs before reading it back.
    KELPIE_RETURN_IF_ERROR(CopyBlob(archive, manifest, -1, pins));
    KELPIE_ASSIGN_OR_RETURN(std::string manifest_text, content_->ReadVerified(manifest, kMaxDocumentSize));
    KELPIE_ASSIGN_OR_RETURN(nlohmann::json doc, ParseJsonObject(manifest_text, absl::StrCat("manifest ", manifest)));
    try {
      const auto& config = doc.at("config");
      KELPIE_RETURN_IF_ERROR(CopyBlob(archive, config.at("digest").get<std::string>(),
                                      config.value("size", int64_t{-1}), pins));
      for (const auto& layer : doc.at("layers")) {
        KELPIE_RETURN_IF_ERROR(CopyBlob(archive, layer.at("digest").get<std::string>(),
                                        layer.value("size", int64_t{-1}), pins));
      }
    } catch (const nlohmann::json::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat("manifest ", manifest, " is malformed: ", e.what()));
    }
    KELPIE_ASSIGN_OR_RETURN(ImageRecord record, RecordFromManifest(manifest));
    record.reference = reference;
    out.push_back(std::move(record));
  }
  return out;
}

absl::StatusOr<std::vector<ImageRecord>> ImageStore::ImportDockerArchive(const ImageArchive& archive,
                                                                         const std::string& name, Pins& pins) {
  KELPIE_ASSIGN_OR_RETURN(std::string text, archive.ReadSmall("manifest.json", kMaxDocumentSize));
  nlohmann::json doc = nlohmann::json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_array() || doc.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("image archive ", archive.name(),
                                                   ": manifest.json is not a non-empty JSON array"));
  }
  if (!name.empty() && doc.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat("image archive ", archive.name(), " holds ", doc.size(),
                                                   " images; a name can only be given to one"));
  }
  std::vector<ImageRecord> out;
  for (const auto& entry : doc) {
    std::string config_member;
    std::vector<std::string> layer_members, tags;
    try {
      config_member = entry.at("Config").get<std::string>();
      layer_members = entry.at("Layers").get<std::vector<std::string>>();
      if (entry.contains("RepoTags") && entry["RepoTags"].is_array()) {
        tags = entry["RepoTags"].get<std::vector<std::string>>();
      }
    } catch (const nlohmann::json::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat("image archive ", archive.name(),
                                                     ": manifest.json entry is malformed: ", e.what()));
    }
    if (!name.empty()) tags = {name};
    if (tags.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("image with config ", config_member, " in ", archive.name(),
                                                     " has no RepoTags; give it a name with --name"));
    }
    // The config and layers get their digests from their content; the
    // OCI manifest that docker-save archives lack is written here.
    KELPIE_ASSIGN_OR_RETURN(std::string config_text, archive.ReadSmall(config_member, kMaxDocumentSize));
    std::string config_digest = Sha256Digest(config_text);
    pins.Pin(config_digest);
    KELPIE_RETURN_IF_ERROR(content_->WriteString(config_text, config_digest).status());
    nlohmann::json layers = nlohmann::json::array();
    for (const std::string& member : layer_members) {
      KELPIE_ASSIGN_OR_RETURN(std::unique_ptr<FileSource> head, archive.OpenMember(member));
      char magic[2];
      KELPIE_ASSIGN_OR_RETURN(size_t n, head->Read(magic, sizeof(magic)));
      bool gzipped = LooksGzipped(absl::string_view(magic, n));
      KELPIE_ASSIGN_OR_RETURN(std::unique_ptr<FileSource> source, archive.OpenMember(member));
      KELPIE_ASSIGN_OR_RETURN(BlobInfo blob, content_->Write(*source, ""));
      pins.Pin(blob.digest);
      layers.push_back({{"mediaType", gzipped ? kOciLayerGzip : kOciLayer},
                        {"digest", blob.digest},
                        {"size", blob.size}});
    }
    nlohmann::json manifest = {
        {"schemaVersion", 2},
        {"mediaType", kOciManifest},
        {"config", {{"mediaType", kOciConfig}, {"digest", config_digest}, {"size", config_text.size()}}},
        {"layers", layers}};
    std::string manifest_text = manifest.dump();
    std::string manifest_digest = Sha256Digest(manifest_text);
    pins.Pin(manifest_digest);
    KELPIE_RETURN_IF_ERROR(content_->WriteString(manifest_text, manifest_digest).status());
    KELPIE_ASSIGN_OR_RETURN(ImageRecord record, RecordFromManifest(manifest_digest));
    for (const std::string& tag : tags) {
      KELPIE_ASSIGN_OR_RETURN(record.reference, NormalizeReference(tag));
      out.push_back(record);
    }
  }
  return out;
}

absl::StatusOr<std::vector<ImageRecord>> ImageStore::Import(const std::string& archive_path,
                                                            const std::string& name) {
  KELPIE_ASSIGN_OR_RETURN(std::unique_ptr<ImageArchive> archive, ImageArchive::Open(archive_path, content_->temp_dir()));
  Pins pins(*this);
  std::vector<ImageRecord> records;
  if (archive->Has("index.json") && archive->Has("oci-layout")) {
    KELPIE_ASSIGN_OR_RETURN(records, ImportOciLayout(*archive, name, pins));
  } else if (archive->Has("manifest.json")) {
    KELPIE_ASSIGN_OR_RETURN(records, ImportDockerArchive(*archive, name, pins));
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        archive_path, " is neither an OCI image layout archive (oci-layout, index.json) nor a docker-save "
                      "archive (manifest.json)"));
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (const ImageRecord& record : records) KELPIE_RETURN_IF_ERROR(index_.Put(record));
  return records;
}

std::vector<ImageRecord> ImageStore::List() const {
  std::lock_guard<std::mutex> lock(mu_);
  return index_.All();
}

absl::StatusOr<ImageRecord> ImageStore::Get(absl::string_view reference) const {
  KELPIE_ASSIGN_OR_RETURN(std::string normalized, NormalizeReference(reference));
  std::lock_guard<std::mutex> lock(mu_);
  std::optional<ImageRecord> record = index_.Find(normalized);
  if (!record) return absl::NotFoundError(absl::StrCat("image ", normalized, " is not in the store"));
  return *record;
}

absl::StatusOr<ImageConfig> ImageStore::Config(absl::string_view reference) const {
  KELPIE_ASSIGN_OR_RETURN(ImageRecord record, Get(reference));
  KELPIE_ASSIGN_OR_RETURN(std::string text, content_->ReadVerified(record.config_digest, kMaxDocumentSize));
  return ParseImageConfig(text, record.config_digest);
}

absl::Status ImageStore::UnpackLayer(const std::string& layer_digest, const std::string& diff_id) {
  std::string temp = content_->temp_dir() + "/unpack-XXXXXX";
  if (::mkdtemp(temp.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("cannot create a temporary folder in ", content_->temp_dir(), ": ",
                                            std::strerror(errno)));
  }
  auto cleanup_on_error = [&](absl::Status s) {
    if (!s.ok()) {
      if (absl::Status r = RemoveTree(temp); !r.ok()) spdlog::warn("{}", r.message());
    }
    return s;
  };
  // mkdtemp makes 0700; a lower layer's root must be readable by any container user.
  ::chmod(temp.c_str(), 0755);
  absl::Status status = [&]() -> absl::Status {
    KELPIE_ASSIGN_OR_RETURN(std::unique_ptr<FileSource> blob, content_->OpenBlob(layer_digest));
    char magic[2];
    KELPIE_ASSIGN_OR_RETURN(size_t n, blob->Read(magic, sizeof(magic)));
    PrefixedSource raw(std::string(magic, n), *blob);
    std::unique_ptr<GzipSource> gzip;
    ByteSource* uncompressed = &raw;
    if (LooksGzipped(absl::string_view(magic, n))) {
      gzip = std::make_unique<GzipSource>(raw, layer_digest);
      uncompressed = gzip.get();
    }
    HashingSource hashing(*uncompressed);
    TarReader reader(hashing, absl::StrCat("layer ", layer_digest));
    LayerUnpacker unpacker(temp, layer_digest, {.privileged = ::geteuid() == 0});
    KELPIE_ASSIGN_OR_RETURN(UnpackStats stats, unpacker.Unpack(reader));
    KELPIE_RETURN_IF_ERROR(Drain(hashing));  // the diff_id covers the end blocks too
    std::string actual = hashing.FinishDigest();
    if (actual != diff_id) {
      return absl::DataLossError(absl::StrCat("layer ", layer_digest, " uncompresses to ", actual,
                                              " but the image config expects diff_id ", diff_id));
    }
    spdlog::debug("unpacked layer {}: {} files, {} dirs, {} symlinks, {} whiteouts", layer_digest,
                  stats.regular_files, stats.directories, stats.symlinks, stats.whiteouts);
    std::string final_dir = LayerDir(diff_id);
    if (::rename(temp.c_str(), final_dir.c_str()) != 0) {
      return absl::InternalError(absl::StrCat("cannot move unpacked layer to ", final_dir, ": ", std::strerror(errno)));
    }
    return absl::OkStatus();
  }();
  return cleanup_on_error(status);
}

absl::StatusOr<UnpackedImage> ImageStore::Prepare(absl::string_view reference) {
  KELPIE_ASSIGN_OR_RETURN(ImageRecord record, Get(reference));
  std::lock_guard<std::mutex> unpack_lock(unpack_mu_);
  KELPIE_ASSIGN_OR_RETURN(std::string text, content_->ReadVerified(record.config_digest, kMaxDocumentSize));
  UnpackedImage image;
  image.reference = record.reference;
  image.manifest_digest = record.manifest_digest;
  KELPIE_ASSIGN_OR_RETURN(image.config, ParseImageConfig(text, record.config_digest));
  if (image.config.diff_ids.size() != record.layer_digests.size()) {
    return absl::DataLossError(absl::StrCat("image ", record.reference, ": config and manifest disagree on layers"));
  }
  for (size_t i = 0; i < record.layer_digests.size(); ++i) {
    const std::string& diff_id = image.config.diff_ids[i];
    std::string dir = LayerDir(diff_id);
    if (!PathExists(dir)) KELPIE_RETURN_IF_ERROR(UnpackLayer(record.layer_digests[i], diff_id));
    image.layer_dirs.push_back(dir);
  }
  return image;
}

absl::StatusOr<GarbageCollection> ImageStore::Remove(absl::string_view reference) {
  KELPIE_ASSIGN_OR_RETURN(std::string normalized, NormalizeReference(reference));
  std::lock_guard<std::mutex> unpack_lock(unpack_mu_);
  std::lock_guard<std::mutex> lock(mu_);
  KELPIE_ASSIGN_OR_RETURN(bool removed, index_.Remove(normalized));
  if (!removed) return absl::NotFoundError(absl::StrCat("image ", normalized, " is not in the store"));
  return CollectGarbageLocked();
}

absl::StatusOr<GarbageCollection> ImageStore::CollectGarbage() {
  std::lock_guard<std::mutex> unpack_lock(unpack_mu_);
  std::lock_guard<std::mutex> lock(mu_);
  return CollectGarbageLocked();
}

absl::StatusOr<GarbageCollection> ImageStore::CollectGarbageLocked() {
  GarbageCollection gc;
  std::set<std::string> live = index_.LiveBlobs();
  live.insert(pinned_.begin(), pinned_.end());
  KELPIE_ASSIGN_OR_RETURN(std::vector<std::string> blobs, content_->List());
  for (const std::string& digest : blobs) {
    if (live.count(digest)) continue;
    absl::StatusOr<uint64_t> size = content_->SizeOf(digest);
    KELPIE_RETURN_IF_ERROR(content_->Delete(digest));
    ++gc.blobs_removed;
    if (size.ok()) gc.bytes_freed += *size;
  }
  std::set<std::string> live_layers = index_.LiveDiffIds();
  std::string layers_dir = root_ + "/layers";
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(layers_dir, ec)) {
    std::string diff_id = "sha256:" + entry.path().filename().string();
    if (!ValidateDigest(diff_id).ok() || live_layers.count(diff_id)) continue;
    KELPIE_RETURN_IF_ERROR(RemoveTree(entry.path().string()));
    ++gc.layers_removed;
  }
  if (ec) return absl::InternalError(absl::StrCat("cannot list ", layers_dir, ": ", ec.message()));
  return gc;
}

}  // namespace kelpie::image
