#include "orchestrator/runtime/image/content_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <thread>

#include "common/files.h"
#include "tests/testing/test_env.h"

namespace kelpie::image {
namespace {

TEST(ContentStoreTest, StoresBlobsUnderTheirDigest) {
  testing::TempDir dir;
  auto store = ContentStore::Open(dir.path());
  ASSERT_TRUE(store.ok()) << store.status();
  std::string digest = Sha256Digest("hello");
  auto info = (*store)->WriteString("hello", digest);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->size, 5u);
  EXPECT_TRUE((*store)->Contains(digest));
  EXPECT_EQ((*store)->PathOf(digest), dir.path() + "/blobs/sha256/" + DigestHex(digest));
  auto data = (*store)->ReadVerified(digest, 100);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(*data, "hello");
  auto listed = (*store)->List();
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(*listed, std::vector<std::string>{digest});
}

TEST(ContentStoreTest, MismatchedContentIsRejectedAndNamesTheDigest) {
  testing::TempDir dir;
  auto store = ContentStore::Open(dir.path());
  ASSERT_TRUE(store.ok());
  std::string digest = Sha256Digest("expected");
  auto info = (*store)->WriteString("tampered", digest);
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(info.status().message().find(digest), std::string::npos) << info.status();
  EXPECT_FALSE((*store)->Contains(digest));
  // Nothing is left behind in the temporary folder either.
  auto listed = (*store)->List();
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(listed->empty());
}

TEST(ContentStoreTest, WrongSizeIsRejected) {
  testing::TempDir dir;
  auto store = ContentStore::Open(dir.path());
  ASSERT_TRUE(store.ok());
  StringSource source("hello");
  auto info = (*store)->Write(source, Sha256Digest("hello"), 6);
  ASSERT_FALSE(info.ok());
  EXPECT_NE(info.status().message().find("descriptor"), std::string::npos) << info.status();
}

TEST(ContentStoreTest, CorruptionOnDiskIsDetectedOnRead) {
  testing::TempDir dir;
  auto store = ContentStore::Open(dir.path());
  ASSERT_TRUE(store.ok());
  std::string digest = Sha256Digest("{\"a\":1}");
  ASSERT_TRUE((*store)->WriteString("{\"a\":1}", digest).ok());
  std::string path = (*store)->PathOf(digest);
  ::chmod(path.c_str(), 0644);
  ASSERT_TRUE(WriteFileAtomically(path, "{\"a\":2}", 0444).ok());
  auto data = (*store)->ReadVerified(digest, 100);
  ASSERT_FALSE(data.ok());
  EXPECT_NE(data.status().message().find(digest), std::string::npos) << data.status();
}

TEST(ContentStoreTest, RejectsDigestsThatAreNotSha256Hex) {
  testing::TempDir dir;
  auto store = ContentStore::Open(dir.path());
  ASSERT_TRUE(store.ok());
  EXPECT_FALSE((*store)->WriteString("x", "sha256:../../etc/passwd").ok());
  EXPECT_FALSE((*store)->Delete("md5:abc").ok());
  EXPECT_FALSE((*store)->Contains("sha256:ABC"));
}

TEST(ContentStoreTest, ConcurrentWritersOfTheSameBlob) {
  testing::TempDir dir;
  auto store = ContentStore::Open(dir.path());
  ASSERT_TRUE(store.ok());
  std::string content(1 << 20, 'k');
  std::string digest = Sha256Digest(content);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      if (!(*store)->WriteString(content, digest).ok()) ++failures;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  auto data = (*store)->ReadVerified(digest, 2 << 20);
  ASSERT_TRUE(data.ok()) << data.status();
}

}  // namespace
}  // namespace kelpie::image
