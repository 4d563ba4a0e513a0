// The dataplane helpers that need no privileges: libbpf's own message in a
// Status, and cgroup v2 root detection on folders that hold no cgroup2.
#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <string>

#include "dataplane/kernel_filesystems.h"
#include "dataplane/libbpf_errors.h"
#include "tests/testing/test_env.h"

namespace kelpie::dataplane {
namespace {

TEST(LibbpfErrorsTest, StatusCarriesLibbpfMessage) {
  InstallLibbpfLogging();
  ClearLibbpfMessages();
  testing::TempDir dir;
  std::string missing = dir.File("absent.bpf.o");
  struct bpf_object* obj = bpf_object__open_file(missing.c_str(), nullptr);
  int err = -errno;
  ASSERT_EQ(obj, nullptr);
  absl::Status s = LibbpfError("opening test object", err);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_NE(s.message().find("opening test object"), std::string::npos) << s;
  // libbpf's warning names the file it could not open.
  EXPECT_NE(s.message().find("absent.bpf.o"), std::string::npos) << s;
  // Lines are consumed by the Status that reported them.
  EXPECT_EQ(LibbpfError("again", -EINVAL).message().find("absent.bpf.o"), std::string::npos);
}

TEST(KernelFilesystemsTest, FolderWithoutCgroup2HasNoRoot) {
  testing::TempDir dir;
  CgroupV2Root root = DetectCgroupV2Root(dir.path());
  EXPECT_EQ(root.layout, CgroupLayout::kNone);
  EXPECT_TRUE(root.path.empty());
  EXPECT_FALSE(IsBpffs(dir.path()));
  EXPECT_FALSE(IsTracefs(dir.path()));
}

}  // namespace
}  // namespace kelpie::dataplane
