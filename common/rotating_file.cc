#include "common/rotating_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace kelpie {
namespace {

namespace fs = std::filesystem;

// "<dir>/audit" and ".log" of "<dir>/audit.log"; a name without an
// extension has an empty one.
std::pair<std::string, std::string> StemAndExtension(const std::string& path) {
  fs::path p(path);
  std::string ext = p.extension().string();
  std::string stem = path.substr(0, path.size() - ext.size());
  return {stem, ext};
}

// "2026-11-29T02-15-04.123": lumberjack's backup time format, which sorts
// by time as text.
std::string BackupTimestamp(std::chrono::sys_time<std::chrono::milliseconds> now) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return absl::StrFormat("%04d-%02d-%02dT%02d-%02d-%02d.%03d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                         tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
}

// Whether `name` (a file name) is a backup of stem/ext: stem + "-" + the
// 23-character timestamp + ext.
bool IsBackupName(const std::string& name, const std::string& stem_name, const std::string& ext) {
  if (!absl::StartsWith(name, stem_name + "-") || !absl::EndsWith(name, ext)) return false;
  std::string middle = name.substr(stem_name.size() + 1, name.size() - stem_name.size() - 1 - ext.size());
  if (middle.size() != 23) return false;
  return middle[4] == '-' && middle[10] == 'T' && middle[19] == '.';
}

}  // namespace

absl::StatusOr<std::unique_ptr<RotatingFile>> RotatingFile::Open(RotatingFileOptions options) {
  if (options.path.empty()) return absl::InvalidArgumentError("no file path given");
  std::unique_ptr<RotatingFile> file(new RotatingFile(std::move(options)));
  if (absl::Status s = file->OpenCurrent(); !s.ok()) return s;
  return file;
}

RotatingFile::~RotatingFile() {
  if (fd_ >= 0) ::close(fd_);
}

absl::Status RotatingFile::OpenCurrent() {
  fd_ = ::open(options_.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, options_.mode);
  if (fd_ < 0) return absl::InvalidArgumentError(absl::StrCat(options_.path, ": ", std::strerror(errno)));
  struct stat st {};
  size_ = ::fstat(fd_, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
  return absl::OkStatus();
}

absl::Status RotatingFile::Append(std::string_view data) {
  if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat(options_.path, ": not open"));
  if (options_.max_bytes > 0 && size_ > 0 && size_ + data.size() > options_.max_bytes) {
    if (absl::Status s = Rotate(); !s.ok()) return s;
  }
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd_, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(absl::StrCat("writing ", options_.path, ": ", std::strerror(errno)));
    }
    off += static_cast<size_t>(n);
  }
  size_ += data.size();
  return absl::OkStatus();
}

absl::Status RotatingFile::Rotate() {
  auto [stem, ext] = StemAndExtension(options_.path);
  // Backup times only move forward (two rotations within one millisecond
  // take the next one, and a name freed by pruning is never reused), so the
  // names stay unique and keep sorting by age.
  auto when = std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
  if (last_backup_ && when <= *last_backup_) when = *last_backup_ + std::chrono::milliseconds(1);
  std::string target = absl::StrCat(stem, "-", BackupTimestamp(when), ext);
  while (::access(target.c_str(), F_OK) == 0) {
    when += std::chrono::milliseconds(1);
    target = absl::StrCat(stem, "-", BackupTimestamp(when), ext);
  }
  last_backup_ = when;
  ::close(fd_);
  fd_ = -1;
  if (::rename(options_.path.c_str(), target.c_str()) != 0) {
    const int err = errno;
    // Keep writing to the same file rather than losing lines.
    absl::Status reopened = OpenCurrent();
    return absl::InternalError(absl::StrCat("rotating ", options_.path, ": ", std::strerror(err),
                                            reopened.ok() ? "" : absl::StrCat("; ", reopened.message())));
  }
  absl::Status s = OpenCurrent();
  RemoveOldBackups();
  return s;
}

std::vector<std::string> RotatingFile::Backups() const {
  auto [stem, ext] = StemAndExtension(options_.path);
  fs::path dir = fs::path(options_.path).parent_path();
  if (dir.empty()) dir = ".";
  const std::string stem_name = fs::path(stem).filename().string();
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (IsBackupName(name, stem_name, ext)) out.push_back(entry.path().string());
  }
  std::sort(out.begin(), out.end());  // the timestamp sorts as text
  return out;
}

void RotatingFile::RemoveOldBackups() {
  std::vector<std::string> backups = Backups();
  std::error_code ec;
  size_t remove = 0;
  if (options_.max_backups > 0 && backups.size() > static_cast<size_t>(options_.max_backups)) {
    remove = backups.size() - static_cast<size_t>(options_.max_backups);
  }
  if (options_.max_age_days > 0) {
    const auto limit = fs::file_time_type::clock::now() - std::chrono::hours(24 * options_.max_age_days);
    for (size_t i = remove; i < backups.size(); ++i) {
      auto t = fs::last_write_time(backups[i], ec);
      if (!ec && t < limit) remove = i + 1;
    }
  }
  for (size_t i = 0; i < remove; ++i) fs::remove(backups[i], ec);
}

}  // namespace kelpie
