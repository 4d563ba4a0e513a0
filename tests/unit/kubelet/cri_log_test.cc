// CRI log records back to plain output: partial lines, timestamps, since,
// tail, limitBytes, records cut between reads, and a followed file that
// rotates.
#include "orchestrator/kubelet/server/cri_log.h"

#include <gtest/gtest.h>

#include <fstream>

#include "tests/testing/test_env.h"

namespace kelpie::kubelet {
namespace {

const char kLog[] =
    "2026-01-02T03:04:05.000000001Z stdout F one\n"
    "2026-01-02T03:04:06.000000000Z stderr P tw\n"
    "2026-01-02T03:04:06.500000000Z stderr F o\n"
    "2026-01-02T03:04:07.000000000Z stdout F \n"
    "2026-01-02T03:04:08.000000000Z stdout F four\n";

TEST(CriLogTest, ParsesRecords) {
  auto l = ParseCriLogLine("2026-01-02T03:04:05.000000001Z stdout F hello world");
  ASSERT_TRUE(l.has_value());
  EXPECT_EQ(l->stream, "stdout");
  EXPECT_FALSE(l->partial);
  EXPECT_EQ(l->content, "hello world");
  EXPECT_EQ(l->time_ns % 1000000000, 1);
  auto empty = ParseCriLogLine("2026-01-02T03:04:05Z stderr P");
  ASSERT_TRUE(empty.has_value());
  EXPECT_TRUE(empty->partial);
  EXPECT_EQ(empty->content, "");
  EXPECT_FALSE(ParseCriLogLine("not a record").has_value());
  EXPECT_FALSE(ParseCriLogLine("2026-01-02T03:04:05Z stdin F x").has_value());
  EXPECT_FALSE(ParseCriLogLine("yesterday stdout F x").has_value());
  EXPECT_FALSE(ParseCriLogLine("2026-01-02T03:04:05Z stdout X x").has_value());
}

TEST(CriLogTest, JoinsPartialLinesAndSkipsGarbage) {
  CriLogFormatter f({});
  EXPECT_EQ(f.Feed(std::string(kLog) + "garbage line\n"), "one\ntwo\n\nfour\n");
}

TEST(CriLogTest, RecordsCutBetweenReadsAreKeptUntilComplete) {
  CriLogFormatter f({});
  std::string log = kLog, out;
  for (size_t i = 0; i < log.size(); i += 7) out += f.Feed(std::string_view(log).substr(i, 7));
  EXPECT_EQ(out, "one\ntwo\n\nfour\n");
}

TEST(CriLogTest, TimestampsPrefixEachLineOnce) {
  CriLogOptions o;
  o.timestamps = true;
  CriLogFormatter f(o);
  EXPECT_EQ(f.Feed(kLog),
            "2026-01-02T03:04:05.000000001Z one\n"
            "2026-01-02T03:04:06.000000000Z two\n"
            "2026-01-02T03:04:07.000000000Z \n"
            "2026-01-02T03:04:08.000000000Z four\n");
}

TEST(CriLogTest, SinceDropsOlderRecords) {
  CriLogOptions o;
  o.since_ns = 1767323047000000000;  // 2026-01-02T03:04:07Z
  CriLogFormatter f(o);
  EXPECT_EQ(f.Feed(kLog), "\nfour\n");
}

TEST(CriLogTest, LimitBytesCutsTheOutput) {
  CriLogOptions o;
  o.limit_bytes = 6;
  CriLogFormatter f(o);
  EXPECT_EQ(f.Feed(kLog), "one\ntw");
  EXPECT_TRUE(f.done());
  EXPECT_EQ(f.Feed(kLog), "");
}

TEST(CriLogTest, TailCountsJoinedLinesOnce) {
  std::string_view log = kLog;
  CriLogFormatter all({});
  EXPECT_EQ(all.Feed(log.substr(TailOffset(log, 1, std::nullopt))), "four\n");
  CriLogFormatter three({});
  EXPECT_EQ(three.Feed(log.substr(TailOffset(log, 3, std::nullopt))), "two\n\nfour\n");
  EXPECT_EQ(TailOffset(log, 0, std::nullopt), log.size());
  EXPECT_EQ(TailOffset(log, 100, std::nullopt), 0u);
  // An unfinished partial line at the end is the newest line.
  std::string unfinished = std::string(kLog) + "2026-01-02T03:04:09Z stdout P fi\n";
  CriLogFormatter two({});
  EXPECT_EQ(two.Feed(std::string_view(unfinished).substr(TailOffset(unfinished, 2, std::nullopt))), "four\nfi");
  // since applies before counting.
  CriLogFormatter since({});
  EXPECT_EQ(since.Feed(log.substr(TailOffset(log, 10, 1767323047000000000))), "\nfour\n");
}

TEST(CriLogTest, StreamFollowsAcrossRotationUntilTheContainerStops) {
  testing::TempDir dir;
  std::string path = dir.File("0.log");
  {
    std::ofstream(path) << "2026-01-02T03:04:05Z stdout F first\n";
  }
  std::string out;
  int polls = 0;
  auto sink = [&](std::string_view d) {
    out += d;
    return true;
  };
  // The "container" writes a line, rotates the file, writes another, then
  // stops; polls are counted instead of time.
  auto running = [&] {
    ++polls;
    if (polls == 1) {
      std::ofstream(path, std::ios::app) << "2026-01-02T03:04:06Z stdout F second\n";
    } else if (polls == 2) {
      std::rename(path.c_str(), (path + ".20260102-030407").c_str());
      std::ofstream(path) << "2026-01-02T03:04:07Z stderr F third\n";
    }
    return polls < 4;
  };
  ASSERT_TRUE(StreamCriLog(path, {}, true, sink, running, [] { return false; }).ok());
  EXPECT_EQ(out, "first\nsecond\nthird\n");
  // Without follow only what is there is read; with tail only the end.
  std::string plain;
  CriLogOptions tail;
  tail.tail_lines = 1;
  ASSERT_TRUE(StreamCriLog(path, tail, false, [&](std::string_view d) { plain += d; return true; },
                           [] { return true; }, [] { return false; }).ok());
  EXPECT_EQ(plain, "third\n");
  EXPECT_FALSE(StreamCriLog(dir.File("missing.log"), {}, false, sink, running, [] { return false; }).ok());
}

}  // namespace
}  // namespace kelpie::kubelet
