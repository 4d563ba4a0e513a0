// An append-only log file rotated by size, named as kube-apiserver's audit
// log backups are (lumberjack): when the next write would take the file
// past its limit, `audit.log` becomes `audit-2026-11-29T02-15-04.123.log`
// (UTC; a later millisecond when that name is taken) and a fresh
// `audit.log` is opened; backups beyond the count or age
// limits are deleted, oldest first. The audit log, the flow log and the
// alert file of detection all write through it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace kelpie {

struct RotatingFileOptions {
  std::string path;
  // Rotate before a write would take the file past this size; 0 never
  // rotates.
  uint64_t max_bytes = 0;
  // Backups kept (0: all).
  int max_backups = 0;
  // Backups older than this are deleted at rotation (0: no age limit).
  int max_age_days = 0;
  mode_t mode = 0600;
};

// Not thread-safe: one writer at a time (callers serialize).
class RotatingFile {
 public:
  // Opens `options.path` for appending, creating it (and no parent folder)
  // with `options.mode`.
  static absl::StatusOr<std::unique_ptr<RotatingFile>> Open(RotatingFileOptions options);
  ~RotatingFile();
  RotatingFile(const RotatingFile&) = delete;
  RotatingFile& operator=(const RotatingFile&) = delete;

  // Appends `data` (whole lines, so a rotation never splits one), rotating
  // first when the file would grow past max_bytes. A single write larger
  // than max_bytes goes whole into a fresh file.
  absl::Status Append(std::string_view data);

  const std::string& path() const { return options_.path; }
  uint64_t size() const { return size_; }
  // The rotated files of this path, oldest first.
  std::vector<std::string> Backups() const;

 private:
  explicit RotatingFile(RotatingFileOptions options) : options_(std::move(options)) {}
  absl::Status OpenCurrent();
  absl::Status Rotate();
  void RemoveOldBackups();

  RotatingFileOptions options_;
  int fd_ = -1;
  uint64_t size_ = 0;
  // Time of the newest backup this writer made.
  std::optional<std::chrono::sys_time<std::chrono::milliseconds>> last_backup_;
};

}  // namespace kelpie
