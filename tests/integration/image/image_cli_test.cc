// The real `kelpie image` commands on real archives: the busybox image the
// test helper builds, a docker-save archive, and (as root) an overlayfs
// mount of the prepared layers that runs busybox in a chroot.
#include <gtest/gtest.h>
#include <sys/mount.h>

#include <nlohmann/json.hpp>

#include "common/files.h"
#include "common/subprocess.h"
#include "orchestrator/runtime/image/digest.h"
#include "orchestrator/runtime/image/tar_writer.h"
#include "tests/testing/busybox_image.h"
#include "tests/testing/test_env.h"

namespace kelpie {
namespace {

using testing::KelpieBinary;
using testing::TempDir;

// Unmounts (lazily, so a busy mount never outlives the test) on scope exit.
class ScopedMount {
 public:
  explicit ScopedMount(std::string target) : target_(std::move(target)) {}
  ~ScopedMount() { ::umount2(target_.c_str(), MNT_DETACH); }

 private:
  std::string target_;
};

class ImageCliTest : public ::testing::Test {
 protected:
  SubprocessResult Kelpie(std::vector<std::string> args) {
    std::vector<std::string> argv = {KelpieBinary(), "image"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back("--data-dir=" + data_.path());
    auto r = RunSubprocess(argv, {.timeout = std::chrono::seconds(120)});
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : SubprocessResult{};
  }

  std::string Mount(const std::string& lowerdirs) {
    std::string target = work_.File("merged");
    EXPECT_TRUE(MakeDirectories(target, 0755).ok());
    std::string upper = work_.File("upper"), work = work_.File("work");
    EXPECT_TRUE(MakeDirectories(upper, 0755).ok());
    EXPECT_TRUE(MakeDirectories(work, 0755).ok());
    std::string options = "lowerdir=" + lowerdirs + ",upperdir=" + upper + ",workdir=" + work;
    if (::mount("overlay", target.c_str(), "overlay", 0, options.c_str()) != 0) {
      ADD_FAILURE() << "mount overlay " << options << ": " << std::strerror(errno);
      return "";
    }
    mounts_.push_back(std::make_unique<ScopedMount>(target));
    return target;
  }

  void TearDown() override { mounts_.clear(); }

  TempDir data_;
  TempDir files_;
  TempDir work_;
  std::vector<std::unique_ptr<ScopedMount>> mounts_;
};

TEST_F(ImageCliTest, BusyboxImportListInspectPrepareAndRun) {
  auto archive = testing::BuildBusyboxImage(files_.path());
  ASSERT_TRUE(archive.ok()) << archive.status();

  SubprocessResult import = Kelpie({"import", *archive});
  ASSERT_TRUE(import.Succeeded()) << import.stderr_text;
  EXPECT_NE(import.stdout_text.find("imported docker.io/library/busybox:latest"), std::string::npos)
      << import.stdout_text;

  SubprocessResult ls = Kelpie({"ls"});
  ASSERT_TRUE(ls.Succeeded()) << ls.stderr_text;
  EXPECT_NE(ls.stdout_text.find("REFERENCE"), std::string::npos);
  EXPECT_NE(ls.stdout_text.find("docker.io/library/busybox:latest"), std::string::npos) << ls.stdout_text;

  SubprocessResult ls_json = Kelpie({"ls", "-o", "json"});
  ASSERT_TRUE(ls_json.Succeeded()) << ls_json.stderr_text;
  auto images = nlohmann::json::parse(ls_json.stdout_text);
  ASSERT_EQ(images.size(), 1u);
  std::string manifest = images[0]["manifestDigest"];
  EXPECT_TRUE(image::ValidateDigest(manifest).ok());
  EXPECT_GT(images[0]["size"].get<uint64_t>(), 500000u);
  EXPECT_NE(ls.stdout_text.find(image::DigestHex(manifest).substr(0, 12)), std::string::npos);

  SubprocessResult inspect = Kelpie({"inspect", "busybox"});
  ASSERT_TRUE(inspect.Succeeded()) << inspect.stderr_text;
  auto config = nlohmann::json::parse(inspect.stdout_text)["config"];
  EXPECT_EQ(config["cmd"], nlohmann::json::array({"sh"}));
  EXPECT_EQ(config["env"][0], "PATH=/usr/sbin:/usr/bin:/sbin:/bin");

  SubprocessResult prepare = Kelpie({"prepare", "busybox:latest"});
  ASSERT_TRUE(prepare.Succeeded()) << prepare.stderr_text;
  auto prepared = nlohmann::json::parse(prepare.stdout_text);
  ASSERT_EQ(prepared["layerDirs"].size(), 1u);
  std::string layer = prepared["layerDirs"][0];
  EXPECT_TRUE(PathExists(layer + "/bin/busybox"));
  EXPECT_TRUE(PathExists(layer + "/bin/sh"));

  if (testing::IsPrivileged() || testing::PrivilegedRequired()) {
    KELPIE_REQUIRE_PRIVILEGES();
    std::string root = Mount(prepared["lowerdir"]);
    ASSERT_FALSE(root.empty());
    auto run = RunSubprocess({"chroot", root, "/bin/busybox", "sh", "-c", "echo ok"});
    ASSERT_TRUE(run.ok()) << run.status();
    EXPECT_TRUE(run->Succeeded()) << run->stderr_text;
    EXPECT_EQ(run->stdout_text, "ok\n");
  }

  SubprocessResult rm = Kelpie({"rm", "busybox"});
  ASSERT_TRUE(rm.Succeeded()) << rm.stderr_text;
  EXPECT_FALSE(PathExists(layer));
  EXPECT_FALSE(PathExists(data_.path() + "/images/blobs/sha256/" + image::DigestHex(manifest)));
  SubprocessResult again = Kelpie({"rm", "busybox"});
  EXPECT_FALSE(again.Succeeded());
  EXPECT_NE(again.stderr_text.find("not in the store"), std::string::npos) << again.stderr_text;
}

TEST_F(ImageCliTest, DockerSaveArchiveImports) {
  auto layer = testing::BuildBusyboxLayer();
  ASSERT_TRUE(layer.ok()) << layer.status();
  testing::OciImageSpec spec;
  spec.cmd = {"sh"};
  std::string config = testing::ImageConfigJson(spec, {image::Sha256Digest(*layer)});
  std::string config_name = image::DigestHex(image::Sha256Digest(config)) + ".json";
  image::TarWriter archive;
  archive.AddDirectory("0123abcd");
  archive.AddFile("0123abcd/layer.tar", *layer);
  archive.AddFile("0123abcd/VERSION", "1.0");
  archive.AddFile(config_name, config);
  nlohmann::json manifest = nlohmann::json::array(
      {{{"Config", config_name}, {"RepoTags", {"localhost:5000/tools/busybox:1.36"}}, {"Layers", {"0123abcd/layer.tar"}}}});
  archive.AddFile("manifest.json", manifest.dump());
  archive.AddFile("repositories", "{}");
  std::string path = files_.File("docker-save.tar");
  ASSERT_TRUE(WriteFileAtomically(path, archive.Finish(), 0644).ok());

  SubprocessResult import = Kelpie({"import", path});
  ASSERT_TRUE(import.Succeeded()) << import.stderr_text;
  SubprocessResult ls = Kelpie({"ls"});
  EXPECT_NE(ls.stdout_text.find("localhost:5000/tools/busybox:1.36"), std::string::npos) << ls.stdout_text;
  SubprocessResult prepare = Kelpie({"prepare", "localhost:5000/tools/busybox:1.36"});
  ASSERT_TRUE(prepare.Succeeded()) << prepare.stderr_text;
  auto prepared = nlohmann::json::parse(prepare.stdout_text);
  EXPECT_TRUE(PathExists(prepared["layerDirs"][0].get<std::string>() + "/bin/busybox"));
}

TEST_F(ImageCliTest, CorruptArchiveIsRefusedWithTheDigest) {
  auto archive = testing::BuildBusyboxImage(files_.path());
  ASSERT_TRUE(archive.ok()) << archive.status();
  std::string bytes = *ReadFileToString(*archive);
  // The layer is the big blob in the middle: damage a byte of it.
  bytes[bytes.size() / 2] ^= 0x01;
  ASSERT_TRUE(WriteFileAtomically(*archive, bytes, 0644).ok());
  SubprocessResult import = Kelpie({"import", *archive});
  EXPECT_FALSE(import.Succeeded());
  EXPECT_NE(import.stderr_text.find("sha256:"), std::string::npos) << import.stderr_text;
  EXPECT_NE(import.stderr_text.find("corrupt"), std::string::npos) << import.stderr_text;
  SubprocessResult ls = Kelpie({"ls", "-o", "json"});
  EXPECT_EQ(nlohmann::json::parse(ls.stdout_text).size(), 0u);
}

// Whiteouts and opaque directories hide lower content once overlayfs
// stacks the unpacked layers.
TEST_F(ImageCliTest, WhiteoutsHideLowerContentInOverlay) {
  KELPIE_REQUIRE_PRIVILEGES();
  image::TarWriter lower;
  lower.AddDirectory("etc");
  lower.AddFile("etc/motd", "hello");
  lower.AddFile("etc/keep", "kept");
  lower.AddDirectory("var");
  lower.AddDirectory("var/cache");
  lower.AddFile("var/cache/old", "stale");
  image::TarWriter upper;
  upper.AddFile("etc/.wh.motd", "");
  upper.AddDirectory("var/cache");
  upper.AddFile("var/cache/.wh..wh..opq", "");
  upper.AddFile("var/cache/new", "fresh");
  testing::OciImageSpec spec;
  spec.ref_name = "whiteouts:1";
  spec.layers = {lower.Finish(), upper.Finish()};
  std::string path = files_.File("whiteouts.tar");
  ASSERT_TRUE(testing::WriteOciArchive(path, spec).ok());
  ASSERT_TRUE(Kelpie({"import", path}).Succeeded());
  SubprocessResult prepare = Kelpie({"prepare", "whiteouts:1"});
  ASSERT_TRUE(prepare.Succeeded()) << prepare.stderr_text;
  auto prepared = nlohmann::json::parse(prepare.stdout_text);

  std::string root = Mount(prepared["lowerdir"]);
  ASSERT_FALSE(root.empty());
  EXPECT_FALSE(PathExists(root + "/etc/motd"));
  EXPECT_EQ(*ReadFileToString(root + "/etc/keep"), "kept");
  EXPECT_FALSE(PathExists(root + "/var/cache/old"));
  EXPECT_EQ(*ReadFileToString(root + "/var/cache/new"), "fresh");
  // The lower layer itself is untouched.
  std::string lower_dir = prepared["layerDirs"][0];
  EXPECT_EQ(*ReadFileToString(lower_dir + "/etc/motd"), "hello");
}

}  // namespace
}  // namespace kelpie
