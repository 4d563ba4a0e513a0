#include "orchestrator/runtime/runc/cri_log_writer.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace kelpie::runtime {
namespace {

int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

CriLogWriter::CriLogWriter(std::string path, uint64_t max_size, int max_files)
    : path_(std::move(path)), max_size_(max_size), max_files_(std::max(max_files, 1)) {}

CriLogWriter::~CriLogWriter() {
  if (fd_ >= 0) ::close(fd_);
}

absl::Status CriLogWriter::Open() {
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd_ < 0) return absl::InternalError(absl::StrCat("open ", path_, ": ", std::strerror(errno)));
  struct stat st;
  if (::fstat(fd_, &st) == 0) size_ = static_cast<uint64_t>(st.st_size);
  return absl::OkStatus();
}

std::string CriLogWriter::FormatTimestamp(int64_t unix_nanos) {
  time_t secs = static_cast<time_t>(unix_nanos / 1000000000);
  int64_t nanos = unix_nanos % 1000000000;
  struct tm tm;
  ::gmtime_r(&secs, &tm);
  return absl::StrFormat("%04d-%02d-%02dT%02d:%02d:%02d.%09dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, nanos);
}

bool CriLogWriter::ParseLine(std::string_view line, Line* out) {
  auto sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return false;
  auto sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return false;
  auto sp3 = line.find(' ', sp2 + 1);
  if (sp3 == std::string_view::npos) return false;
  out->timestamp = std::string(line.substr(0, sp1));
  out->stream = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
  std::string_view tag = line.substr(sp2 + 1, sp3 - sp2 - 1);
  if ((out->stream != "stdout" && out->stream != "stderr") || (tag != "F" && tag != "P")) return false;
  out->partial = tag == "P";
  out->content = std::string(line.substr(sp3 + 1));
  if (!out->content.empty() && out->content.back() == '\n') out->content.pop_back();
  return true;
}

void CriLogWriter::Write(bool is_stderr, std::string_view data) {
  std::string& pending = pending_[is_stderr ? 1 : 0];
  pending.append(data.data(), data.size());
  size_t start = 0;
  while (true) {
    size_t nl = pending.find('\n', start);
    if (nl == std::string::npos) break;
    std::string_view line(pending.data() + start, nl - start);
    while (line.size() > kMaxLineBytes) {
      Emit(is_stderr, line.substr(0, kMaxLineBytes), true);
      line.remove_prefix(kMaxLineBytes);
    }
    Emit(is_stderr, line, false);
    start = nl + 1;
  }
  pending.erase(0, start);
  while (pending.size() > kMaxLineBytes) {
    Emit(is_stderr, std::string_view(pending).substr(0, kMaxLineBytes), true);
    pending.erase(0, kMaxLineBytes);
  }
}

void CriLogWriter::FinishStream(bool is_stderr) {
  std::string& pending = pending_[is_stderr ? 1 : 0];
  if (!pending.empty()) Emit(is_stderr, pending, false);
  pending.clear();
}

void CriLogWriter::Emit(bool is_stderr, std::string_view content, bool partial) {
  if (fd_ < 0) return;
  std::string record = absl::StrCat(FormatTimestamp(NowNanos()), is_stderr ? " stderr " : " stdout ",
                                    partial ? "P " : "F ", absl::string_view(content.data(), content.size()), "\n");
  RotateIfNeeded(record.size());
  size_t off = 0;
  while (off < record.size()) {
    ssize_t n = ::write(fd_, record.data() + off, record.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // disk full: drop rather than block the container
    off += static_cast<size_t>(n);
  }
  size_ += record.size();
}

void CriLogWriter::RotateIfNeeded(size_t incoming) {
  if (max_size_ == 0 || size_ == 0 || size_ + incoming <= max_size_) return;
  time_t now = ::time(nullptr);
  struct tm tm;
  ::gmtime_r(&now, &tm);
  std::string rotated = absl::StrFormat("%s.%04d%02d%02d-%02d%02d%02d", path_, tm.tm_year + 1900,
                                        tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  std::string target = rotated;
  for (int i = 1; ::access(target.c_str(), F_OK) == 0; ++i) target = absl::StrCat(rotated, ".", i);
  if (::rename(path_.c_str(), target.c_str()) != 0) return;
  ::close(fd_);
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  size_ = 0;
  // Keep the newest max_files-1 rotated files (their names sort by time).
  std::string dir = path_.substr(0, path_.rfind('/'));
  std::string base = path_.substr(path_.rfind('/') + 1) + ".";
  std::vector<std::string> old;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      if (std::strncmp(e->d_name, base.c_str(), base.size()) == 0) old.push_back(e->d_name);
    }
    ::closedir(d);
  }
  std::sort(old.begin(), old.end());
  while (old.size() > static_cast<size_t>(max_files_ - 1)) {
    ::unlink((dir + "/" + old.front()).c_str());
    old.erase(old.begin());
  }
}

}  // namespace kelpie::runtime
