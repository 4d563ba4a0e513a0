// Running other programs (runc, CNI plugins, kubectl in tests) without a shell.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kelpie {

struct SubprocessResult {
  int exit_code = -1;     // valid when exited normally
  int term_signal = 0;    // non-zero when killed by a signal
  bool timed_out = false;
  std::string stdout_text;
  std::string stderr_text;

  bool Succeeded() const { return !timed_out && term_signal == 0 && exit_code == 0; }
};

struct SubprocessOptions {
  std::chrono::milliseconds timeout{std::chrono::seconds(30)};
  std::optional<std::string> stdin_text;
  // Extra variables added to (or replacing those of) the current environment.
  std::map<std::string, std::string> env;
  std::optional<std::string> working_dir;
};

// Runs argv[0] (looked up in PATH) to completion and captures its output.
// On timeout the child gets SIGKILL. Fails only when the program cannot start.
absl::StatusOr<SubprocessResult> RunSubprocess(const std::vector<std::string>& argv,
                                               const SubprocessOptions& options = {});

// Finds an executable in PATH (or the given absolute path); nullopt if absent.
std::optional<std::string> FindExecutable(const std::string& name);

// A long-running child process whose lifetime this object owns: the
// destructor kills (SIGKILL) and reaps it if it is still running. Only ever
// signals the process it started, by pid.
class ChildProcess {
 public:
  struct Options {
    std::map<std::string, std::string> env;
    std::string stdout_path = "/dev/null";  // file that receives stdout and stderr
    // SIGKILL the child when this process dies, even without running the
    // destructor (an aborted test): tests' servers never outlive the test.
    bool kill_with_parent = false;
  };

  static absl::StatusOr<ChildProcess> Start(const std::vector<std::string>& argv,
                                            const Options& options);

  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  bool running();
  void Signal(int signo);
  // Waits up to `timeout` for the child to exit; returns its wait status or
  // nullopt on timeout.
  std::optional<int> Wait(std::chrono::milliseconds timeout);

 private:
  explicit ChildProcess(pid_t pid) : pid_(pid) {}
  pid_t pid_ = -1;
  std::optional<int> exit_status_;
};

}  // namespace kelpie
