// The per-container monitor ("shim"), run as `kelpie runtime-shim`:
//
//   agent --fork/fork/exec--> shim (own session, child subreaper)
//                               |-- runc create (stdio = two pipes the shim reads)
//                               '-- container init (reparented to the shim)
//
// The shim holds the read ends of the container's stdout/stderr pipes and
// copies them into the CRI log file, and it is the container init's parent,
// so it alone can collect the exit status (runc keeps none). When the init
// exits it drains the pipes, reads the cgroup's OOM-kill counter and writes
// exit.json atomically, then exits. Nothing of this involves the agent: a
// restarted or stopped agent leaves containers, their logs and their exit
// codes intact.
//
// Start-up handshake: the shim writes one line to fd 3, "ok <init pid>" once
// `runc create` (or `runc run --detach` with --start) succeeded or
// "error <message>", then closes it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kelpie::runtime {

struct ShimOptions {
  std::string runc = "runc";   // absolute path preferred
  std::string runc_root;
  std::string bundle;
  std::string container_id;
  std::string log_path;
  uint64_t log_max_size = 10 * 1024 * 1024;
  int log_max_files = 5;
  std::string exit_file;       // written atomically when the init exits
  std::string oom_counter_file;  // memory.events or memory.oom_control
  // `runc run --detach` (created and started) instead of `runc create`.
  bool start = false;
};

// The exit.json record.
struct ShimExit {
  int exit_code = 0;  // 128+signal when killed by a signal
  int signal = 0;
  bool oom_killed = false;
  int64_t finished_at_ns = 0;
};
absl::StatusOr<ShimExit> ReadShimExit(const std::string& exit_file);

// The shim's main(); returns the process exit code.
int RunShim(const ShimOptions& options);

// Command-line arguments for `<shim command> ...` matching RunShim's flags.
std::vector<std::string> ShimArguments(const ShimOptions& options);

struct LaunchedShim {
  pid_t shim_pid = 0;
  pid_t init_pid = 0;
};

// Starts `argv` (the shim command and ShimArguments) detached from the
// caller (double fork, new session, stdout/stderr to `shim_log`) and waits
// for its handshake.
absl::StatusOr<LaunchedShim> LaunchShim(const std::vector<std::string>& argv, const std::string& shim_log,
                                        std::chrono::milliseconds timeout);

}  // namespace kelpie::runtime
