// Writes a container's output in the CRI log format the kubelet, `kubectl
// logs` and log shippers read:
//   <RFC3339Nano UTC> <stdout|stderr> <F|P> <line>
// F ends a line, P is a piece of a longer line (or of output without a
// newline, flushed when the stream ends). The file is rotated by size:
// N.log becomes N.log.<UTC yyyymmdd-hhmmss> and the oldest rotated files go.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace kelpie::runtime {

class CriLogWriter {
 public:
  static constexpr size_t kMaxLineBytes = 16 * 1024;

  // max_size 0 disables rotation; max_files counts the live file too.
  CriLogWriter(std::string path, uint64_t max_size, int max_files);
  ~CriLogWriter();
  CriLogWriter(const CriLogWriter&) = delete;
  CriLogWriter& operator=(const CriLogWriter&) = delete;

  absl::Status Open();
  // Appends output of one stream; complete lines are written at once.
  void Write(bool is_stderr, std::string_view data);
  // Writes what is buffered for a stream that ended (a final piece without
  // newline becomes an F line: nothing more will follow).
  void FinishStream(bool is_stderr);

  const std::string& path() const { return path_; }

  // "2024-01-02T03:04:05.123456789Z" for a time in nanoseconds since the epoch.
  static std::string FormatTimestamp(int64_t unix_nanos);
  // Parses one CRI log line; false when malformed.
  struct Line {
    std::string timestamp;
    std::string stream;
    bool partial = false;
    std::string content;
  };
  static bool ParseLine(std::string_view line, Line* out);

 private:
  void Emit(bool is_stderr, std::string_view content, bool partial);
  void RotateIfNeeded(size_t incoming);

  std::string path_;
  uint64_t max_size_;
  int max_files_;
  int fd_ = -1;
  uint64_t size_ = 0;
  std::string pending_[2];
};

}  // namespace kelpie::runtime
