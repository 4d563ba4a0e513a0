#include "orchestrator/runtime/runc/container_shim.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/files.h"
#include "orchestrator/runtime/cgroup/pod_cgroups.h"
#include "orchestrator/runtime/runc/cri_log_writer.h"

namespace kelpie::runtime {
namespace {

using nlohmann::json;

constexpr int kSyncFd = 3;

int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void WriteAll(int fd, const std::string& text) {
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

// The last error runc logged (its --log file holds one JSON object per line).
std::string LastRuncError(const std::string& runc_log, const std::string& fallback) {
  auto text = ReadFileToString(runc_log);
  std::string message;
  if (text.ok()) {
    for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
      json entry = json::parse(line.begin(), line.end(), nullptr, false);
      if (entry.is_object() && entry.value("level", "") == "error") message = entry.value("msg", "");
    }
  }
  if (message.empty()) message = std::string(absl::StripAsciiWhitespace(fallback));
  if (message.empty()) message = "runc failed";
  return message;
}

std::string ReadAvailable(int fd) {
  std::string out;
  char buf[4096];
  int flags = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::fcntl(fd, F_SETFL, flags);
  return out;
}

}  // namespace

std::vector<std::string> ShimArguments(const ShimOptions& o) {
  std::vector<std::string> args = {"--runc", o.runc, "--runc-root", o.runc_root, "--bundle", o.bundle, "--id", o.container_id,
          "--log-path", o.log_path, "--log-max-size", std::to_string(o.log_max_size),
          "--log-max-files", std::to_string(o.log_max_files), "--exit-file", o.exit_file,
          "--oom-counter-file", o.oom_counter_file};
  if (o.start) args.push_back("--start");
  return args;
}

absl::StatusOr<ShimExit> ReadShimExit(const std::string& exit_file) {
  auto text = ReadFileToString(exit_file);
  if (!text.ok()) return text.status();
  json doc = json::parse(*text, nullptr, false);
  if (!doc.is_object()) return absl::DataLossError(absl::StrCat(exit_file, ": not a JSON object"));
  ShimExit exit;
  exit.exit_code = doc.value("exitCode", 0);
  exit.signal = doc.value("signal", 0);
  exit.oom_killed = doc.value("oomKilled", false);
  exit.finished_at_ns = doc.value("finishedAt", int64_t{0});
  return exit;
}

int RunShim(const ShimOptions& o) {
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t chld, old_mask;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &chld, &old_mask);
  int sfd = ::signalfd(-1, &chld, SFD_CLOEXEC);

  auto fail = [&](const std::string& message) {
    WriteAll(kSyncFd, absl::StrCat("error ", message, "\n"));
    ::close(kSyncFd);
    return 1;
  };
  if (sfd < 0) return fail(absl::StrCat("signalfd: ", std::strerror(errno)));

  CriLogWriter log(o.log_path, o.log_max_size, o.log_max_files);
  if (auto s = log.Open(); !s.ok()) return fail(std::string(s.message()));

  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) {
    return fail(absl::StrCat("pipe: ", std::strerror(errno)));
  }
  const std::string pid_file = o.bundle + "/init.pid";
  const std::string runc_log = o.bundle + "/runc.log";
  ::unlink(pid_file.c_str());
  std::vector<std::string> args = {o.runc, "--root", o.runc_root, "--log", runc_log, "--log-format", "json"};
  if (o.start) {
    args.insert(args.end(), {"run", "--detach"});
  } else {
    args.push_back("create");
  }
  args.insert(args.end(), {"--bundle", o.bundle, "--pid-file", pid_file, o.container_id});
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  pid_t runc_pid = ::fork();
  if (runc_pid < 0) return fail(absl::StrCat("fork: ", std::strerror(errno)));
  if (runc_pid == 0) {
    ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
    int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, STDIN_FILENO);
    ::dup2(out_pipe[1], STDOUT_FILENO);
    ::dup2(err_pipe[1], STDERR_FILENO);
    ::close(kSyncFd);
    ::execv(argv[0], argv.data());
    _exit(127);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);

  int runc_status = 0;
  while (::waitpid(runc_pid, &runc_status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(runc_status) || WEXITSTATUS(runc_status) != 0) {
    std::string output = ReadAvailable(err_pipe[0]) + ReadAvailable(out_pipe[0]);
    return fail(LastRuncError(runc_log, output));
  }
  std::string pid_text;
  if (auto t = ReadFileToString(pid_file); t.ok()) pid_text = *t;
  pid_t init_pid = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(pid_text), &init_pid) || init_pid <= 0) {
    return fail(absl::StrCat("runc ", o.start ? "run" : "create", " wrote no pid to ", pid_file));
  }
  WriteAll(kSyncFd, absl::StrCat("ok ", init_pid, " ", ::getpid(), "\n"));
  ::close(kSyncFd);

  // Copy output until the init has exited and both pipes are drained (or a
  // grace period after the exit: a daemonized grandchild may hold a pipe).
  pollfd fds[3] = {{sfd, POLLIN, 0}, {out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  bool exited = false;
  int wait_status = 0;
  int64_t exited_at = 0;
  std::chrono::steady_clock::time_point drain_deadline;
  char buf[32768];
  while (true) {
    bool pipes_open = fds[1].fd >= 0 || fds[2].fd >= 0;
    if (exited && (!pipes_open || std::chrono::steady_clock::now() >= drain_deadline)) break;
    int timeout_ms = -1;
    if (exited) {
      timeout_ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        drain_deadline - std::chrono::steady_clock::now())
                                        .count());
      if (timeout_ms < 0) timeout_ms = 0;
    }
    int rc = ::poll(fds, 3, timeout_ms);
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) break;
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo info;
      // Signals coalesce: one read, then reap every child that exited.
      (void)!::read(sfd, &info, sizeof(info));
      int status = 0;
      pid_t pid;
      while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid == init_pid) {
          exited = true;
          wait_status = status;
          exited_at = NowNanos();
          drain_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
        }
      }
    }
    for (int i = 1; i <= 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof(buf));
      if (n > 0) {
        log.Write(i == 2, std::string_view(buf, static_cast<size_t>(n)));
      } else if (n == 0 || errno != EINTR) {
        log.FinishStream(i == 2);
        ::close(fds[i].fd);
        fds[i].fd = -1;
      }
    }
  }
  log.FinishStream(false);
  log.FinishStream(true);

  ShimExit exit;
  if (WIFEXITED(wait_status)) {
    exit.exit_code = WEXITSTATUS(wait_status);
  } else if (WIFSIGNALED(wait_status)) {
    exit.signal = WTERMSIG(wait_status);
    exit.exit_code = 128 + exit.signal;
  }
  exit.oom_killed = !o.oom_counter_file.empty() && ReadOomKillCount(o.oom_counter_file) > 0;
  exit.finished_at_ns = exited_at;
  json doc = {{"exitCode", exit.exit_code}, {"signal", exit.signal}, {"oomKilled", exit.oom_killed},
              {"finishedAt", exit.finished_at_ns}};
  auto s = WriteFileAtomically(o.exit_file, doc.dump(), 0644);
  return s.ok() ? 0 : 2;
}

absl::StatusOr<LaunchedShim> LaunchShim(const std::vector<std::string>& command, const std::string& shim_log,
                                        std::chrono::milliseconds timeout) {
  if (command.empty()) return absl::InvalidArgumentError("empty shim command");
  int sync[2];
  if (::pipe2(sync, O_CLOEXEC) != 0) return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  int log_fd = ::open(shim_log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (log_fd < 0) {
    ::close(sync[0]);
    ::close(sync[1]);
    return absl::InternalError(absl::StrCat("open ", shim_log, ": ", std::strerror(errno)));
  }
  std::vector<std::string> args = command;
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  // Only async-signal-safe calls between fork and exec: the agent has threads.
  pid_t middle = ::fork();
  if (middle < 0) {
    ::close(sync[0]);
    ::close(sync[1]);
    ::close(log_fd);
    return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  }
  if (middle == 0) {
    pid_t shim = ::fork();
    if (shim == 0) {
      ::setsid();
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      int devnull = ::open("/dev/null", O_RDONLY);
      ::dup2(devnull, STDIN_FILENO);
      ::dup2(log_fd, STDOUT_FILENO);
      ::dup2(log_fd, STDERR_FILENO);
      if (sync[1] == kSyncFd) {
        ::fcntl(kSyncFd, F_SETFD, 0);
      } else {
        ::dup2(sync[1], kSyncFd);
      }
      ::syscall(SYS_close_range, kSyncFd + 1, ~0U, 0);
      ::execv(argv[0], argv.data());
      _exit(127);
    }
    _exit(shim < 0 ? 1 : 0);
  }
  ::close(sync[1]);
  ::close(log_fd);
  int status = 0;
  while (::waitpid(middle, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    ::close(sync[0]);
    return absl::InternalError("could not fork the container shim");
  }
  std::string reply;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      ::close(sync[0]);
      return absl::DeadlineExceededError(absl::StrCat("the container shim did not report within ",
                                                      timeout.count(), " ms (see ", shim_log, ")"));
    }
    pollfd p = {sync[0], POLLIN, 0};
    int rc = ::poll(&p, 1, static_cast<int>(left.count()));
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) continue;
    ssize_t n = ::read(sync[0], buf, sizeof(buf));
    if (n > 0) {
      reply.append(buf, static_cast<size_t>(n));
      continue;
    }
    break;
  }
  ::close(sync[0]);
  reply = std::string(absl::StripAsciiWhitespace(reply));
  if (absl::StartsWith(reply, "ok ")) {
    std::vector<std::string> parts = absl::StrSplit(reply, ' ');
    LaunchedShim launched;
    if (parts.size() == 3 && absl::SimpleAtoi(parts[1], &launched.init_pid) &&
        absl::SimpleAtoi(parts[2], &launched.shim_pid)) {
      return launched;
    }
  }
  if (absl::StartsWith(reply, "error ")) return absl::InternalError(reply.substr(6));
  auto log = ReadFileToString(shim_log);
  return absl::InternalError(absl::StrCat("the container shim failed to start: ",
                                          reply.empty() ? (log.ok() ? *log : "no output") : reply));
}

}  // namespace kelpie::runtime
