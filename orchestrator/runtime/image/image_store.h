// The node's image store, under <data-dir>/images:
//   blobs/sha256/<hex>      manifests, configs and layers, content-addressed
//   repositories.json       reference -> image table (atomic rewrites)
//   layers/<diff-id hex>/   unpacked layers, shared by every container
//   tmp/                    in-flight writes (same file system: atomic renames)
//
// Images enter through Import (OCI image layout archives and docker-save
// archives); the runtime asks Prepare for the overlayfs lower directories
// of an image. Safe for concurrent use by several threads of one process.
#pragma once

#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "orchestrator/runtime/image/content_store.h"
#include "orchestrator/runtime/image/image_config.h"
#include "orchestrator/runtime/image/image_record.h"
#include "orchestrator/runtime/image/reference_index.h"

namespace kelpie::image {

class ImageArchive;

// An image ready to become a container's root file system.
struct UnpackedImage {
  std::string reference;
  std::string manifest_digest;
  ImageConfig config;
  std::vector<std::string> layer_dirs;  // bottom layer first

  // overlayfs "lowerdir=" value: the top layer comes first there.
  std::string OverlayLowerDirs() const;
};

struct GarbageCollection {
  uint64_t blobs_removed = 0;
  uint64_t bytes_freed = 0;
  uint64_t layers_removed = 0;
};

class ImageStore {
 public:
  static constexpr const char* kDefaultDataDir = "/var/lib/kelpie";

  // Opens (creating if needed) the store in `data_dir`/images.
  static absl::StatusOr<std::unique_ptr<ImageStore>> Open(const std::string& data_dir);

  // Imports every image of an archive; `name` (optional) names the image
  // when the archive holds exactly one. Returns the records stored.
  absl::StatusOr<std::vector<ImageRecord>> Import(const std::string& archive_path,
                                                  const std::string& name = "");

  std::vector<ImageRecord> List() const;
  // `reference` as users write it ("busybox", "busybox:1.36", full names).
  absl::StatusOr<ImageRecord> Get(absl::string_view reference) const;
  absl::StatusOr<ImageConfig> Config(absl::string_view reference) const;

  // Unpacks (once, cached) and verifies each layer of the image.
  absl::StatusOr<UnpackedImage> Prepare(absl::string_view reference);

  // Removes the reference, then collects blobs and layers no image needs.
  absl::StatusOr<GarbageCollection> Remove(absl::string_view reference);
  absl::StatusOr<GarbageCollection> CollectGarbage();

  // Blobs a writer (import, pull) has stored or relies on, protected from
  // garbage collection until it has recorded its references (or failed).
  class Pins {
   public:
    explicit Pins(ImageStore& store) : store_(store) {}
    ~Pins();
    Pins(const Pins&) = delete;
    Pins& operator=(const Pins&) = delete;
    void Pin(const std::string& digest);

   private:
    ImageStore& store_;
    std::vector<std::string> digests_;
  };

  // Records `reference` for a manifest whose config and layers are already
  // stored (a pull); the caller pins those blobs until this returns.
  absl::StatusOr<ImageRecord> AddImage(absl::string_view reference, const std::string& manifest_digest);

  ContentStore& content() { return *content_; }
  const std::string& root() const { return root_; }
  std::string LayerDir(absl::string_view diff_id) const;

 private:
  ImageStore(std::string root, std::unique_ptr<ContentStore> content, ReferenceIndex index)
      : root_(std::move(root)), content_(std::move(content)), index_(std::move(index)) {}

  absl::Status CopyBlob(const ImageArchive& archive, const std::string& digest, int64_t size, Pins& pins);
  absl::StatusOr<std::string> ChooseManifest(const ImageArchive& archive, const std::string& digest,
                                             const std::string& media_type, int depth);
  absl::StatusOr<ImageRecord> ImportManifest(const ImageArchive& archive, const std::string& digest, Pins& pins);
  absl::StatusOr<std::vector<ImageRecord>> ImportOciLayout(const ImageArchive& archive,
                                                           const std::string& name, Pins& pins);
  absl::StatusOr<std::vector<ImageRecord>> ImportDockerArchive(const ImageArchive& archive,
                                                               const std::string& name, Pins& pins);
  absl::StatusOr<ImageRecord> RecordFromManifest(const std::string& manifest_digest);
  absl::Status UnpackLayer(const std::string& layer_digest, const std::string& diff_id);
  absl::StatusOr<GarbageCollection> CollectGarbageLocked();

  const std::string root_;
  std::unique_ptr<ContentStore> content_;
  // Lock order: unpack_mu_ before mu_.
  std::mutex unpack_mu_;  // unpacking and removing layer directories
  mutable std::mutex mu_;  // index_ and pinned_
  ReferenceIndex index_;
  std::multiset<std::string> pinned_;  // blobs of imports in flight: not garbage
};

}  // namespace kelpie::image
