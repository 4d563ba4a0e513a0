#include "dataplane/libbpf_errors.h"

#include <bpf/libbpf.h>

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"

namespace kelpie::dataplane {
namespace {

constexpr size_t kKeptLines = 12;
thread_local std::deque<std::string> captured;

int PrintCallback(enum libbpf_print_level level, const char* format, va_list args) {
  char buf[1024];
  int n = std::vsnprintf(buf, sizeof(buf), format, args);
  if (n <= 0) return 0;
  std::string line(buf, std::min<size_t>(static_cast<size_t>(n), sizeof(buf) - 1));
  while (!line.empty() && line.back() == '\n') line.pop_back();
  if (line.rfind("libbpf: ", 0) == 0) line.erase(0, 8);
  if (level != LIBBPF_DEBUG) {
    captured.push_back(line);
    if (captured.size() > kKeptLines) captured.pop_front();
  }
  spdlog::debug("libbpf: {}", line);
  return 0;
}

}  // namespace

void InstallLibbpfLogging() {
  static std::once_flag once;
  std::call_once(once, [] { libbpf_set_print(PrintCallback); });
}

void ClearLibbpfMessages() { captured.clear(); }

absl::Status LibbpfError(absl::string_view what, int err) {
  int e = err < 0 ? -err : err;
  std::string msg = absl::StrCat(what, ": ", std::strerror(e));
  if (!captured.empty()) absl::StrAppend(&msg, " (libbpf: ", absl::StrJoin(captured, " | "), ")");
  captured.clear();
  return absl::Status(absl::ErrnoToStatusCode(e), msg);
}

}  // namespace kelpie::dataplane
