// The container runtime as the kubelet sees it: pod sandboxes (network
// namespace, CNI networking, pod cgroup) and the containers inside them.
// Shaped after the Kubernetes CRI RuntimeService so that a CRI backend
// (containerd, CRI-O over gRPC) can implement the same interface later.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "orchestrator/runtime/step_timings.h"

namespace kelpie::runtime {

struct PortMapping {
  std::string protocol = "tcp";  // tcp, udp, sctp
  int container_port = 0;
  int host_port = 0;
  std::string host_ip;  // "" = every host address
};

struct DnsConfig {
  std::vector<std::string> servers;   // empty: the host's resolv.conf is used
  std::vector<std::string> searches;
  std::vector<std::string> options;
};

struct PodSandboxConfig {
  std::string name;
  std::string pod_namespace;
  std::string uid;
  std::string hostname;  // "" = the pod name
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  std::vector<PortMapping> port_mappings;
  DnsConfig dns;
  // When set, the runtime records how long each step of RunPodSandbox took
  // (not owned; must outlive the call).
  StepTimings* timings = nullptr;
};

enum class SandboxState { kReady, kNotReady };

struct PodSandboxStatus {
  std::string id;
  PodSandboxConfig config;
  SandboxState state = SandboxState::kNotReady;
  std::string ip;          // pod IPv4 address, "" when not networked
  std::string netns_path;  // bind-mounted network namespace ("" once stopped)
  // The pod's cgroup v2 directory and its id (the directory's inode, which is
  // what bpf_get_current_cgroup_id() and cgroup/skb programs see).
  std::string cgroup_path;
  uint64_t cgroup_id = 0;
  std::string log_directory;  // <log root>/<namespace>_<name>_<uid>
  int64_t created_at_ns = 0;
};

struct VolumeMount {
  std::string host_path;       // prepared by the caller (see VolumeWriter)
  std::string container_path;
  bool read_only = false;
};

struct SecurityContext {
  std::optional<int64_t> run_as_user;
  std::optional<int64_t> run_as_group;
  bool run_as_non_root = false;
  std::vector<int64_t> supplemental_groups;
  std::vector<std::string> capabilities_add;   // "NET_ADMIN" or "CAP_NET_ADMIN", "ALL"
  std::vector<std::string> capabilities_drop;
  bool privileged = false;
  bool read_only_root_filesystem = false;
  std::optional<bool> allow_privilege_escalation;  // false -> noNewPrivileges
};

struct Resources {
  int64_t cpu_request_millis = 0;  // -> cpu shares (v1) / cpu.weight (v2)
  int64_t cpu_limit_millis = 0;    // -> cpu quota over a 100 ms period
  int64_t memory_limit_bytes = 0;  // -> memory limit; exceeding it is OOMKilled
};

struct ContainerConfig {
  std::string name;
  int attempt = 0;  // restart count: the log file is <attempt>.log
  std::string image;  // reference in the image store
  std::vector<std::string> command;  // Kubernetes "command" (replaces Entrypoint)
  std::vector<std::string> args;     // Kubernetes "args" (replaces Cmd)
  std::vector<std::pair<std::string, std::string>> env;
  std::string working_dir;
  std::vector<VolumeMount> mounts;
  SecurityContext security;
  Resources resources;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  // When set, the runtime records how long each step of CreateContainer,
  // StartContainer or RunContainer took (not owned; must outlive the call).
  StepTimings* timings = nullptr;
};

enum class ContainerState { kCreated, kRunning, kExited, kUnknown };

const char* ContainerStateName(ContainerState state);

struct ContainerStatus {
  std::string id;
  std::string sandbox_id;
  std::string name;
  int attempt = 0;
  std::string image;
  std::string image_digest;  // manifest digest
  ContainerState state = ContainerState::kUnknown;
  pid_t pid = 0;  // host pid of the container's init process while it runs
  int64_t created_at_ns = 0;
  int64_t started_at_ns = 0;
  int64_t finished_at_ns = 0;
  int exit_code = 0;
  std::string reason;   // Completed, Error, OOMKilled, ContainerStatusUnknown
  std::string message;
  std::string log_path;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
};

struct ExecSyncResult {
  int exit_code = -1;
  bool timed_out = false;
  std::string stdout_text;
  std::string stderr_text;
};

struct ExecRequest {
  std::vector<std::string> command;
  bool stdin = false;  // false: the process reads /dev/null
};

// A process started in a running container whose standard streams the caller
// drives (what `kubectl exec` connects to). Closing stdin sends EOF.
class ExecSession {
 public:
  virtual ~ExecSession() = default;
  virtual int stdin_fd() const = 0;   // -1 when the request had no stdin
  virtual int stdout_fd() const = 0;  // read until EOF
  virtual int stderr_fd() const = 0;
  virtual void CloseStdin() = 0;
  // Waits for the process; returns its exit code (128+signal when killed).
  virtual absl::StatusOr<int> Wait(std::chrono::milliseconds timeout) = 0;
  // SIGKILLs the process inside the container.
  virtual void Kill() = 0;
};

class PodRuntime {
 public:
  virtual ~PodRuntime() = default;

  // Creates the pod's network namespace, networks it (CNI ADD) and makes its
  // cgroup. Returns the sandbox id.
  virtual absl::StatusOr<std::string> RunPodSandbox(const PodSandboxConfig& config) = 0;
  // Kills every container of the sandbox and tears its network down (CNI
  // DEL, network namespace removed). Idempotent.
  virtual absl::Status StopPodSandbox(const std::string& sandbox_id) = 0;
  // Stops the sandbox if needed, removes its containers, cgroup, state and
  // log directory. Idempotent: removing an unknown sandbox succeeds.
  virtual absl::Status RemovePodSandbox(const std::string& sandbox_id) = 0;
  virtual absl::StatusOr<PodSandboxStatus> GetPodSandboxStatus(const std::string& sandbox_id) = 0;
  virtual absl::StatusOr<std::vector<PodSandboxStatus>> ListPodSandboxes() = 0;

  virtual absl::StatusOr<std::string> CreateContainer(const std::string& sandbox_id,
                                                      const ContainerConfig& config) = 0;
  virtual absl::Status StartContainer(const std::string& container_id) = 0;
  // CreateContainer then StartContainer, which a runtime may do in one go
  // (cheaper); on a failed start the container is removed again. Errors of
  // the start itself are returned as absl::StatusCode::kAborted.
  virtual absl::StatusOr<std::string> RunContainer(const std::string& sandbox_id, const ContainerConfig& config) {
    auto id = CreateContainer(sandbox_id, config);
    if (!id.ok()) return id;
    ScopedStep start_step(config.timings, "start");
    if (absl::Status st = StartContainer(*id); !st.ok()) {
      (void)RemoveContainer(*id);
      return absl::AbortedError(st.message());
    }
    return id;
  }
  // SIGTERM, then SIGKILL once `grace` has passed; returns when it exited.
  virtual absl::Status StopContainer(const std::string& container_id,
                                     std::chrono::seconds grace) = 0;
  virtual absl::Status RemoveContainer(const std::string& container_id) = 0;
  virtual absl::StatusOr<ContainerStatus> GetContainerStatus(const std::string& container_id) = 0;
  // Every container, or those of one sandbox.
  virtual absl::StatusOr<std::vector<ContainerStatus>> ListContainers(
      const std::string& sandbox_id = "") = 0;

  virtual absl::StatusOr<ExecSyncResult> ExecSync(const std::string& container_id,
                                                  const std::vector<std::string>& command,
                                                  std::chrono::milliseconds timeout) = 0;
  virtual absl::StatusOr<std::unique_ptr<ExecSession>> Exec(const std::string& container_id,
                                                            const ExecRequest& request) = 0;
};

}  // namespace kelpie::runtime
