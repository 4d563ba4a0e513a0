#include "orchestrator/runtime/image/layer_unpacker.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/files.h"
#include "orchestrator/runtime/image/tar_writer.h"
#include "tests/testing/test_env.h"

namespace kelpie::image {
namespace {

absl::StatusOr<UnpackStats> UnpackInto(const std::string& root, const std::string& tar, bool privileged) {
  StringSource source(tar);
  TarReader reader(source, "layer");
  LayerUnpacker unpacker(root, "sha256:layer", {.privileged = privileged});
  return unpacker.Unpack(reader);
}

TEST(CleanLayerPathTest, CleansAndRejectsEscapes) {
  EXPECT_EQ(*CleanLayerPath("./etc//passwd"), "etc/passwd");
  EXPECT_EQ(*CleanLayerPath("usr/bin/"), "usr/bin");
  EXPECT_EQ(*CleanLayerPath("./"), "");
  EXPECT_FALSE(CleanLayerPath("/etc/passwd").ok());
  EXPECT_FALSE(CleanLayerPath("../etc/passwd").ok());
  EXPECT_FALSE(CleanLayerPath("a/../../b").ok());
  EXPECT_FALSE(CleanLayerPath("a/..").ok());
}

TEST(LayerUnpackerTest, UnpacksFilesLinksModesAndTimes) {
  testing::TempDir dir;
  TarWriter w;
  TarEntry d;
  d.type = TarEntryType::kDirectory;
  d.path = "opt/";
  d.mode = 0750;
  d.mtime_seconds = 1600000000;
  w.Add(d);
  TarEntry f;
  f.path = "opt/tool";
  f.mode = 04755;
  f.mtime_seconds = 1500000000;
  w.Add(f, "#!/bin/sh\n");
  w.AddSymlink("opt/link", "tool");
  w.AddHardLink("opt/tool2", "opt/tool");
  w.AddFile("implicit/parent/file", "x");  // parents not in the archive
  auto stats = UnpackInto(dir.path(), w.Finish(), ::geteuid() == 0);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->regular_files, 2u);
  EXPECT_EQ(stats->symlinks, 1u);
  EXPECT_EQ(stats->hard_links, 1u);

  struct stat st;
  ASSERT_EQ(::lstat(dir.File("opt/tool").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 04755u);
  EXPECT_EQ(st.st_mtime, 1500000000);
  EXPECT_EQ(st.st_nlink, 2u);
  ASSERT_EQ(::lstat(dir.File("opt").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  EXPECT_EQ(st.st_mtime, 1600000000);  // set after its children were created
  char target[64] = {};
  ASSERT_GT(::readlink(dir.File("opt/link").c_str(), target, sizeof(target) - 1), 0);
  EXPECT_EQ(std::string(target), "tool");
  EXPECT_EQ(*ReadFileToString(dir.File("implicit/parent/file")), "x");
}

TEST(LayerUnpackerTest, LaterEntriesReplaceEarlierOnes) {
  testing::TempDir dir;
  TarWriter w;
  w.AddFile("etc/motd", "old");
  w.AddFile("etc/motd", "new");
  w.AddDirectory("etc/conf.d");
  w.AddFile("etc/conf.d", "now a file");
  auto stats = UnpackInto(dir.path(), w.Finish(), false);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(*ReadFileToString(dir.File("etc/motd")), "new");
  EXPECT_EQ(*ReadFileToString(dir.File("etc/conf.d")), "now a file");
}

TEST(LayerUnpackerTest, RejectsPathTraversal) {
  for (const char* path : {"../escape", "/abs/escape", "a/../../escape"}) {
    testing::TempDir dir;
    TarWriter w;
    w.AddFile(path, "x");
    auto stats = UnpackInto(dir.path(), w.Finish(), false);
    ASSERT_FALSE(stats.ok()) << path;
    EXPECT_NE(stats.status().message().find("sha256:layer"), std::string::npos) << stats.status();
    EXPECT_NE(stats.status().message().find(path), std::string::npos) << stats.status();
  }
}

TEST(LayerUnpackerTest, RejectsWritesThroughSymlinks) {
  testing::TempDir outside;
  testing::TempDir dir;
  TarWriter w;
  w.AddSymlink("evil", outside.path());
  w.AddFile("evil/planted", "gotcha");
  auto stats = UnpackInto(dir.path(), w.Finish(), false);
  ASSERT_FALSE(stats.ok());
  EXPECT_NE(stats.status().message().find("symlink"), std::string::npos) << stats.status();
  EXPECT_FALSE(PathExists(outside.File("planted")));

  // A relative symlink climbing out is refused just the same.
  testing::TempDir dir2;
  TarWriter w2;
  w2.AddSymlink("up", "../../..");
  w2.AddFile("up/tmp/planted", "gotcha");
  EXPECT_FALSE(UnpackInto(dir2.path(), w2.Finish(), false).ok());
}

TEST(LayerUnpackerTest, RejectsHardLinksOutOfTheLayer) {
  testing::TempDir dir;
  TarWriter w;
  w.AddHardLink("passwd", "../../etc/passwd");
  EXPECT_FALSE(UnpackInto(dir.path(), w.Finish(), false).ok());
  testing::TempDir dir2;
  TarWriter w2;
  w2.AddHardLink("passwd", "etc/missing");
  auto stats = UnpackInto(dir2.path(), w2.Finish(), false);
  ASSERT_FALSE(stats.ok());
  EXPECT_NE(stats.status().message().find("not in this layer"), std::string::npos) << stats.status();
}

TEST(LayerUnpackerTest, WhiteoutsNeedPrivileges) {
  testing::TempDir dir;
  TarWriter w;
  w.AddFile("etc/.wh.motd", "");
  auto stats = UnpackInto(dir.path(), w.Finish(), false);
  ASSERT_FALSE(stats.ok());
  EXPECT_EQ(stats.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(LayerUnpackerTest, WhiteoutsBecomeOverlayDevicesAndOpaqueXattrs) {
  KELPIE_REQUIRE_PRIVILEGES();
  testing::TempDir dir;
  TarWriter w;
  w.AddDirectory("etc");
  w.AddFile("etc/.wh.motd", "");
  w.AddDirectory("var/cache");
  w.AddFile("var/cache/.wh..wh..opq", "");
  w.AddFile("var/cache/fresh", "1");
  TarEntry dev;
  dev.type = TarEntryType::kCharDevice;
  dev.path = "dev/null";
  dev.mode = 0666;
  dev.dev_major = 1;
  dev.dev_minor = 3;
  w.Add(dev);
  auto stats = UnpackInto(dir.path(), w.Finish(), true);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->whiteouts, 1u);
  EXPECT_EQ(stats->opaque_directories, 1u);
  struct stat st;
  ASSERT_EQ(::lstat(dir.File("etc/motd").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(0, 0));
  EXPECT_FALSE(PathExists(dir.File("etc/.wh.motd")));
  char value[8] = {};
  ASSERT_EQ(::getxattr(dir.File("var/cache").c_str(), "trusted.overlay.opaque", value, sizeof(value)), 1);
  EXPECT_EQ(value[0], 'y');
  EXPECT_FALSE(PathExists(dir.File("var/cache/.wh..wh..opq")));
  ASSERT_EQ(::lstat(dir.File("dev/null").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(1, 3));
}

TEST(LayerUnpackerTest, RestoresOwnershipWhenPrivileged) {
  KELPIE_REQUIRE_PRIVILEGES();
  testing::TempDir dir;
  TarWriter w;
  TarEntry f;
  f.path = "home/app/data";
  f.uid = 1234;
  f.gid = 5678;
  f.mode = 06750;
  w.Add(f, "x");
  ASSERT_TRUE(UnpackInto(dir.path(), w.Finish(), true).ok());
  struct stat st;
  ASSERT_EQ(::lstat(dir.File("home/app/data").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 5678u);
  EXPECT_EQ(st.st_mode & 07777, 06750u);  // chmod after chown keeps setuid/setgid
}

}  // namespace
}  // namespace kelpie::image
