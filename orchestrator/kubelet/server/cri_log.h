// Reading CRI log files (`<RFC3339Nano> stdout|stderr F|P <content>` per
// line) back as the plain output `kubectl logs` shows: partial lines
// joined, optional timestamps, since/tail/limit as the kubelet's
// /containerLogs applies them.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace kelpie::kubelet {

struct CriLogLine {
  std::string_view timestamp;  // as written (RFC3339Nano)
  int64_t time_ns = 0;
  std::string_view stream;  // stdout | stderr
  bool partial = false;     // P: the line continues in the next record
  std::string_view content;
};

// Parses one record (without its '\n'); nullopt when malformed.
std::optional<CriLogLine> ParseCriLogLine(std::string_view line);

struct CriLogOptions {
  bool timestamps = false;
  std::optional<int64_t> since_ns;     // drop records older than this (unix ns)
  std::optional<int64_t> tail_lines;   // only the last N lines (joined lines count once)
  std::optional<int64_t> limit_bytes;  // stop after this many output bytes
};

// Turns CRI records into plain output. Feed it file bytes in any pieces;
// records cut between pieces are kept until their '\n' arrives.
class CriLogFormatter {
 public:
  explicit CriLogFormatter(CriLogOptions options) : options_(std::move(options)) {}
  std::string Feed(std::string_view bytes);
  // The limit was reached: nothing more will be produced.
  bool done() const { return done_; }

 private:
  std::string Format(const CriLogLine& line);
  CriLogOptions options_;
  std::string pending_;
  bool at_line_start_ = true;
  int64_t written_ = 0;
  bool done_ = false;
};

// Offset in `file` where the last `lines` logical lines (a run of P records
// ended by an F record counts once) of records not older than `since_ns`
// begin; file.size() when there are none.
size_t TailOffset(std::string_view file, int64_t lines, std::optional<int64_t> since_ns);

// Writes the log at `path` through `sink` (false from the sink stops).
// With `follow` it keeps reading what is appended, reopens the path when
// the file was rotated, and ends once `still_running` says the container
// stopped and the file is drained, or `cancelled` says the client left.
absl::Status StreamCriLog(const std::string& path, const CriLogOptions& options, bool follow,
                          const std::function<bool(std::string_view)>& sink,
                          const std::function<bool()>& still_running, const std::function<bool()>& cancelled);

}  // namespace kelpie::kubelet
