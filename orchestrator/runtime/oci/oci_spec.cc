#include "orchestrator/runtime/oci/oci_spec.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace kelpie::runtime {
namespace {

using nlohmann::json;

constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const std::vector<std::string>& DefaultCapabilities() {
  static const std::vector<std::string> caps = {
      "CAP_CHOWN",  "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
      "CAP_MKNOD",  "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
      "CAP_SETFCAP", "CAP_SETPCAP",     "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
      "CAP_KILL",   "CAP_AUDIT_WRITE"};
  return caps;
}

const std::vector<std::string>& AllCapabilities() {
  static const std::vector<std::string> caps = {
      "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
      "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
      "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
      "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
      "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
      "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
      "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
      "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
      "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"};
  return caps;
}

absl::StatusOr<std::string> NormalizeCapability(const std::string& name) {
  std::string upper = absl::AsciiStrToUpper(name);
  if (upper == "ALL") return upper;
  if (!absl::StartsWith(upper, "CAP_")) upper = "CAP_" + upper;
  const auto& all = AllCapabilities();
  if (std::find(all.begin(), all.end(), upper) == all.end()) {
    return absl::InvalidArgumentError(absl::StrCat("unknown capability '", name, "'"));
  }
  return upper;
}

struct PasswdEntry {
  std::string name;
  uint32_t uid = 0;
  uint32_t gid = 0;
};

std::vector<PasswdEntry> ParsePasswd(const std::string& text) {
  std::vector<PasswdEntry> out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::vector<std::string> f = absl::StrSplit(line, ':');
    PasswdEntry e;
    if (f.size() < 4 || !absl::SimpleAtoi(f[2], &e.uid) || !absl::SimpleAtoi(f[3], &e.gid)) continue;
    e.name = f[0];
    out.push_back(e);
  }
  return out;
}

struct GroupEntry {
  std::string name;
  uint32_t gid = 0;
  std::vector<std::string> members;
};

std::vector<GroupEntry> ParseGroup(const std::string& text) {
  std::vector<GroupEntry> out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::vector<std::string> f = absl::StrSplit(line, ':');
    GroupEntry e;
    if (f.size() < 3 || !absl::SimpleAtoi(f[2], &e.gid)) continue;
    e.name = f[0];
    if (f.size() >= 4) e.members = absl::StrSplit(f[3], ',', absl::SkipEmpty());
    out.push_back(e);
  }
  return out;
}

json Mount(const std::string& destination, const std::string& type, const std::string& source,
           std::vector<std::string> options) {
  return {{"destination", destination}, {"type", type}, {"source", source}, {"options", options}};
}

}  // namespace

std::vector<std::string> ResolveCommand(const image::ImageConfig& image, const ContainerConfig& container) {
  std::vector<std::string> argv;
  if (!container.command.empty()) {
    argv = container.command;
    argv.insert(argv.end(), container.args.begin(), container.args.end());
    return argv;
  }
  argv = image.entrypoint;
  const auto& tail = container.args.empty() ? image.cmd : container.args;
  argv.insert(argv.end(), tail.begin(), tail.end());
  return argv;
}

std::vector<std::string> MergeEnvironment(const image::ImageConfig& image, const ContainerConfig& container,
                                          const std::string& hostname) {
  std::vector<std::string> order;
  std::map<std::string, std::string> values;
  auto set = [&](const std::string& key, const std::string& value) {
    if (!values.count(key)) order.push_back(key);
    values[key] = value;
  };
  set("PATH", kDefaultPath);
  set("HOSTNAME", hostname);
  for (const std::string& kv : image.env) {
    auto eq = kv.find('=');
    if (eq == std::string::npos) continue;
    set(kv.substr(0, eq), kv.substr(eq + 1));
  }
  for (const auto& [k, v] : container.env) set(k, v);
  std::vector<std::string> out;
  out.reserve(order.size());
  for (const std::string& k : order) out.push_back(absl::StrCat(k, "=", values[k]));
  return out;
}

absl::StatusOr<ResolvedUser> ResolveUser(const std::string& image_user, const SecurityContext& security,
                                         const std::string& passwd, const std::string& group) {
  std::vector<PasswdEntry> users = ParsePasswd(passwd);
  std::vector<GroupEntry> groups = ParseGroup(group);
  ResolvedUser out;
  std::string user_part = image_user, group_part;
  if (auto colon = image_user.find(':'); colon != std::string::npos) {
    user_part = image_user.substr(0, colon);
    group_part = image_user.substr(colon + 1);
  }
  std::string user_name;
  bool gid_known = false;
  if (security.run_as_user) {
    if (*security.run_as_user < 0 || *security.run_as_user > 0xfffffffeLL) {
      return absl::InvalidArgumentError(absl::StrCat("runAsUser ", *security.run_as_user, " is out of range"));
    }
    out.uid = static_cast<uint32_t>(*security.run_as_user);
  } else if (!user_part.empty()) {
    if (!absl::SimpleAtoi(user_part, &out.uid)) {
      auto it = std::find_if(users.begin(), users.end(), [&](const PasswdEntry& e) { return e.name == user_part; });
      if (it == users.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat("image user '", user_part, "' is not in the image's /etc/passwd"));
      }
      out.uid = it->uid;
    }
  }
  for (const PasswdEntry& e : users) {
    if (e.uid == out.uid) {
      user_name = e.name;
      out.gid = e.gid;
      gid_known = true;
      break;
    }
  }
  if (security.run_as_group) {
    if (*security.run_as_group < 0 || *security.run_as_group > 0xfffffffeLL) {
      return absl::InvalidArgumentError(absl::StrCat("runAsGroup ", *security.run_as_group, " is out of range"));
    }
    out.gid = static_cast<uint32_t>(*security.run_as_group);
  } else if (!group_part.empty() && !security.run_as_user) {
    if (!absl::SimpleAtoi(group_part, &out.gid)) {
      auto it = std::find_if(groups.begin(), groups.end(), [&](const GroupEntry& e) { return e.name == group_part; });
      if (it == groups.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat("image group '", group_part, "' is not in the image's /etc/group"));
      }
      out.gid = it->gid;
    }
  } else if (!gid_known) {
    out.gid = 0;
  }
  if (security.run_as_non_root && out.uid == 0) {
    return absl::FailedPreconditionError(
        "container has runAsNonRoot and its image will run as root (uid 0)");
  }
  std::set<uint32_t> extra;
  if (!user_name.empty()) {
    for (const GroupEntry& g : groups) {
      if (std::find(g.members.begin(), g.members.end(), user_name) != g.members.end()) extra.insert(g.gid);
    }
  }
  for (int64_t g : security.supplemental_groups) {
    if (g < 0 || g > 0xfffffffeLL) {
      return absl::InvalidArgumentError(absl::StrCat("supplemental group ", g, " is out of range"));
    }
    extra.insert(static_cast<uint32_t>(g));
  }
  extra.erase(out.gid);
  out.additional_gids.assign(extra.begin(), extra.end());
  return out;
}

absl::StatusOr<std::vector<std::string>> ResolveCapabilities(const SecurityContext& security) {
  if (security.privileged) return AllCapabilities();
  std::vector<std::string> caps = DefaultCapabilities();
  for (const std::string& d : security.capabilities_drop) {
    auto name = NormalizeCapability(d);
    if (!name.ok()) return name.status();
    if (*name == "ALL") {
      caps.clear();
    } else {
      caps.erase(std::remove(caps.begin(), caps.end(), *name), caps.end());
    }
  }
  for (const std::string& a : security.capabilities_add) {
    auto name = NormalizeCapability(a);
    if (!name.ok()) return name.status();
    if (*name == "ALL") return AllCapabilities();
    if (std::find(caps.begin(), caps.end(), *name) == caps.end()) caps.push_back(*name);
  }
  return caps;
}

uint64_t CpuSharesFromMillis(int64_t millis) {
  // Kubernetes: shares = millicores * 1024 / 1000, at least 2.
  if (millis <= 0) return 2;
  uint64_t shares = static_cast<uint64_t>(millis) * 1024 / 1000;
  return std::max<uint64_t>(shares, 2);
}

absl::StatusOr<std::string> BuildOciSpec(const OciSpecInput& in) {
  const ContainerConfig& c = in.container;
  const SecurityContext& sec = c.security;
  std::vector<std::string> argv = ResolveCommand(in.image, c);
  if (argv.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("container ", c.name,
                                                   ": no command (neither the spec nor the image gives one)"));
  }
  auto caps = ResolveCapabilities(sec);
  if (!caps.ok()) return caps.status();

  std::string cwd = !c.working_dir.empty() ? c.working_dir
                    : !in.image.working_dir.empty() ? in.image.working_dir : "/";
  if (cwd[0] != '/') return absl::InvalidArgumentError(absl::StrCat("workingDir '", cwd, "' is not absolute"));

  json process = {
      {"terminal", false},
      {"user", {{"uid", in.user.uid}, {"gid", in.user.gid}}},
      {"args", argv},
      {"env", MergeEnvironment(in.image, c, in.hostname)},
      {"cwd", cwd},
      {"capabilities",
       {{"bounding", *caps}, {"effective", *caps}, {"permitted", *caps}}},
      {"noNewPrivileges", !sec.privileged && sec.allow_privilege_escalation.has_value() &&
                              !*sec.allow_privilege_escalation},
  };
  if (!in.user.additional_gids.empty()) process["user"]["additionalGids"] = in.user.additional_gids;

  json mounts = json::array({
      Mount("/proc", "proc", "proc", {"nosuid", "noexec", "nodev"}),
      Mount("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}),
      Mount("/dev/pts", "devpts", "devpts",
            {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}),
      Mount("/dev/shm", "tmpfs", "shm", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}),
      Mount("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}),
      Mount("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", sec.privileged ? "rw" : "ro"}),
      Mount("/sys/fs/cgroup", "cgroup", "cgroup",
            {"nosuid", "noexec", "nodev", "relatime", sec.privileged ? "rw" : "ro"}),
  });
  auto add_bind = [&](const VolumeMount& m) -> absl::Status {
    if (m.container_path.empty() || m.container_path[0] != '/') {
      return absl::InvalidArgumentError(absl::StrCat("mount path '", m.container_path, "' is not absolute"));
    }
    if (m.host_path.empty() || m.host_path[0] != '/') {
      return absl::InvalidArgumentError(absl::StrCat("mount source '", m.host_path, "' is not absolute"));
    }
    mounts.push_back(Mount(m.container_path, "bind", m.host_path,
                           {"rbind", "rprivate", m.read_only ? "ro" : "rw"}));
    return absl::OkStatus();
  };
  for (const VolumeMount& m : in.runtime_mounts) {
    // A volume mounted at the same place replaces the runtime's file.
    bool shadowed = std::any_of(c.mounts.begin(), c.mounts.end(),
                                [&](const VolumeMount& v) { return v.container_path == m.container_path; });
    if (!shadowed) {
      if (auto s = add_bind(m); !s.ok()) return s;
    }
  }
  for (const VolumeMount& m : c.mounts) {
    if (auto s = add_bind(m); !s.ok()) return s;
  }

  json resources = {{"devices", json::array({{{"allow", sec.privileged}, {"access", "rwm"}}})}};
  if (c.resources.cpu_request_millis > 0 || c.resources.cpu_limit_millis > 0) {
    json cpu = {{"shares", CpuSharesFromMillis(c.resources.cpu_request_millis)}};
    if (c.resources.cpu_limit_millis > 0) {
      constexpr int64_t kPeriod = 100000;
      cpu["period"] = kPeriod;
      cpu["quota"] = std::max<int64_t>(c.resources.cpu_limit_millis * kPeriod / 1000, 1000);
    }
    resources["cpu"] = cpu;
  }
  if (c.resources.memory_limit_bytes > 0) {
    resources["memory"] = {{"limit", c.resources.memory_limit_bytes}};
  }

  json namespaces = json::array({
      {{"type", "pid"}},
      {{"type", "ipc"}},
      {{"type", "uts"}},
      {{"type", "mount"}},
      {{"type", "cgroup"}},
      {{"type", "network"}, {"path", in.netns_path}},
  });
  json linux_section = {
      {"namespaces", namespaces},
      {"resources", resources},
      {"cgroupsPath", in.cgroups_path},
  };
  if (!sec.privileged) {
    linux_section["maskedPaths"] = {"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                                    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                                    "/proc/sched_debug", "/proc/scsi", "/sys/firmware"};
    linux_section["readonlyPaths"] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                      "/proc/sysrq-trigger"};
  }

  json annotations = json::object();
  for (const auto& [k, v] : c.annotations) annotations[k] = v;

  json spec = {
      {"ociVersion", "1.0.2"},
      {"process", process},
      {"root", {{"path", "rootfs"}, {"readonly", sec.read_only_root_filesystem}}},
      {"hostname", in.hostname},
      {"mounts", mounts},
      {"linux", linux_section},
  };
  if (!annotations.empty()) spec["annotations"] = annotations;
  return spec.dump(2);
}

}  // namespace kelpie::runtime
