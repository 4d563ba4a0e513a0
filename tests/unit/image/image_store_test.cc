#include "orchestrator/runtime/image/image_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "common/files.h"
#include "orchestrator/runtime/image/tar_writer.h"
#include "tests/testing/busybox_image.h"
#include "tests/testing/test_env.h"

namespace kelpie::image {
namespace {

std::string Layer(const std::string& name, const std::string& content) {
  TarWriter w;
  w.AddDirectory("app");
  w.AddFile("app/" + name, content);
  return w.Finish();
}

testing::OciImageSpec SmallImage(const std::string& ref, const std::string& marker) {
  testing::OciImageSpec spec;
  spec.ref_name = ref;
  spec.layers = {Layer("base", "base"), Layer(marker, marker)};
  spec.entrypoint = {"/app/run"};
  spec.cmd = {"--port", "8080"};
  spec.env = {"PATH=/bin", "MODE=test"};
  spec.working_dir = "/app";
  spec.user = "1000:1000";
  spec.exposed_ports = {"8080/tcp"};
  return spec;
}

// A docker-save archive: manifest.json, <id>/layer.tar (uncompressed), the
// config as <hex>.json, and a second layer reached through a symlink as
// older docker versions write for shared layers.
std::string DockerArchive(const std::vector<std::string>& layers, const std::vector<std::string>& tags) {
  std::vector<std::string> diff_ids;
  for (const auto& l : layers) diff_ids.push_back(Sha256Digest(l));
  testing::OciImageSpec spec;
  spec.cmd = {"sh"};
  std::string config = testing::ImageConfigJson(spec, diff_ids);
  TarWriter w;
  nlohmann::json layer_paths = nlohmann::json::array();
  for (size_t i = 0; i < layers.size(); ++i) {
    std::string id = DigestHex(Sha256Digest("id" + std::to_string(i)));
    w.AddDirectory(id);
    if (i > 0 && layers[i] == layers[0]) {
      w.AddSymlink(id + "/layer.tar", "../" + layer_paths[0].get<std::string>());
    } else {
      w.AddFile(id + "/layer.tar", layers[i]);
    }
    layer_paths.push_back(id + "/layer.tar");
  }
  std::string config_name = DigestHex(Sha256Digest(config)) + ".json";
  w.AddFile(config_name, config);
  nlohmann::json manifest = nlohmann::json::array(
      {{{"Config", config_name}, {"RepoTags", tags}, {"Layers", layer_paths}}});
  w.AddFile("manifest.json", manifest.dump());
  return w.Finish();
}

class ImageStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = ImageStore::Open(data_.path());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }
  std::string WriteArchive(const testing::OciImageSpec& spec, const std::string& name) {
    std::string path = files_.File(name);
    absl::Status s = testing::WriteOciArchive(path, spec);
    EXPECT_TRUE(s.ok()) << s;
    return path;
  }
  testing::TempDir data_;
  testing::TempDir files_;
  std::unique_ptr<ImageStore> store_;
};

TEST_F(ImageStoreTest, ImportsOciArchiveAndExposesConfig) {
  auto records = store_->Import(WriteArchive(SmallImage("myapp:v1", "one"), "a.tar"));
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 1u);
  EXPECT_EQ((*records)[0].reference, "docker.io/library/myapp:v1");
  EXPECT_EQ((*records)[0].layer_digests.size(), 2u);
  EXPECT_TRUE(PathExists(data_.path() + "/images/blobs/sha256/" + DigestHex((*records)[0].manifest_digest)));

  auto config = store_->Config("myapp:v1");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->entrypoint, std::vector<std::string>{"/app/run"});
  EXPECT_EQ(config->cmd, (std::vector<std::string>{"--port", "8080"}));
  EXPECT_EQ(config->env, (std::vector<std::string>{"PATH=/bin", "MODE=test"}));
  EXPECT_EQ(config->working_dir, "/app");
  EXPECT_EQ(config->user, "1000:1000");
  EXPECT_EQ(config->exposed_ports, std::vector<std::string>{"8080/tcp"});
  EXPECT_FALSE(store_->Get("myapp:v2").ok());
}

TEST_F(ImageStoreTest, NameOverrideAndUnnamedImages) {
  std::string path = WriteArchive(SmallImage("", "one"), "unnamed.tar");
  auto unnamed = store_->Import(path);
  ASSERT_FALSE(unnamed.ok());
  EXPECT_NE(unnamed.status().message().find("--name"), std::string::npos) << unnamed.status();
  auto named = store_->Import(path, "registry.local:5000/team/app:2");
  ASSERT_TRUE(named.ok()) << named.status();
  EXPECT_EQ((*named)[0].reference, "registry.local:5000/team/app:2");
}

TEST_F(ImageStoreTest, UncompressedLayersImportToo) {
  auto spec = SmallImage("plain", "p");
  spec.gzip_layers = false;
  ASSERT_TRUE(store_->Import(WriteArchive(spec, "plain.tar")).ok());
  auto prepared = store_->Prepare("plain");
  ASSERT_TRUE(prepared.ok()) << prepared.status();
  EXPECT_EQ(*ReadFileToString(prepared->layer_dirs[1] + "/app/p"), "p");
}

TEST_F(ImageStoreTest, CorruptBlobInArchiveIsRejectedNamingItsDigest) {
  auto spec = SmallImage("broken", "two");
  std::string path = WriteArchive(spec, "broken.tar");
  // Flip one byte of the last layer inside the archive.
  std::string bytes = *ReadFileToString(path);
  std::string gz = GzipCompress(spec.layers[1]);
  std::string digest = Sha256Digest(gz);
  size_t at = bytes.find(gz);
  ASSERT_NE(at, std::string::npos);
  bytes[at + gz.size() / 2] ^= 0x55;
  ASSERT_TRUE(WriteFileAtomically(path, bytes, 0644).ok());
  auto records = store_->Import(path);
  ASSERT_FALSE(records.ok());
  EXPECT_EQ(records.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(records.status().message().find(digest), std::string::npos) << records.status();
  EXPECT_TRUE(store_->List().empty());
}

TEST_F(ImageStoreTest, IndexSurvivesReopen) {
  ASSERT_TRUE(store_->Import(WriteArchive(SmallImage("one", "1"), "1.tar")).ok());
  ASSERT_TRUE(store_->Import(WriteArchive(SmallImage("two:x", "2"), "2.tar")).ok());
  store_.reset();
  auto reopened = ImageStore::Open(data_.path());
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  auto list = (*reopened)->List();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].reference, "docker.io/library/one:latest");
  EXPECT_EQ(list[1].reference, "docker.io/library/two:x");
  EXPECT_TRUE((*reopened)->Config("two:x").ok());
}

TEST_F(ImageStoreTest, DamagedIndexIsReportedNotIgnored) {
  ASSERT_TRUE(WriteFileAtomically(data_.path() + "/images/repositories.json", "{nope", 0644).ok());
  auto reopened = ImageStore::Open(data_.path());
  ASSERT_FALSE(reopened.ok());
  EXPECT_NE(reopened.status().message().find("repositories.json"), std::string::npos) << reopened.status();
}

TEST_F(ImageStoreTest, RemoveCollectsOnlyUnsharedBlobsAndLayers) {
  auto a = store_->Import(WriteArchive(SmallImage("a", "only-a"), "a.tar"));
  auto b = store_->Import(WriteArchive(SmallImage("b", "only-b"), "b.tar"));
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(store_->Prepare("a").ok());
  ASSERT_TRUE(store_->Prepare("b").ok());
  const ImageRecord& ra = (*a)[0];
  const ImageRecord& rb = (*b)[0];
  ASSERT_EQ(ra.layer_digests[0], rb.layer_digests[0]);  // the shared base layer

  auto gc = store_->Remove("a");
  ASSERT_TRUE(gc.ok()) << gc.status();
  EXPECT_EQ(gc->blobs_removed, 3u);  // manifest, config, own layer
  EXPECT_EQ(gc->layers_removed, 1u);
  EXPECT_FALSE(store_->content().Contains(ra.manifest_digest));
  EXPECT_FALSE(store_->content().Contains(ra.layer_digests[1]));
  EXPECT_TRUE(store_->content().Contains(rb.layer_digests[0]));
  EXPECT_FALSE(PathExists(store_->LayerDir(ra.diff_ids[1])));
  EXPECT_TRUE(PathExists(store_->LayerDir(rb.diff_ids[0])));
  EXPECT_TRUE(store_->Prepare("b").ok());
  EXPECT_EQ(store_->Remove("a").status().code(), absl::StatusCode::kNotFound);

  ASSERT_TRUE(store_->Remove("b").ok());
  auto blobs = store_->content().List();
  ASSERT_TRUE(blobs.ok());
  EXPECT_TRUE(blobs->empty());
}

TEST_F(ImageStoreTest, PrepareUnpacksOnceAndVerifiesDiffIds) {
  ASSERT_TRUE(store_->Import(WriteArchive(SmallImage("app", "top"), "app.tar")).ok());
  auto first = store_->Prepare("app");
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->layer_dirs.size(), 2u);
  EXPECT_EQ(first->OverlayLowerDirs(), first->layer_dirs[1] + ":" + first->layer_dirs[0]);
  struct stat before;
  ASSERT_EQ(::stat((first->layer_dirs[1] + "/app/top").c_str(), &before), 0);
  auto second = store_->Prepare("app");
  ASSERT_TRUE(second.ok());
  struct stat after;
  ASSERT_EQ(::stat((second->layer_dirs[1] + "/app/top").c_str(), &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino);  // cached, not unpacked again
}

TEST_F(ImageStoreTest, LayerNotMatchingItsDiffIdIsRejected) {
  auto spec = SmallImage("liar", "x");
  // Write an archive whose config promises different diff_ids.
  std::vector<std::string> wrong = {Sha256Digest("a"), Sha256Digest("b")};
  std::string config = testing::ImageConfigJson(spec, wrong);
  TarWriter w;
  w.AddFile("oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& l : spec.layers) {
    w.AddFile("blobs/sha256/" + DigestHex(Sha256Digest(l)), l);
    layers.push_back({{"mediaType", "application/vnd.oci.image.layer.v1.tar"},
                      {"digest", Sha256Digest(l)},
                      {"size", l.size()}});
  }
  w.AddFile("blobs/sha256/" + DigestHex(Sha256Digest(config)), config);
  nlohmann::json manifest = {{"schemaVersion", 2},
                             {"config", {{"digest", Sha256Digest(config)}, {"size", config.size()}}},
                             {"layers", layers}};
  std::string m = manifest.dump();
  w.AddFile("blobs/sha256/" + DigestHex(Sha256Digest(m)), m);
  nlohmann::json index = {{"schemaVersion", 2},
                          {"manifests", {{{"digest", Sha256Digest(m)},
                                          {"annotations", {{"org.opencontainers.image.ref.name", "liar"}}}}}}};
  w.AddFile("index.json", index.dump());
  std::string path = files_.File("liar.tar");
  ASSERT_TRUE(WriteFileAtomically(path, w.Finish(), 0644).ok());
  ASSERT_TRUE(store_->Import(path).ok());
  auto prepared = store_->Prepare("liar");
  ASSERT_FALSE(prepared.ok());
  EXPECT_NE(prepared.status().message().find(wrong[0]), std::string::npos) << prepared.status();
  EXPECT_FALSE(PathExists(store_->LayerDir(wrong[0])));
}

TEST_F(ImageStoreTest, FollowsImageIndexToLinuxAmd64) {
  auto spec = SmallImage("", "multi");
  std::string single = files_.File("single.tar");
  ASSERT_TRUE(testing::WriteOciArchive(single, spec).ok());
  // Re-wrap: a nested image index with arm64 first, then amd64.
  auto base = store_->Import(single, "tmp");
  ASSERT_TRUE(base.ok()) << base.status();
  std::string manifest_digest = (*base)[0].manifest_digest;
  nlohmann::json nested = {
      {"schemaVersion", 2},
      {"mediaType", "application/vnd.oci.image.index.v1+json"},
      {"manifests",
       {{{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
         {"digest", Sha256Digest("other")},
         {"platform", {{"os", "linux"}, {"architecture", "arm64"}}}},
        {{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
         {"digest", manifest_digest},
         {"platform", {{"os", "linux"}, {"architecture", "amd64"}}}}}}};
  std::string nested_text = nested.dump();
  TarWriter w;
  w.AddFile("oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  for (const std::string& d : (*base)[0].layer_digests) {
    w.AddFile("blobs/sha256/" + DigestHex(d), *ReadFileToString(store_->content().PathOf(d)));
  }
  for (const std::string& d : {(*base)[0].config_digest, manifest_digest}) {
    w.AddFile("blobs/sha256/" + DigestHex(d), *ReadFileToString(store_->content().PathOf(d)));
  }
  w.AddFile("blobs/sha256/" + DigestHex(Sha256Digest(nested_text)), nested_text);
  nlohmann::json index = {{"schemaVersion", 2},
                          {"manifests",
                           {{{"mediaType", "application/vnd.oci.image.index.v1+json"},
                             {"digest", Sha256Digest(nested_text)},
                             {"annotations", {{"io.containerd.image.name", "quay.io/org/multi:1"}}}}}}};
  w.AddFile("index.json", index.dump());
  std::string path = files_.File("multi.tar");
  ASSERT_TRUE(WriteFileAtomically(path, w.Finish(), 0644).ok());
  ASSERT_TRUE(store_->Remove("tmp").ok());
  auto records = store_->Import(path);
  ASSERT_TRUE(records.ok()) << records.status();
  EXPECT_EQ((*records)[0].reference, "quay.io/org/multi:1");
  EXPECT_EQ((*records)[0].manifest_digest, manifest_digest);
}

TEST_F(ImageStoreTest, ImportsDockerSaveArchives) {
  std::string l1 = Layer("bin", "docker-bin");
  std::string path = files_.File("docker.tar");
  ASSERT_TRUE(WriteFileAtomically(path, DockerArchive({l1, l1}, {"busybox:latest", "example.com/x/y:2"}), 0644).ok());
  auto records = store_->Import(path);
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 2u);
  EXPECT_EQ((*records)[0].reference, "docker.io/library/busybox:latest");
  EXPECT_EQ((*records)[1].reference, "example.com/x/y:2");
  EXPECT_EQ((*records)[0].layer_digests[0], Sha256Digest(l1));  // uncompressed: digest = diff_id
  auto manifest = store_->content().ReadVerified((*records)[0].manifest_digest, 1 << 20);
  ASSERT_TRUE(manifest.ok());
  auto doc = nlohmann::json::parse(*manifest);
  EXPECT_EQ(doc["mediaType"], "application/vnd.oci.image.manifest.v1+json");
  EXPECT_EQ(doc["layers"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar");
  auto prepared = store_->Prepare("busybox");
  ASSERT_TRUE(prepared.ok()) << prepared.status();
  EXPECT_EQ(*ReadFileToString(prepared->layer_dirs[0] + "/app/bin"), "docker-bin");

  // The same archive gzip-compressed as a whole imports too.
  std::string gz_path = files_.File("docker.tar.gz");
  ASSERT_TRUE(WriteFileAtomically(gz_path, GzipCompress(*ReadFileToString(path)), 0644).ok());
  auto gz_records = store_->Import(gz_path, "gz:1");
  ASSERT_TRUE(gz_records.ok()) << gz_records.status();
  EXPECT_TRUE(store_->Get("gz:1").ok());
}

TEST_F(ImageStoreTest, RejectsArchivesOfNoKnownFormat) {
  TarWriter w;
  w.AddFile("readme", "hi");
  std::string path = files_.File("other.tar");
  ASSERT_TRUE(WriteFileAtomically(path, w.Finish(), 0644).ok());
  auto records = store_->Import(path);
  ASSERT_FALSE(records.ok());
  EXPECT_NE(records.status().message().find(path), std::string::npos);
}

TEST_F(ImageStoreTest, ConcurrentImportsPreparesAndRemovals) {
  std::vector<std::string> paths;
  for (int i = 0; i < 6; ++i) {
    paths.push_back(WriteArchive(SmallImage("img" + std::to_string(i), "m" + std::to_string(i)),
                                 "c" + std::to_string(i) + ".tar"));
  }
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&, i] {
      std::string ref = "img" + std::to_string(i);
      for (int round = 0; round < 3; ++round) {
        if (!store_->Import(paths[i]).ok()) ++failures;
        if (!store_->Prepare(ref).ok()) ++failures;
        store_->List();
        if (round < 2 && !store_->Remove(ref).ok()) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(store_->List().size(), 6u);
  for (int i = 0; i < 6; ++i) EXPECT_TRUE(store_->Prepare("img" + std::to_string(i)).ok());
}

}  // namespace
}  // namespace kelpie::image
