// Size rotation of log files: backups named <stem>-<UTC time><ext>, never
// a line split across files, the count and age limits, reopening appends.
#include "common/rotating_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "common/files.h"
#include "tests/testing/test_env.h"

namespace kelpie {
namespace {

namespace fs = std::filesystem;

std::string Read(const std::string& path) { return ReadFileToString(path).value_or("<missing>"); }

TEST(RotatingFileTest, AppendsWithoutRotationWhenUnlimited) {
  testing::TempDir dir;
  auto f = RotatingFile::Open({.path = dir.File("audit.log")});
  ASSERT_TRUE(f.ok()) << f.status();
  for (int i = 0; i < 100; ++i) ASSERT_TRUE((*f)->Append("line\n").ok());
  EXPECT_EQ((*f)->size(), 500u);
  EXPECT_TRUE((*f)->Backups().empty());
  struct stat st {};
  ASSERT_EQ(::stat(dir.File("audit.log").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(RotatingFileTest, RotatesWholeLinesAndKeepsTheNewestBackups) {
  testing::TempDir dir;
  auto f = RotatingFile::Open({.path = dir.File("audit.log"), .max_bytes = 25, .max_backups = 2});
  ASSERT_TRUE(f.ok()) << f.status();
  // Lines of 10 bytes: two fit in 25, the third rotates.
  for (int i = 0; i < 9; ++i) ASSERT_TRUE((*f)->Append(std::string(9, static_cast<char>('a' + i)) + "\n").ok());
  std::vector<std::string> backups = (*f)->Backups();
  ASSERT_EQ(backups.size(), 2u);
  for (const auto& b : backups) {
    const std::string name = fs::path(b).filename().string();
    // audit-2026-11-29T02-15-04.123.log
    EXPECT_EQ(name.rfind("audit-", 0), 0u) << name;
    EXPECT_EQ(name.substr(name.size() - 4), ".log") << name;
    EXPECT_EQ(name[10], '-') << name;
    EXPECT_EQ(name[16], 'T') << name;
  }
  // The live file has the last line; the backups the two pairs before it.
  EXPECT_EQ(Read(dir.File("audit.log")), "iiiiiiiii\n");
  std::string all;
  for (const auto& b : backups) all += Read(b);
  EXPECT_EQ(all, "eeeeeeeee\nfffffffff\nggggggggg\nhhhhhhhhh\n");
}

TEST(RotatingFileTest, AWriteLargerThanTheLimitGoesWholeIntoAFreshFile) {
  testing::TempDir dir;
  auto f = RotatingFile::Open({.path = dir.File("flows"), .max_bytes = 10});
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_TRUE((*f)->Append("abc\n").ok());
  ASSERT_TRUE((*f)->Append(std::string(30, 'x') + "\n").ok());
  EXPECT_EQ(Read(dir.File("flows")), std::string(30, 'x') + "\n");
  ASSERT_EQ((*f)->Backups().size(), 1u);
  EXPECT_EQ(Read((*f)->Backups()[0]), "abc\n");
}

TEST(RotatingFileTest, ReopeningAppendsAndCountsTheExistingSize) {
  testing::TempDir dir;
  {
    auto f = RotatingFile::Open({.path = dir.File("a.log"), .max_bytes = 12});
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*f)->Append("12345\n").ok());
  }
  auto f = RotatingFile::Open({.path = dir.File("a.log"), .max_bytes = 12});
  ASSERT_TRUE(f.ok());
  EXPECT_EQ((*f)->size(), 6u);
  ASSERT_TRUE((*f)->Append("67890\n").ok());
  EXPECT_TRUE((*f)->Backups().empty());
  ASSERT_TRUE((*f)->Append("x\n").ok());
  EXPECT_EQ((*f)->Backups().size(), 1u);
}

TEST(RotatingFileTest, OldBackupsGoByAge) {
  testing::TempDir dir;
  // A backup from long ago, named as a rotation names it.
  const std::string old_backup = dir.File("a-2020-01-01T00-00-00.000.log");
  std::ofstream(old_backup) << "old\n";
  fs::last_write_time(old_backup, fs::file_time_type::clock::now() - std::chrono::hours(24 * 400));
  std::ofstream(dir.File("unrelated.log")) << "keep me\n";
  auto f = RotatingFile::Open({.path = dir.File("a.log"), .max_bytes = 4, .max_age_days = 30});
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Append("one\n").ok());
  ASSERT_TRUE((*f)->Append("two\n").ok());  // rotates, then prunes by age
  EXPECT_FALSE(fs::exists(old_backup));
  EXPECT_TRUE(fs::exists(dir.File("unrelated.log")));
  EXPECT_EQ((*f)->Backups().size(), 1u);
}

TEST(RotatingFileTest, AMissingFolderIsAClearError) {
  auto f = RotatingFile::Open({.path = "/nonexistent-kelpie-folder/audit.log"});
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("/nonexistent-kelpie-folder/audit.log"), std::string::npos);
}

}  // namespace
}  // namespace kelpie
