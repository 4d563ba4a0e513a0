#include "common/files.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "tests/testing/test_env.h"

namespace kelpie {
namespace {

TEST(FilesTest, AtomicWriteSetsModeAndContent) {
  testing::TempDir dir;
  std::string path = dir.File("secret");
  ASSERT_TRUE(WriteFileAtomically(path, "hello", 0600).ok());
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto content = ReadFileToString(path);
  ASSERT_TRUE(content.ok());
  EXPECT_EQ(*content, "hello");
  ASSERT_TRUE(WriteFileAtomically(path, "bye", 0644).ok());
  EXPECT_EQ(*ReadFileToString(path), "bye");
}

TEST(FilesTest, ReadMissingFileNamesPath) {
  auto r = ReadFileToString("/nonexistent/kelpie/file");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("/nonexistent/kelpie/file"), std::string::npos);
}

TEST(FilesTest, MakeDirectoriesCreatesParents) {
  testing::TempDir dir;
  std::string deep = dir.File("a/b/c");
  ASSERT_TRUE(MakeDirectories(deep, 0700).ok());
  EXPECT_TRUE(PathExists(deep));
  EXPECT_TRUE(MakeDirectories(deep, 0700).ok());  // idempotent
}

}  // namespace
}  // namespace kelpie
