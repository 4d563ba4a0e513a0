// Sequential byte streams the tar reader and the content store consume:
// a slice of a file, an in-memory string, a gzip decompressor and a hashing
// tee. Layers are streamed, never loaded whole into memory.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "orchestrator/runtime/image/digest.h"

namespace kelpie::image {

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Reads up to `size` bytes; 0 means end of stream.
  virtual absl::StatusOr<size_t> Read(char* buffer, size_t size) = 0;
};

// Reads exactly `size` bytes or fails with a "truncated" error naming `what`.
absl::Status ReadFully(ByteSource& source, char* buffer, size_t size, absl::string_view what);

// Reads and discards the rest of `source`.
absl::Status Drain(ByteSource& source);

// A byte range of a file (the whole file when length is unset).
class FileSource : public ByteSource {
 public:
  static absl::StatusOr<std::unique_ptr<FileSource>> Open(const std::string& path,
                                                          uint64_t offset = 0,
                                                          int64_t length = -1);
  ~FileSource() override;
  absl::StatusOr<size_t> Read(char* buffer, size_t size) override;

 private:
  FileSource(int fd, std::string path, uint64_t offset, uint64_t remaining)
      : fd_(fd), path_(std::move(path)), offset_(offset), remaining_(remaining) {}
  int fd_;
  std::string path_;
  uint64_t offset_;
  uint64_t remaining_;
};

class StringSource : public ByteSource {
 public:
  explicit StringSource(std::string data) : data_(std::move(data)) {}
  absl::StatusOr<size_t> Read(char* buffer, size_t size) override;

 private:
  std::string data_;
  size_t position_ = 0;
};

// Decompresses a gzip stream (several concatenated members allowed).
class GzipSource : public ByteSource {
 public:
  // `name` appears in error messages (the layer digest, typically).
  GzipSource(ByteSource& compressed, std::string name);
  ~GzipSource() override;
  absl::StatusOr<size_t> Read(char* buffer, size_t size) override;

 private:
  struct State;
  ByteSource& compressed_;
  std::string name_;
  std::unique_ptr<State> state_;
};

// Passes bytes through while hashing them and counting them.
class HashingSource : public ByteSource {
 public:
  explicit HashingSource(ByteSource& inner) : inner_(inner) {}
  absl::StatusOr<size_t> Read(char* buffer, size_t size) override;
  std::string FinishDigest() { return hasher_.FinishDigest(); }
  uint64_t bytes_read() const { return bytes_read_; }

 private:
  ByteSource& inner_;
  Sha256Hasher hasher_;
  uint64_t bytes_read_ = 0;
};

// Puts already-consumed bytes back in front of a stream (format sniffing).
class PrefixedSource : public ByteSource {
 public:
  PrefixedSource(std::string prefix, ByteSource& rest) : prefix_(std::move(prefix)), rest_(rest) {}
  absl::StatusOr<size_t> Read(char* buffer, size_t size) override;

 private:
  std::string prefix_;
  size_t position_ = 0;
  ByteSource& rest_;
};

bool LooksGzipped(absl::string_view first_bytes);

// gzip-compresses `data` in memory (building layers for tests and exports).
std::string GzipCompress(absl::string_view data);

}  // namespace kelpie::image
