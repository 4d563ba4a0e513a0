#include "orchestrator/runtime/runc_pod_runtime.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <string_view>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/files.h"
#include "common/log.h"
#include "orchestrator/runtime/image/image_store.h"
#include "orchestrator/runtime/network/network_namespace.h"
#include "orchestrator/runtime/oci/oci_spec.h"
#include "orchestrator/runtime/runc/container_shim.h"

namespace kelpie::runtime {
namespace {

using nlohmann::json;

int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string RandomId() {
  std::random_device rd;
  std::string id;
  static const char* hex = "0123456789abcdef";
  for (int i = 0; i < 32; ++i) id.push_back(hex[rd() % 16]);
  return id;
}

bool SafeName(const std::string& s) {
  if (s.empty() || s.size() > 253 || s == "." || s == "..") return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_')) return false;
  }
  return true;
}

bool ValidId(const std::string& id) {
  if (id.size() != 32) return false;
  return std::all_of(id.begin(), id.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

// Start time (clock ticks since boot, field 22 of /proc/<pid>/stat): a pid
// plus its start time names one process even after pid reuse.
uint64_t ProcessStartTime(pid_t pid) {
  if (pid <= 0) return 0;
  auto stat = ReadFileToString(absl::StrCat("/proc/", pid, "/stat"));
  if (!stat.ok()) return 0;
  auto close = stat->rfind(')');
  if (close == std::string::npos) return 0;
  std::vector<std::string> fields = absl::StrSplit(stat->substr(close + 2), ' ');
  // fields[0] is field 3 (state); start time is field 22.
  uint64_t start = 0;
  if (fields.size() > 19 && fields[0] != "Z" && absl::SimpleAtoi(fields[19], &start)) return start;
  return 0;
}

bool IsMountPoint(const std::string& path) {
  struct stat self, parent;
  if (::stat(path.c_str(), &self) != 0) return false;
  std::string up = path.substr(0, path.rfind('/'));
  if (::stat(up.c_str(), &parent) != 0) return false;
  return self.st_dev != parent.st_dev;
}

absl::Status Unmount(const std::string& path) {
  for (int i = 0; i < 8 && IsMountPoint(path); ++i) {
    if (::umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
      return absl::InternalError(absl::StrCat("umount ", path, ": ", std::strerror(errno)));
    }
  }
  if (IsMountPoint(path)) return absl::InternalError(absl::StrCat(path, " is still mounted"));
  return absl::OkStatus();
}

json MapToJson(const std::map<std::string, std::string>& m) {
  json out = json::object();
  for (const auto& [k, v] : m) out[k] = v;
  return out;
}

std::map<std::string, std::string> MapFromJson(const json& j) {
  std::map<std::string, std::string> out;
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.value().is_string()) out[it.key()] = it.value().get<std::string>();
    }
  }
  return out;
}

std::vector<std::string> Strings(const json& j) {
  std::vector<std::string> out;
  if (j.is_array()) {
    for (const json& e : j) {
      if (e.is_string()) out.push_back(e.get<std::string>());
    }
  }
  return out;
}

// Replaces `path` atomically (temporary file + rename) without fsync: what
// these files describe (netns mounts, cgroups, container processes) does not
// survive a host crash either, and an agent crash sees the renamed file
// whole. Skipping the flush saves several synchronous disk writes per pod
// start, which under load cost more than everything else in the runtime.
absl::Status WriteStateFile(const std::string& path, std::string_view contents, mode_t mode) {
  std::string tmp = absl::StrCat(path, ".tmp.", ::getpid(), ".", ::syscall(SYS_gettid));
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return absl::InternalError(absl::StrCat("create ", tmp, ": ", std::strerror(errno)));
  absl::Status status;
  if (::fchmod(fd, mode) != 0) status = absl::InternalError(absl::StrCat("chmod ", tmp, ": ", std::strerror(errno)));
  size_t written = 0;
  while (status.ok() && written < contents.size()) {
    ssize_t n = ::write(fd, contents.data() + written, contents.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      status = absl::InternalError(absl::StrCat("write ", tmp, ": ", std::strerror(errno)));
      break;
    }
    written += static_cast<size_t>(n);
  }
  ::close(fd);
  if (status.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    status = absl::InternalError(absl::StrCat("rename onto ", path, ": ", std::strerror(errno)));
  }
  if (!status.ok()) ::unlink(tmp.c_str());
  return status;
}

absl::Status RemoveTree(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (ec) return absl::InternalError(absl::StrCat("remove ", path, ": ", ec.message()));
  return absl::OkStatus();
}

}  // namespace

const char* ContainerStateName(ContainerState state) {
  switch (state) {
    case ContainerState::kCreated: return "created";
    case ContainerState::kRunning: return "running";
    case ContainerState::kExited: return "exited";
    case ContainerState::kUnknown: break;
  }
  return "unknown";
}

struct RuncPodRuntime::SandboxRecord {
  PodSandboxStatus status;
  std::string cgroup_relative_path;
  std::string cni_result;  // the ADD result while networked, "" once deleted
};

struct RuncPodRuntime::ContainerRecord {
  ContainerStatus status;  // the static parts: id, names, image, times, log path
  std::string pod_uid;
  std::string cgroup_relative_path;
  pid_t shim_pid = 0;
  uint64_t shim_start_time = 0;
  pid_t init_pid = 0;
  uint64_t init_start_time = 0;
};

RuncPodRuntime::RuncPodRuntime(RuncRuntimeOptions options, image::ImageStore& images, PodCgroups cgroups,
                               CniNetwork network)
    : options_(std::move(options)), images_(images), cgroups_(std::move(cgroups)), network_(std::move(network)) {}

absl::StatusOr<std::unique_ptr<RuncPodRuntime>> RuncPodRuntime::Create(RuncRuntimeOptions options,
                                                                       image::ImageStore& images,
                                                                       std::optional<CgroupHierarchy> hierarchy) {
  if (options.state_dir.empty() || options.state_dir[0] != '/') {
    return absl::InvalidArgumentError("runtime state directory must be an absolute path");
  }
  if (options.shim_command.empty()) return absl::InvalidArgumentError("runtime: no shim command");
  auto runc = FindExecutable(options.runc);
  if (!runc) return absl::FailedPreconditionError(absl::StrCat(options.runc, " not found (install runc)"));
  options.runc = *runc;
  if (!hierarchy) {
    auto detected = DetectCgroupHierarchy();
    if (!detected.ok()) return detected.status();
    hierarchy = *detected;
  }
  for (const char* sub : {"/sandboxes", "/containers", "/netns", "/runc"}) {
    if (auto s = MakeDirectories(options.state_dir + sub, 0700); !s.ok()) return s;
  }
  if (auto s = MakeDirectories(options.log_dir, 0755); !s.ok()) return s;
  if (options.cni.state_dir.empty()) options.cni.state_dir = options.state_dir + "/cni";
  auto network = CniNetwork::Create(options.cni);
  if (!network.ok()) return network.status();
  PodCgroups cgroups(*hierarchy, options.cgroup_parent);
  return std::unique_ptr<RuncPodRuntime>(
      new RuncPodRuntime(std::move(options), images, std::move(cgroups), std::move(*network)));
}

std::string RuncPodRuntime::SandboxDir(const std::string& id) const {
  return absl::StrCat(options_.state_dir, "/sandboxes/", id);
}
std::string RuncPodRuntime::ContainerDir(const std::string& id) const {
  return absl::StrCat(options_.state_dir, "/containers/", id);
}
std::string RuncPodRuntime::NetnsPath(const std::string& id) const {
  return absl::StrCat(options_.state_dir, "/netns/", id);
}

absl::StatusOr<SubprocessResult> RuncPodRuntime::Runc(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {options_.runc, "--root", runc_root()};
  argv.insert(argv.end(), args.begin(), args.end());
  SubprocessOptions o;
  o.timeout = std::chrono::seconds(60);
  return RunSubprocess(argv, o);
}

std::vector<std::string> RuncPodRuntime::ListIds(const std::string& dir) const {
  std::vector<std::string> ids;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      if (ValidId(e->d_name)) ids.push_back(e->d_name);
    }
    ::closedir(d);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

// ---- records ---------------------------------------------------------------

absl::Status RuncPodRuntime::SaveSandbox(const SandboxRecord& r) const {
  const PodSandboxStatus& s = r.status;
  json ports = json::array();
  for (const PortMapping& p : s.config.port_mappings) {
    ports.push_back({{"protocol", p.protocol}, {"containerPort", p.container_port},
                     {"hostPort", p.host_port}, {"hostIP", p.host_ip}});
  }
  json doc = {
      {"id", s.id},
      {"name", s.config.name},
      {"namespace", s.config.pod_namespace},
      {"uid", s.config.uid},
      {"hostname", s.config.hostname},
      {"labels", MapToJson(s.config.labels)},
      {"annotations", MapToJson(s.config.annotations)},
      {"portMappings", ports},
      {"dns", {{"servers", s.config.dns.servers}, {"searches", s.config.dns.searches},
               {"options", s.config.dns.options}}},
      {"state", s.state == SandboxState::kReady ? "ready" : "notready"},
      {"ip", s.ip},
      {"netns", s.netns_path},
      {"cgroupPath", s.cgroup_path},
      {"cgroupRelativePath", r.cgroup_relative_path},
      {"cgroupId", s.cgroup_id},
      {"logDirectory", s.log_directory},
      {"createdAt", s.created_at_ns},
      {"cniResult", r.cni_result},
  };
  return WriteStateFile(SandboxDir(s.id) + "/sandbox.json", doc.dump(2), 0600);
}

absl::StatusOr<RuncPodRuntime::SandboxRecord> RuncPodRuntime::LoadSandbox(const std::string& id) const {
  if (!ValidId(id)) return absl::NotFoundError(absl::StrCat("pod sandbox '", id, "' not found"));
  auto text = ReadFileToString(SandboxDir(id) + "/sandbox.json");
  if (!text.ok()) return absl::NotFoundError(absl::StrCat("pod sandbox ", id, " not found"));
  json doc = json::parse(*text, nullptr, false);
  if (!doc.is_object()) return absl::DataLossError(absl::StrCat("sandbox ", id, ": damaged sandbox.json"));
  SandboxRecord r;
  PodSandboxStatus& s = r.status;
  s.id = id;
  s.config.name = doc.value("name", "");
  s.config.pod_namespace = doc.value("namespace", "");
  s.config.uid = doc.value("uid", "");
  s.config.hostname = doc.value("hostname", "");
  s.config.labels = MapFromJson(doc.value("labels", json::object()));
  s.config.annotations = MapFromJson(doc.value("annotations", json::object()));
  for (const json& p : doc.value("portMappings", json::array())) {
    s.config.port_mappings.push_back({p.value("protocol", "tcp"), p.value("containerPort", 0),
                                      p.value("hostPort", 0), p.value("hostIP", "")});
  }
  json dns = doc.value("dns", json::object());
  s.config.dns.servers = Strings(dns.value("servers", json::array()));
  s.config.dns.searches = Strings(dns.value("searches", json::array()));
  s.config.dns.options = Strings(dns.value("options", json::array()));
  s.state = doc.value("state", "") == "ready" ? SandboxState::kReady : SandboxState::kNotReady;
  s.ip = doc.value("ip", "");
  s.netns_path = doc.value("netns", "");
  s.cgroup_path = doc.value("cgroupPath", "");
  s.cgroup_id = doc.value("cgroupId", uint64_t{0});
  s.log_directory = doc.value("logDirectory", "");
  s.created_at_ns = doc.value("createdAt", int64_t{0});
  r.cgroup_relative_path = doc.value("cgroupRelativePath", "");
  r.cni_result = doc.value("cniResult", "");
  return r;
}

absl::Status RuncPodRuntime::SaveContainer(const ContainerRecord& r) const {
  const ContainerStatus& s = r.status;
  json doc = {
      {"id", s.id},
      {"sandboxId", s.sandbox_id},
      {"name", s.name},
      {"attempt", s.attempt},
      {"image", s.image},
      {"imageDigest", s.image_digest},
      {"createdAt", s.created_at_ns},
      {"startedAt", s.started_at_ns},
      {"logPath", s.log_path},
      {"labels", MapToJson(s.labels)},
      {"annotations", MapToJson(s.annotations)},
      {"podUid", r.pod_uid},
      {"cgroupRelativePath", r.cgroup_relative_path},
      {"shimPid", r.shim_pid},
      {"shimStartTime", r.shim_start_time},
      {"initPid", r.init_pid},
      {"initStartTime", r.init_start_time},
  };
  return WriteStateFile(ContainerDir(s.id) + "/container.json", doc.dump(2), 0600);
}

absl::StatusOr<RuncPodRuntime::ContainerRecord> RuncPodRuntime::LoadContainer(const std::string& id) const {
  if (!ValidId(id)) return absl::NotFoundError(absl::StrCat("container '", id, "' not found"));
  auto text = ReadFileToString(ContainerDir(id) + "/container.json");
  if (!text.ok()) return absl::NotFoundError(absl::StrCat("container ", id, " not found"));
  json doc = json::parse(*text, nullptr, false);
  if (!doc.is_object()) return absl::DataLossError(absl::StrCat("container ", id, ": damaged container.json"));
  ContainerRecord r;
  ContainerStatus& s = r.status;
  s.id = id;
  s.sandbox_id = doc.value("sandboxId", "");
  s.name = doc.value("name", "");
  s.attempt = doc.value("attempt", 0);
  s.image = doc.value("image", "");
  s.image_digest = doc.value("imageDigest", "");
  s.created_at_ns = doc.value("createdAt", int64_t{0});
  s.started_at_ns = doc.value("startedAt", int64_t{0});
  s.log_path = doc.value("logPath", "");
  s.labels = MapFromJson(doc.value("labels", json::object()));
  s.annotations = MapFromJson(doc.value("annotations", json::object()));
  r.pod_uid = doc.value("podUid", "");
  r.cgroup_relative_path = doc.value("cgroupRelativePath", "");
  r.shim_pid = doc.value("shimPid", 0);
  r.shim_start_time = doc.value("shimStartTime", uint64_t{0});
  r.init_pid = doc.value("initPid", 0);
  r.init_start_time = doc.value("initStartTime", uint64_t{0});
  return r;
}

// ---- sandboxes --------------------------------------------------------------

absl::StatusOr<std::string> RuncPodRuntime::RunPodSandbox(const PodSandboxConfig& config) {
  if (!SafeName(config.name) || !SafeName(config.pod_namespace) || !SafeName(config.uid)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pod sandbox needs a name, namespace and uid made of letters, digits, '-', '.', '_' (got '",
        config.name, "', '", config.pod_namespace, "', '", config.uid, "')"));
  }
  SandboxRecord r;
  PodSandboxStatus& s = r.status;
  s.id = RandomId();
  SandboxGuard guard = LockSandbox(s.id);
  s.config = config;
  if (s.config.hostname.empty()) s.config.hostname = config.name.substr(0, 63);
  s.created_at_ns = NowNanos();
  s.log_directory = absl::StrCat(options_.log_dir, "/", config.pod_namespace, "_", config.name, "_", config.uid);
  StepTimings* timings = config.timings;
  s.config.timings = nullptr;
  const std::string dir = SandboxDir(s.id);
  ScopedStep record_step(timings, "sandbox record");
  if (auto st = MakeDirectories(dir, 0700); !st.ok()) return st;
  // Recorded before anything is made, so RemovePodSandbox can clean up after
  // a crash half-way.
  if (auto st = SaveSandbox(r); !st.ok()) return st;
  record_step.Finish();

  auto fail = [&](absl::Status status) -> absl::StatusOr<std::string> {
    (void)StopSandboxLocked(r);
    (void)RemoveTree(dir);
    return status;
  };

  ScopedStep cgroup_step(timings, "cgroup");
  auto cgroup = cgroups_.CreatePod(config.uid);
  if (!cgroup.ok()) return fail(cgroup.status());
  s.cgroup_path = cgroup->path;
  s.cgroup_id = cgroup->id;
  r.cgroup_relative_path = cgroup->relative_path;
  if (auto st = MakeDirectories(s.log_directory, 0755); !st.ok()) return fail(st);
  cgroup_step.Finish();

  ScopedStep netns_step(timings, "netns");
  s.netns_path = NetnsPath(s.id);
  if (auto st = SaveSandbox(r); !st.ok()) return fail(st);
  if (auto st = CreateNetworkNamespace(s.netns_path); !st.ok()) return fail(st);
  netns_step.Finish();

  CniAttachment attachment{s.id, s.netns_path, "eth0", config.name, config.pod_namespace, config.port_mappings};
  auto result = network_.Add(attachment, timings);
  if (!result.ok()) return fail(result.status());
  s.ip = result->ip;
  r.cni_result = result->raw_json;
  s.state = SandboxState::kReady;

  // The files every container of the pod shares.
  ScopedStep files_step(timings, "sandbox files");
  std::string hosts = absl::StrCat("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
                                   s.ip, "\t", s.config.hostname, "\n");
  std::string resolv;
  if (!config.dns.servers.empty()) {
    for (const auto& server : config.dns.servers) absl::StrAppend(&resolv, "nameserver ", server, "\n");
    if (!config.dns.searches.empty()) absl::StrAppend(&resolv, "search ", absl::StrJoin(config.dns.searches, " "), "\n");
    if (!config.dns.options.empty()) absl::StrAppend(&resolv, "options ", absl::StrJoin(config.dns.options, " "), "\n");
  } else {
    auto host = ReadFileToString("/etc/resolv.conf");
    resolv = host.ok() ? *host : "";
  }
  for (auto [name, text] : {std::pair<std::string, std::string>{"hosts", hosts},
                            {"hostname", s.config.hostname + "\n"},
                            {"resolv.conf", resolv}}) {
    if (auto st = WriteStateFile(dir + "/" + name, text, 0644); !st.ok()) return fail(st);
  }
  if (auto st = SaveSandbox(r); !st.ok()) return fail(st);
  files_step.Finish();
  spdlog::info("runtime: pod sandbox {} for {}/{} ready, ip {}, cgroup {} (id {})", s.id,
               config.pod_namespace, config.name, s.ip, s.cgroup_path, s.cgroup_id);
  return s.id;
}

absl::Status RuncPodRuntime::StopSandboxLocked(SandboxRecord& r) {
  absl::Status first;
  for (const std::string& cid : ListIds(options_.state_dir + "/containers")) {
    auto c = LoadContainer(cid);
    if (!c.ok() || c->status.sandbox_id != r.status.id) continue;
    if (auto st = StopContainerLocked(cid, std::chrono::seconds(0)); !st.ok() && first.ok()) first = st;
  }
  if (!r.cni_result.empty() || IsNetworkNamespace(NetnsPath(r.status.id))) {
    CniAttachment attachment{r.status.id, IsNetworkNamespace(NetnsPath(r.status.id)) ? NetnsPath(r.status.id) : "",
                             "eth0", r.status.config.name, r.status.config.pod_namespace,
                             r.status.config.port_mappings};
    absl::Status del = network_.Delete(attachment, r.cni_result);
    if (!del.ok()) {
      if (first.ok()) first = del;
    } else {
      r.cni_result.clear();
    }
  }
  if (r.cni_result.empty()) {
    if (auto st = RemoveNetworkNamespace(NetnsPath(r.status.id)); !st.ok() && first.ok()) first = st;
  }
  r.status.state = SandboxState::kNotReady;
  r.status.ip.clear();
  r.status.netns_path.clear();
  if (PathExists(SandboxDir(r.status.id))) {
    if (auto st = SaveSandbox(r); !st.ok() && first.ok()) first = st;
  }
  return first;
}

absl::Status RuncPodRuntime::StopPodSandbox(const std::string& sandbox_id) {
  SandboxGuard guard = LockSandbox(sandbox_id);
  auto r = LoadSandbox(sandbox_id);
  if (!r.ok()) return r.status();
  return StopSandboxLocked(*r);
}

absl::Status RuncPodRuntime::RemovePodSandbox(const std::string& sandbox_id) {
  SandboxGuard guard = LockSandbox(sandbox_id);
  auto r = LoadSandbox(sandbox_id);
  if (absl::IsNotFound(r.status())) return absl::OkStatus();
  if (!r.ok()) return r.status();
  if (auto st = StopSandboxLocked(*r); !st.ok()) return st;
  for (const std::string& cid : ListIds(options_.state_dir + "/containers")) {
    auto c = LoadContainer(cid);
    if (!c.ok() || c->status.sandbox_id != sandbox_id) continue;
    if (auto st = RemoveContainerLocked(cid); !st.ok()) return st;
  }
  // Another sandbox of the same pod (a replacement) keeps the pod cgroup.
  bool shared = false;
  for (const std::string& sid : ListIds(options_.state_dir + "/sandboxes")) {
    if (sid == sandbox_id) continue;
    auto other = LoadSandbox(sid);
    if (other.ok() && other->status.config.uid == r->status.config.uid) shared = true;
  }
  if (!shared) {
    if (auto st = cgroups_.RemovePod(r->status.config.uid); !st.ok()) return st;
    if (!r->status.log_directory.empty()) (void)RemoveTree(r->status.log_directory);
  }
  absl::Status removed = RemoveTree(SandboxDir(sandbox_id));
  if (removed.ok()) {
    std::lock_guard<std::mutex> lock(locks_mu_);
    sandbox_locks_.erase(sandbox_id);  // waiters keep the mutex alive through their shared_ptr
  }
  return removed;
}

RuncPodRuntime::SandboxGuard RuncPodRuntime::LockSandbox(const std::string& sandbox_id) {
  std::shared_ptr<std::mutex> mutex;
  {
    std::lock_guard<std::mutex> lock(locks_mu_);
    auto& slot = sandbox_locks_[sandbox_id];
    if (!slot) slot = std::make_shared<std::mutex>();
    mutex = slot;
  }
  SandboxGuard guard{mutex, std::unique_lock<std::mutex>(*mutex)};
  return guard;
}

RuncPodRuntime::SandboxGuard RuncPodRuntime::LockContainerSandbox(const std::string& container_id) {
  auto r = LoadContainer(container_id);
  return LockSandbox(r.ok() ? r->status.sandbox_id : "");
}

absl::StatusOr<PodSandboxStatus> RuncPodRuntime::GetPodSandboxStatus(const std::string& sandbox_id) {
  auto r = LoadSandbox(sandbox_id);
  if (!r.ok()) return r.status();
  // A namespace that vanished (host reboot) means the sandbox is not ready.
  if (r->status.state == SandboxState::kReady && !IsNetworkNamespace(r->status.netns_path)) {
    r->status.state = SandboxState::kNotReady;
  }
  return r->status;
}

absl::StatusOr<std::vector<PodSandboxStatus>> RuncPodRuntime::ListPodSandboxes() {
  std::vector<PodSandboxStatus> out;
  for (const std::string& id : ListIds(options_.state_dir + "/sandboxes")) {
    auto s = GetPodSandboxStatus(id);
    if (s.ok()) out.push_back(*s);
  }
  return out;
}

// ---- containers ---------------------------------------------------------------

absl::StatusOr<std::string> RuncPodRuntime::CreateContainer(const std::string& sandbox_id,
                                                            const ContainerConfig& config) {
  return MakeContainer(sandbox_id, config, /*start=*/false);
}

absl::StatusOr<std::string> RuncPodRuntime::RunContainer(const std::string& sandbox_id,
                                                         const ContainerConfig& config) {
  return MakeContainer(sandbox_id, config, /*start=*/true);
}

absl::StatusOr<std::string> RuncPodRuntime::MakeContainer(const std::string& sandbox_id,
                                                          const ContainerConfig& config, bool start) {
  StepTimings* timings = config.timings;
  if (!SafeName(config.name)) {
    return absl::InvalidArgumentError(absl::StrCat("bad container name '", config.name, "'"));
  }
  if (config.attempt < 0) return absl::InvalidArgumentError("negative attempt");
  SandboxGuard guard = LockSandbox(sandbox_id);
  auto sandbox = LoadSandbox(sandbox_id);
  if (!sandbox.ok()) return sandbox.status();
  if (sandbox->status.state != SandboxState::kReady) {
    return absl::FailedPreconditionError(absl::StrCat("pod sandbox ", sandbox_id, " is not ready"));
  }
  ScopedStep image_step(timings, "image prepare");
  auto image = images_.Prepare(config.image);
  if (!image.ok()) return image.status();
  image_step.Finish();

  ContainerRecord r;
  ContainerStatus& s = r.status;
  s.id = RandomId();
  s.sandbox_id = sandbox_id;
  s.name = config.name;
  s.attempt = config.attempt;
  s.image = image->reference;
  s.image_digest = image->manifest_digest;
  s.created_at_ns = NowNanos();
  // runc run starts the process as soon as it is created.
  if (start) s.started_at_ns = s.created_at_ns;
  s.labels = config.labels;
  s.annotations = config.annotations;
  s.log_path = absl::StrCat(sandbox->status.log_directory, "/", config.name, "/", config.attempt, ".log");
  r.pod_uid = sandbox->status.config.uid;
  r.cgroup_relative_path = cgroups_.ContainerRelativePath(r.pod_uid, s.id);

  const std::string dir = ContainerDir(s.id);
  const std::string rootfs = dir + "/rootfs";
  auto fail = [&](absl::Status status) -> absl::StatusOr<std::string> {
    (void)Runc({"delete", "--force", s.id});
    if (Unmount(rootfs).ok()) (void)RemoveTree(dir);
    return status;
  };
  ScopedStep record_step(timings, "container record");
  for (const char* sub : {"/rootfs", "/upper", "/work"}) {
    if (auto st = MakeDirectories(dir + sub, 0700); !st.ok()) return fail(st);
  }
  if (auto st = SaveContainer(r); !st.ok()) return fail(st);
  if (auto st = MakeDirectories(sandbox->status.log_directory + "/" + config.name, 0755); !st.ok()) {
    return fail(st);
  }
  record_step.Finish();
  ScopedStep mount_step(timings, "overlay mount");
  std::string lower = image->OverlayLowerDirs();
  std::string overlay_options = absl::StrCat("lowerdir=", lower, ",upperdir=", dir, "/upper,workdir=", dir, "/work");
  if (image->layer_dirs.empty()) return fail(absl::FailedPreconditionError("image has no layers"));
  if (::mount("overlay", rootfs.c_str(), "overlay", 0, overlay_options.c_str()) != 0) {
    return fail(absl::InternalError(absl::StrCat("mount overlay on ", rootfs, ": ", std::strerror(errno))));
  }
  auto passwd = ReadFileToString(rootfs + "/etc/passwd");
  auto group = ReadFileToString(rootfs + "/etc/group");
  auto user = ResolveUser(image->config.user, config.security, passwd.ok() ? *passwd : "",
                          group.ok() ? *group : "");
  if (!user.ok()) return fail(user.status());
  mount_step.Finish();

  ScopedStep spec_step(timings, "bundle config.json");
  OciSpecInput input;
  input.container = config;
  input.image = image->config;
  input.user = *user;
  input.hostname = sandbox->status.config.hostname;
  input.netns_path = sandbox->status.netns_path;
  input.cgroups_path = r.cgroup_relative_path;
  const std::string sdir = SandboxDir(sandbox_id);
  input.runtime_mounts = {{sdir + "/hosts", "/etc/hosts", false},
                          {sdir + "/hostname", "/etc/hostname", false},
                          {sdir + "/resolv.conf", "/etc/resolv.conf", false}};
  auto spec = BuildOciSpec(input);
  if (!spec.ok()) return fail(spec.status());
  if (auto st = WriteStateFile(dir + "/config.json", *spec, 0600); !st.ok()) return fail(st);
  spec_step.Finish();

  ScopedStep runc_step(timings, start ? "shim + runc run" : "shim + runc create");
  ShimOptions shim;
  shim.runc = options_.runc;
  shim.runc_root = runc_root();
  shim.bundle = dir;
  shim.container_id = s.id;
  shim.log_path = s.log_path;
  shim.log_max_size = options_.log_max_size;
  shim.log_max_files = options_.log_max_files;
  shim.exit_file = dir + "/exit.json";
  shim.oom_counter_file = cgroups_.OomCounterFile(r.cgroup_relative_path);
  shim.start = start;
  std::vector<std::string> argv = options_.shim_command;
  for (auto& a : ShimArguments(shim)) argv.push_back(a);
  auto launched = LaunchShim(argv, dir + "/shim.log", std::chrono::seconds(60));
  if (!launched.ok()) {
    // With runc run the process's own start failed (kAborted, see RunContainer).
    return fail(start ? absl::AbortedError(launched.status().message()) : launched.status());
  }
  r.shim_pid = launched->shim_pid;
  r.shim_start_time = ProcessStartTime(launched->shim_pid);
  r.init_pid = launched->init_pid;
  r.init_start_time = ProcessStartTime(launched->init_pid);
  runc_step.Finish();
  ScopedStep save_step(timings, "container record");
  if (auto st = SaveContainer(r); !st.ok()) return fail(st);
  return s.id;
}

absl::Status RuncPodRuntime::StartContainer(const std::string& container_id) {
  SandboxGuard guard = LockContainerSandbox(container_id);
  auto r = LoadContainer(container_id);
  if (!r.ok()) return r.status();
  ContainerStatus status = StatusOf(*r);
  if (status.state != ContainerState::kCreated) {
    return absl::FailedPreconditionError(absl::StrCat("container ", container_id, " is ",
                                                      ContainerStateName(status.state), ", not created"));
  }
  r->status.started_at_ns = NowNanos();
  if (auto st = SaveContainer(*r); !st.ok()) return st;
  auto out = Runc({"start", container_id});
  if (!out.ok()) return out.status();
  if (!out->Succeeded()) {
    return absl::InternalError(absl::StrCat("runc start ", container_id, ": ",
                                            absl::StripAsciiWhitespace(out->stderr_text)));
  }
  return absl::OkStatus();
}

ContainerStatus RuncPodRuntime::StatusOf(const ContainerRecord& r) const {
  ContainerStatus s = r.status;
  const std::string dir = ContainerDir(s.id);
  auto exit = ReadShimExit(dir + "/exit.json");
  if (exit.ok()) {
    s.state = ContainerState::kExited;
    s.exit_code = exit->exit_code;
    s.finished_at_ns = exit->finished_at_ns;
    s.reason = exit->oom_killed ? "OOMKilled" : exit->exit_code == 0 ? "Completed" : "Error";
    if (s.started_at_ns == 0) s.started_at_ns = s.finished_at_ns;
    return s;
  }
  bool init_alive = r.init_pid > 0 && r.init_start_time != 0 && ProcessStartTime(r.init_pid) == r.init_start_time;
  if (init_alive) {
    s.pid = r.init_pid;
    // runc removes exec.fifo when the container is started.
    s.state = PathExists(absl::StrCat(runc_root(), "/", s.id, "/exec.fifo")) ? ContainerState::kCreated
                                                                              : ContainerState::kRunning;
    return s;
  }
  bool shim_alive = r.shim_pid > 0 && ProcessStartTime(r.shim_pid) == r.shim_start_time;
  if (shim_alive) {
    // The init is gone and the shim is draining output: exit.json follows.
    s.state = ContainerState::kRunning;
    return s;
  }
  s.state = ContainerState::kExited;
  s.exit_code = 255;
  s.reason = "ContainerStatusUnknown";
  s.message = "the container's monitor exited without recording an exit status";
  return s;
}

bool RuncPodRuntime::WaitForExit(const ContainerRecord& r, std::chrono::milliseconds timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (StatusOf(r).state == ContainerState::kExited) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

absl::Status RuncPodRuntime::StopContainerLocked(const std::string& id, std::chrono::seconds grace) {
  auto r = LoadContainer(id);
  if (!r.ok()) return r.status();
  if (StatusOf(*r).state == ContainerState::kExited) return absl::OkStatus();
  if (grace.count() > 0) {
    (void)Runc({"kill", id, "TERM"});
    if (WaitForExit(*r, grace)) return absl::OkStatus();
  }
  auto out = Runc({"kill", id, "KILL"});
  if (WaitForExit(*r, std::chrono::seconds(30))) return absl::OkStatus();
  return absl::DeadlineExceededError(absl::StrCat(
      "container ", id, " did not exit after SIGKILL",
      out.ok() ? absl::StrCat(": ", absl::StripAsciiWhitespace(out->stderr_text)) : ""));
}

absl::Status RuncPodRuntime::StopContainer(const std::string& container_id, std::chrono::seconds grace) {
  SandboxGuard guard = LockContainerSandbox(container_id);
  return StopContainerLocked(container_id, grace);
}

absl::Status RuncPodRuntime::RemoveContainerLocked(const std::string& id) {
  auto r = LoadContainer(id);
  if (absl::IsNotFound(r.status())) return absl::OkStatus();
  if (!r.ok()) return r.status();
  if (auto st = StopContainerLocked(id, std::chrono::seconds(0)); !st.ok()) return st;
  auto out = Runc({"delete", "--force", id});
  if (out.ok() && !out->Succeeded() && !absl::StrContains(out->stderr_text, "does not exist") &&
      !absl::StrContains(out->stderr_text, "not exist")) {
    return absl::InternalError(absl::StrCat("runc delete ", id, ": ", absl::StripAsciiWhitespace(out->stderr_text)));
  }
  const std::string dir = ContainerDir(id);
  if (auto st = Unmount(dir + "/rootfs"); !st.ok()) return st;
  // runc removes the container's cgroups; make sure of it in every hierarchy.
  (void)RemoveCgroupTree(cgroups_.hierarchy().v2_root + r->cgroup_relative_path);
  for (const std::string& v1 : cgroups_.hierarchy().v1_mounts) (void)RemoveCgroupTree(v1 + r->cgroup_relative_path);
  return RemoveTree(dir);
}

absl::Status RuncPodRuntime::RemoveContainer(const std::string& container_id) {
  SandboxGuard guard = LockContainerSandbox(container_id);
  return RemoveContainerLocked(container_id);
}

absl::StatusOr<ContainerStatus> RuncPodRuntime::GetContainerStatus(const std::string& container_id) {
  auto r = LoadContainer(container_id);
  if (!r.ok()) return r.status();
  return StatusOf(*r);
}

absl::StatusOr<std::vector<ContainerStatus>> RuncPodRuntime::ListContainers(const std::string& sandbox_id) {
  std::vector<ContainerStatus> out;
  for (const std::string& id : ListIds(options_.state_dir + "/containers")) {
    auto r = LoadContainer(id);
    if (!r.ok()) continue;
    if (!sandbox_id.empty() && r->status.sandbox_id != sandbox_id) continue;
    out.push_back(StatusOf(*r));
  }
  return out;
}

// ---- exec -----------------------------------------------------------------------

namespace {

class RuncExecSession : public ExecSession {
 public:
  RuncExecSession(pid_t pid, int pidfd, int in, int out, int err, std::string pid_file)
      : pid_(pid), pidfd_(pidfd), in_(in), out_(out), err_(err), pid_file_(std::move(pid_file)) {}
  ~RuncExecSession() override {
    if (!exit_code_) {
      Kill();
      (void)Wait(std::chrono::seconds(10));
    }
    for (int fd : {pidfd_, in_, out_, err_}) {
      if (fd >= 0) ::close(fd);
    }
    ::unlink(pid_file_.c_str());
  }
  int stdin_fd() const override { return in_; }
  int stdout_fd() const override { return out_; }
  int stderr_fd() const override { return err_; }
  void CloseStdin() override {
    if (in_ >= 0) ::close(in_);
    in_ = -1;
  }
  absl::StatusOr<int> Wait(std::chrono::milliseconds timeout) override {
    if (exit_code_) return *exit_code_;
    pollfd p = {pidfd_, POLLIN, 0};
    int rc;
    do {
      rc = ::poll(&p, 1, static_cast<int>(timeout.count()));
    } while (rc < 0 && errno == EINTR);
    if (rc == 0) return absl::DeadlineExceededError("exec: process still running");
    int status = 0;
    if (::waitpid(pid_, &status, 0) < 0) return absl::InternalError(absl::StrCat("waitpid: ", std::strerror(errno)));
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return *exit_code_;
  }
  void Kill() override {
    // The process in the container (runc exec waits for it and exits with
    // its status); runc exec itself as a fallback.
    auto text = ReadFileToString(pid_file_);
    pid_t inner = 0;
    if (text.ok() && absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &inner) && inner > 0) {
      ::kill(inner, SIGKILL);
    } else if (!exit_code_) {
      ::kill(pid_, SIGKILL);
    }
  }

 private:
  pid_t pid_;
  int pidfd_, in_, out_, err_;
  std::string pid_file_;
  std::optional<int> exit_code_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ExecSession>> RuncPodRuntime::Exec(const std::string& container_id,
                                                                  const ExecRequest& request) {
  if (request.command.empty()) return absl::InvalidArgumentError("exec: empty command");
  auto r = LoadContainer(container_id);
  if (!r.ok()) return r.status();
  if (StatusOf(*r).state != ContainerState::kRunning) {
    return absl::FailedPreconditionError(absl::StrCat("container ", container_id, " is not running"));
  }
  std::string pid_file = absl::StrCat(ContainerDir(container_id), "/exec-", RandomId().substr(0, 12), ".pid");
  std::vector<std::string> args = {options_.runc, "--root", runc_root(), "exec", "--pid-file", pid_file,
                                   container_id};
  args.insert(args.end(), request.command.begin(), request.command.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int in[2] = {-1, -1}, out[2], err[2];
  if ((request.stdin && ::pipe2(in, O_CLOEXEC) != 0) || ::pipe2(out, O_CLOEXEC) != 0 ||
      ::pipe2(err, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  }
  pid_t pid = ::fork();
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  if (pid == 0) {
    int stdin_src = request.stdin ? in[0] : ::open("/dev/null", O_RDONLY);
    ::dup2(stdin_src, STDIN_FILENO);
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(err[1], STDERR_FILENO);
    ::execv(argv[0], argv.data());
    _exit(127);
  }
  if (request.stdin) ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return absl::InternalError(absl::StrCat("pidfd_open: ", std::strerror(errno)));
  }
  return std::unique_ptr<ExecSession>(
      new RuncExecSession(pid, pidfd, request.stdin ? in[1] : -1, out[0], err[0], pid_file));
}

absl::StatusOr<ExecSyncResult> RuncPodRuntime::ExecSync(const std::string& container_id,
                                                        const std::vector<std::string>& command,
                                                        std::chrono::milliseconds timeout) {
  auto session = Exec(container_id, ExecRequest{command, false});
  if (!session.ok()) return session.status();
  ExecSyncResult result;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  pollfd fds[2] = {{(*session)->stdout_fd(), POLLIN, 0}, {(*session)->stderr_fd(), POLLIN, 0}};
  int open_fds = 2;
  char buf[16384];
  while (open_fds > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      result.timed_out = true;
      break;
    }
    int rc = ::poll(fds, 2, static_cast<int>(left.count()));
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof(buf));
      if (n > 0) {
        (i == 0 ? result.stdout_text : result.stderr_text).append(buf, static_cast<size_t>(n));
      } else {
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  if (result.timed_out) {
    (*session)->Kill();
    auto code = (*session)->Wait(std::chrono::seconds(10));
    result.exit_code = code.ok() ? *code : -1;
    return result;
  }
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  auto code = (*session)->Wait(std::max(left, std::chrono::milliseconds(1)));
  if (!code.ok()) {
    result.timed_out = true;
    (*session)->Kill();
    auto killed = (*session)->Wait(std::chrono::seconds(10));
    result.exit_code = killed.ok() ? *killed : -1;
    return result;
  }
  result.exit_code = *code;
  return result;
}

}  // namespace kelpie::runtime
