// The child process of store_crash_test: writes to an embedded store as fast as
// it can from many concurrent writers and appends one line per
// acknowledged write to a file, until it is killed.
//
//   store_crash_writer DATA_DIR ACK_FILE
//
// Lines: "<writer> <seq> <revision>" for single-key writes of key
// /crash/w<writer> with value "<seq>:<padding>", and "pair <seq> <revision>"
// for a transaction writing /crash/pair/a and /crash/pair/b together.
#include <fcntl.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>

#include "absl/strings/str_cat.h"
#include "orchestrator/store/embedded_store.h"

namespace {

constexpr int kWriters = 16;
const std::string kPadding(700, 'p');

int ack_fd = -1;

void Ack(const std::string& line) {
  // One write(2) per acknowledgement: once it returns the line is in the
  // kernel and survives SIGKILL of this process.
  if (::write(ack_fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    std::perror("ack write");
    std::_Exit(3);
  }
}

int64_t StoredSeq(kelpie::store::Store& store, const std::string& key) {
  auto kv = store.Get(key);
  if (!kv.ok()) return 0;
  return std::stoll(std::string(kv->value_view().substr(0, kv->value_view().find(':'))));
}

void WriteNext(kelpie::store::Store* store, int writer, int64_t seq) {
  store->PutAsync(absl::StrCat("/crash/w", writer), absl::StrCat(seq, ":", kPadding), 0,
                  [store, writer, seq](absl::StatusOr<kelpie::store::WriteResult> r) {
                    if (!r.ok()) {
                      std::fprintf(stderr, "write failed: %s\n", r.status().ToString().c_str());
                      std::_Exit(4);
                    }
                    Ack(absl::StrCat(writer, " ", seq, " ", r->revision, "\n"));
                    WriteNext(store, writer, seq + 1);
                  });
}

void WritePair(kelpie::store::Store* store, int64_t seq) {
  kelpie::store::TxnRequest txn;
  std::string value = absl::StrCat(seq, ":", kPadding);
  txn.success = {kelpie::store::Op::Put("/crash/pair/a", value),
                 kelpie::store::Op::Put("/crash/pair/b", value)};
  store->TxnAsync(std::move(txn), [store, seq](absl::StatusOr<kelpie::store::TxnResult> r) {
    if (!r.ok()) {
      std::fprintf(stderr, "txn failed: %s\n", r.status().ToString().c_str());
      std::_Exit(4);
    }
    Ack(absl::StrCat("pair ", seq, " ", r->revision, "\n"));
    WritePair(store, seq + 1);
  });
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s DATA_DIR ACK_FILE\n", argv[0]);
    return 2;
  }
  ack_fd = ::open(argv[2], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (ack_fd < 0) {
    std::perror(argv[2]);
    return 2;
  }
  kelpie::store::EmbeddedStoreOptions options;
  options.data_dir = argv[1];
  // Frequent compaction so kills also land in the middle of compaction passes.
  options.compaction_interval = std::chrono::milliseconds(300);
  options.compaction_keys_per_step = 4;
  auto store = kelpie::store::EmbeddedStore::Open(options);
  if (!store.ok()) {
    std::fprintf(stderr, "open: %s\n", store.status().ToString().c_str());
    return 1;
  }
  for (int w = 0; w < kWriters; ++w) {
    WriteNext(store->get(), w, StoredSeq(**store, absl::StrCat("/crash/w", w)) + 1);
  }
  WritePair(store->get(), StoredSeq(**store, "/crash/pair/a") + 1);
  for (;;) ::pause();  // until SIGKILL
}
