#include "orchestrator/kubelet/server/cri_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace kelpie::kubelet {

std::optional<CriLogLine> ParseCriLogLine(std::string_view line) {
  CriLogLine out;
  size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return std::nullopt;
  size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return std::nullopt;
  out.timestamp = line.substr(0, sp1);
  out.stream = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (out.stream != "stdout" && out.stream != "stderr") return std::nullopt;
  std::string_view rest = line.substr(sp2 + 1);
  // Tag: F or P, then one space and the content (which may be empty).
  if (rest.empty() || (rest[0] != 'F' && rest[0] != 'P')) return std::nullopt;
  out.partial = rest[0] == 'P';
  if (rest.size() > 1) {
    if (rest[1] != ' ') return std::nullopt;
    out.content = rest.substr(2);
  }
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, absl::string_view(out.timestamp.data(), out.timestamp.size()), &t, &err)) {
    return std::nullopt;
  }
  out.time_ns = absl::ToUnixNanos(t);
  return out;
}

std::string CriLogFormatter::Format(const CriLogLine& line) {
  std::string out;
  if (options_.since_ns && line.time_ns < *options_.since_ns) return out;
  if (at_line_start_ && options_.timestamps) {
    absl::StrAppend(&out, absl::string_view(line.timestamp.data(), line.timestamp.size()), " ");
  }
  out.append(line.content);
  if (!line.partial) out.push_back('\n');
  at_line_start_ = !line.partial;
  return out;
}

std::string CriLogFormatter::Feed(std::string_view bytes) {
  std::string out;
  if (done_) return out;
  pending_.append(bytes);
  size_t start = 0;
  while (!done_) {
    size_t nl = pending_.find('\n', start);
    if (nl == std::string::npos) break;
    std::string_view record(pending_.data() + start, nl - start);
    start = nl + 1;
    auto line = ParseCriLogLine(record);
    if (!line) continue;  // a torn or foreign line is skipped, as the kubelet does
    std::string piece = Format(*line);
    if (options_.limit_bytes && written_ + static_cast<int64_t>(piece.size()) >= *options_.limit_bytes) {
      piece.resize(static_cast<size_t>(*options_.limit_bytes - written_));
      done_ = true;
    }
    written_ += static_cast<int64_t>(piece.size());
    out += piece;
  }
  pending_.erase(0, start);
  return out;
}

size_t TailOffset(std::string_view file, int64_t lines, std::optional<int64_t> since_ns) {
  if (lines < 0) return 0;
  constexpr size_t kNone = std::string_view::npos;
  // Starts of full (F-terminated) logical lines, oldest first.
  std::vector<size_t> starts;
  size_t pos = 0;
  size_t current_start = kNone;  // of the line whose P records are being read
  while (pos < file.size()) {
    size_t nl = file.find('\n', pos);
    if (nl == std::string_view::npos) break;
    auto line = ParseCriLogLine(file.substr(pos, nl - pos));
    if (line && !(since_ns && line->time_ns < *since_ns)) {
      if (current_start == kNone) current_start = pos;
      if (!line->partial) {
        starts.push_back(current_start);
        current_start = kNone;
      }
    }
    pos = nl + 1;
  }
  if (lines == 0) return file.size();
  // Unterminated partial records at the end belong to the line in progress.
  size_t n = static_cast<size_t>(lines);
  if (current_start != kNone) {
    if (n == 1) return current_start;
    --n;
  }
  if (starts.empty()) return current_start != kNone ? current_start : file.size();
  if (starts.size() <= n) return starts.front();
  return starts[starts.size() - n];
}

namespace {

struct FileId {
  dev_t dev = 0;
  ino_t ino = 0;
};

std::optional<FileId> IdOf(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return std::nullopt;
  return FileId{st.st_dev, st.st_ino};
}

std::optional<FileId> IdOfPath(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return std::nullopt;
  return FileId{st.st_dev, st.st_ino};
}

}  // namespace

absl::Status StreamCriLog(const std::string& path, const CriLogOptions& options, bool follow,
                          const std::function<bool(std::string_view)>& sink,
                          const std::function<bool()>& still_running, const std::function<bool()>& cancelled) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::NotFoundError(absl::StrCat("cannot open log file ", path));
  struct Closer {
    int* fd;
    ~Closer() {
      if (*fd >= 0) ::close(*fd);
    }
  } closer{&fd};

  CriLogFormatter formatter(options);
  std::string buf(64 * 1024, '\0');
  // The tail is found on the file's content at the start.
  if (options.tail_lines) {
    std::string whole;
    while (true) {
      ssize_t n = ::read(fd, buf.data(), buf.size());
      if (n <= 0) break;
      whole.append(buf.data(), static_cast<size_t>(n));
    }
    size_t offset = TailOffset(whole, *options.tail_lines, options.since_ns);
    std::string out = formatter.Feed(std::string_view(whole).substr(offset));
    if (!out.empty() && !sink(out)) return absl::OkStatus();
  }
  auto id = IdOf(fd);
  int idle_rounds_after_exit = 0;
  while (!formatter.done()) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n > 0) {
      std::string out = formatter.Feed(std::string_view(buf.data(), static_cast<size_t>(n)));
      if (!out.empty() && !sink(out)) return absl::OkStatus();
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (!follow || cancelled()) break;
    // At the end of the file: a rotated file is replaced by a new one at the
    // same path; a stopped container writes nothing more.
    auto now_id = IdOfPath(path);
    if (now_id && id && (now_id->ino != id->ino || now_id->dev != id->dev)) {
      int next = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (next >= 0) {
        // Whatever was appended to the old file before the rename first.
        while ((n = ::read(fd, buf.data(), buf.size())) > 0) {
          std::string out = formatter.Feed(std::string_view(buf.data(), static_cast<size_t>(n)));
          if (!out.empty() && !sink(out)) return absl::OkStatus();
        }
        ::close(fd);
        fd = next;
        id = IdOf(fd);
        continue;
      }
    }
    if (!still_running()) {
      // The shim may still be draining the last output: read a little more.
      if (++idle_rounds_after_exit > 3) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return absl::OkStatus();
}

}  // namespace kelpie::kubelet
