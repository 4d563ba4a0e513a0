// Crash safety of the embedded store: a child process writes under load and
// is killed with SIGKILL at random moments; after each kill the store must
// reopen with every acknowledged write present, no transaction half
// applied, and revisions that never go backwards.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/subprocess.h"
#include "orchestrator/store/embedded_store.h"
#include "tests/testing/test_env.h"

namespace kelpie::store {
namespace {

struct Acked {
  int64_t seq = 0;
  int64_t revision = 0;
};

// Parses the writer's acknowledgement lines: the newest per writer.
std::map<std::string, Acked> ReadAcks(const std::string& path, int64_t* max_revision,
                                      int64_t* lines) {
  std::map<std::string, Acked> newest;
  std::ifstream in(path);
  std::string line;
  *max_revision = 0;
  *lines = 0;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string writer;
    Acked acked;
    if (!(fields >> writer >> acked.seq >> acked.revision)) {
      ADD_FAILURE() << "bad ack line: " << line;
      continue;
    }
    ++*lines;
    *max_revision = std::max(*max_revision, acked.revision);
    Acked& slot = newest[writer];
    EXPECT_GT(acked.seq, slot.seq) << "acks of one writer out of order";
    slot = acked;
  }
  return newest;
}

int64_t SeqOf(const KeyValue& kv) {
  std::string_view v = kv.value_view();
  size_t colon = v.find(':');
  EXPECT_NE(colon, std::string_view::npos) << "torn value: " << v.substr(0, 40);
  EXPECT_EQ(v.size() - colon - 1, 700u) << "value of " << kv.key << " has a torn tail";
  return std::stoll(std::string(v.substr(0, colon)));
}

TEST(StoreCrashTest, AcknowledgedWritesSurviveSigkill) {
  kelpie::testing::TempDir dir;
  const std::string data_dir = dir.File("store");
  const std::string ack_file = dir.File("acks");
  const std::string writer_binary = STORE_CRASH_WRITER;
  std::mt19937 random(std::random_device{}());
  std::uniform_int_distribution<int> delay_ms(50, 700);

  int64_t previous_revision = 0;
  int64_t total_acks = 0;
  constexpr int kRounds = 24;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    std::remove(ack_file.c_str());
    ChildProcess::Options options;
    options.stdout_path = dir.File("writer.log");
    auto child = ChildProcess::Start({writer_binary, data_dir, ack_file}, options);
    ASSERT_TRUE(child.ok()) << child.status();
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(random)));
    ASSERT_TRUE(child->running()) << "the writer exited early; see its log";
    child->Signal(SIGKILL);
    auto status = child->Wait(std::chrono::seconds(10));
    ASSERT_TRUE(status.has_value());
    ASSERT_TRUE(WIFSIGNALED(*status));

    int64_t max_acked_revision = 0;
    int64_t lines = 0;
    std::map<std::string, Acked> acked = ReadAcks(ack_file, &max_acked_revision, &lines);
    total_acks += lines;

    EmbeddedStoreOptions store_options;
    store_options.data_dir = data_dir;
    store_options.compaction_interval = std::chrono::milliseconds(0);
    auto store = EmbeddedStore::Open(store_options);
    ASSERT_TRUE(store.ok()) << store.status();
    const int64_t revision = *(*store)->CurrentRevision();
    EXPECT_GE(revision, max_acked_revision) << "an acknowledged revision was lost";
    EXPECT_GE(revision, previous_revision) << "the revision went backwards";
    previous_revision = revision;

    for (const auto& [writer, ack] : acked) {
      std::string key = writer == "pair" ? "/crash/pair/a" : absl::StrCat("/crash/w", writer);
      auto kv = (*store)->Get(key);
      ASSERT_TRUE(kv.ok()) << key << ": " << kv.status();
      int64_t seq = SeqOf(*kv);
      // Each writer has one write in flight: the store holds the last
      // acknowledged one or the one after it, never an older one.
      EXPECT_GE(seq, ack.seq) << key << " lost acknowledged write " << ack.seq;
      EXPECT_LE(seq, ack.seq + 1) << key;
      if (seq == ack.seq) {
        EXPECT_EQ(kv->mod_revision, ack.revision) << key;
      }
    }
    // The pair is written by one transaction: both keys or neither.
    auto a = (*store)->Get("/crash/pair/a");
    auto b = (*store)->Get("/crash/pair/b");
    ASSERT_EQ(a.ok(), b.ok());
    if (a.ok()) {
      EXPECT_EQ(a->value_view(), b->value_view()) << "half of a transaction is visible";
      EXPECT_EQ(a->mod_revision, b->mod_revision);
    }
    // Every stored value is whole.
    auto all = (*store)->Range("/crash/", {});
    ASSERT_TRUE(all.ok()) << all.status();
    for (const KeyValue& kv : all->kvs) SeqOf(kv);
    for (const KeyValue& kv : all->kvs) EXPECT_LE(kv.mod_revision, revision);
  }
  EXPECT_GT(total_acks, 100) << "the writer barely wrote; the test proved little";
  RecordProperty("acknowledged_writes", static_cast<int>(total_acks));
}

}  // namespace
}  // namespace kelpie::store
