#include "orchestrator/runtime/image/tar_reader.h"

#include <gtest/gtest.h>

#include "orchestrator/runtime/image/tar_writer.h"

namespace kelpie::image {
namespace {

struct ReadEntry {
  TarEntry entry;
  std::string data;
};

absl::StatusOr<std::vector<ReadEntry>> ReadAll(const std::string& archive) {
  StringSource source(archive);
  TarReader reader(source, "test.tar");
  std::vector<ReadEntry> out;
  while (true) {
    absl::StatusOr<std::optional<TarEntry>> next = reader.Next();
    if (!next.ok()) return next.status();
    if (!next->has_value()) break;
    ReadEntry e{**next, ""};
    absl::StatusOr<std::string> data = reader.ReadAllData(1 << 24);
    if (!data.ok()) return data.status();
    e.data = *data;
    out.push_back(e);
  }
  return out;
}

TEST(TarReaderTest, ReadsFilesDirectoriesAndLinks) {
  TarWriter w;
  w.AddDirectory("etc/", 0755);
  w.AddFile("etc/hosts", "127.0.0.1 localhost\n", 0640);
  w.AddSymlink("etc/localtime", "/usr/share/zoneinfo/UTC");
  w.AddHardLink("etc/hosts.copy", "etc/hosts");
  TarEntry fifo;
  fifo.type = TarEntryType::kFifo;
  fifo.path = "run/pipe";
  w.Add(fifo);
  auto entries = ReadAll(w.Finish());
  ASSERT_TRUE(entries.ok()) << entries.status();
  ASSERT_EQ(entries->size(), 5u);
  EXPECT_EQ((*entries)[0].entry.type, TarEntryType::kDirectory);
  EXPECT_EQ((*entries)[1].entry.path, "etc/hosts");
  EXPECT_EQ((*entries)[1].entry.mode, 0640u);
  EXPECT_EQ((*entries)[1].data, "127.0.0.1 localhost\n");
  EXPECT_EQ((*entries)[2].entry.type, TarEntryType::kSymlink);
  EXPECT_EQ((*entries)[2].entry.link_target, "/usr/share/zoneinfo/UTC");
  EXPECT_EQ((*entries)[3].entry.type, TarEntryType::kHardLink);
  EXPECT_EQ((*entries)[3].entry.link_target, "etc/hosts");
  EXPECT_EQ((*entries)[4].entry.type, TarEntryType::kFifo);
}

TEST(TarReaderTest, LongNamesThroughPaxAndGnuRecords) {
  std::string long_dir(150, 'd');
  std::string long_path = long_dir + "/" + std::string(120, 'f');
  std::string long_target = std::string(130, 't');
  for (auto style : {TarWriter::LongNames::kPax, TarWriter::LongNames::kGnu}) {
    TarWriter w(style);
    w.AddFile(long_path, "payload");
    w.AddSymlink("short", long_target);
    w.AddFile("after", "x");
    auto entries = ReadAll(w.Finish());
    ASSERT_TRUE(entries.ok()) << entries.status();
    ASSERT_EQ(entries->size(), 3u);
    EXPECT_EQ((*entries)[0].entry.path, long_path);
    EXPECT_EQ((*entries)[0].data, "payload");
    EXPECT_EQ((*entries)[1].entry.link_target, long_target);
    EXPECT_EQ((*entries)[2].entry.path, "after");  // long records apply to one entry only
  }
}

TEST(TarReaderTest, PaxOverridesSizeMtimeOwnerAndXattrs) {
  TarWriter w;
  TarEntry e;
  e.path = "bin/ping";
  e.mtime_seconds = 1700000000;
  e.mtime_nanoseconds = 250000000;
  e.uid = 1000;
  e.gid = 1001;
  e.xattrs["security.capability"] = std::string("\x01\x00\x00\x02", 4);
  w.Add(e, "elf");
  auto entries = ReadAll(w.Finish());
  ASSERT_TRUE(entries.ok()) << entries.status();
  ASSERT_EQ(entries->size(), 1u);
  const TarEntry& r = (*entries)[0].entry;
  EXPECT_EQ(r.mtime_seconds, 1700000000);
  EXPECT_EQ(r.mtime_nanoseconds, 250000000);
  EXPECT_EQ(r.uid, 1000);
  EXPECT_EQ(r.gid, 1001);
  EXPECT_EQ(r.xattrs.at("security.capability"), std::string("\x01\x00\x00\x02", 4));
}

TEST(TarReaderTest, LargeFileSpansManyBlocks) {
  std::string big(3 * 1024 * 1024 + 17, 'z');
  TarWriter w;
  w.AddFile("big", big);
  auto entries = ReadAll(w.Finish());
  ASSERT_TRUE(entries.ok()) << entries.status();
  EXPECT_EQ((*entries)[0].data.size(), big.size());
}

TEST(TarReaderTest, TruncatedDataIsAnError) {
  TarWriter w;
  w.AddFile("file", std::string(2000, 'a'));
  std::string archive = w.Finish();
  archive.resize(512 + 1000);
  auto entries = ReadAll(archive);
  ASSERT_FALSE(entries.ok());
  EXPECT_NE(entries.status().message().find("truncated"), std::string::npos) << entries.status();
  EXPECT_NE(entries.status().message().find("test.tar"), std::string::npos) << entries.status();
}

TEST(TarReaderTest, TruncatedHeaderIsAnError) {
  TarWriter w;
  w.AddFile("a", "1");
  std::string archive = w.bytes() + std::string(100, 'x');
  auto entries = ReadAll(archive);
  ASSERT_FALSE(entries.ok());
  EXPECT_NE(entries.status().message().find("truncated"), std::string::npos) << entries.status();
}

TEST(TarReaderTest, CorruptHeaderChecksumIsAnError) {
  TarWriter w;
  w.AddFile("a", "1");
  std::string archive = w.Finish();
  archive[10] = 'Q';
  auto entries = ReadAll(archive);
  ASSERT_FALSE(entries.ok());
  EXPECT_NE(entries.status().message().find("checksum"), std::string::npos) << entries.status();
}

TEST(TarReaderTest, NotATarIsAnError) {
  auto entries = ReadAll(std::string(1024, 'x'));
  ASSERT_FALSE(entries.ok());
}

TEST(TarReaderTest, MalformedPaxRecordIsAnError) {
  // A hand-made 'x' header whose record length is wrong.
  TarWriter w;
  TarEntry pax;
  pax.path = "PaxHeader";
  pax.mode = 0644;
  w.Add(pax, "99 path=x\n");
  std::string archive = w.bytes();
  archive[156] = 'x';
  // Recompute the header checksum after changing the type flag.
  for (int i = 148; i < 156; ++i) archive[i] = ' ';
  unsigned sum = 0;
  for (int i = 0; i < 512; ++i) sum += static_cast<unsigned char>(archive[i]);
  snprintf(&archive[148], 8, "%06o", sum);
  archive[155] = ' ';
  w = TarWriter();
  w.AddFile("x", "y");
  archive += w.Finish();
  auto entries = ReadAll(archive);
  ASSERT_FALSE(entries.ok());
  EXPECT_NE(entries.status().message().find("PAX"), std::string::npos) << entries.status();
}

TEST(TarReaderTest, GzipSourceRoundTripsAndDetectsCorruption) {
  TarWriter w;
  w.AddFile("hello", "world");
  std::string tar = w.Finish();
  std::string gz = GzipCompress(tar);
  ASSERT_TRUE(LooksGzipped(gz));
  StringSource compressed(gz);
  GzipSource gzip(compressed, "layer");
  TarReader reader(gzip, "layer");
  auto entry = reader.Next();
  ASSERT_TRUE(entry.ok() && entry->has_value()) << entry.status();
  EXPECT_EQ((*entry)->path, "hello");

  std::string broken = gz.substr(0, gz.size() / 2);
  StringSource broken_source(broken);
  GzipSource broken_gzip(broken_source, "sha256:abc");
  absl::Status s = Drain(broken_gzip);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("sha256:abc"), std::string::npos) << s;
}

}  // namespace
}  // namespace kelpie::image
