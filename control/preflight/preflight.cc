#include "control/preflight/preflight.h"

#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "kelpie/probe_abi.h"
#include "common/files.h"
#include "common/subprocess.h"
#include "dataplane/bpf_skeleton.h"
#include "dataplane/kernel_filesystems.h"
#include "dataplane/ring_buffer_source.h"
#include "probe.skel.h"

namespace kelpie::preflight {
namespace {

using dataplane::BpfSkeleton;

constexpr int kCapNetAdmin = 12;
constexpr int kCapSysAdmin = 21;
constexpr int kCapPerfmon = 38;
constexpr int kCapBpf = 39;

CheckResult Ok(std::string name, std::string detail) {
  return {std::move(name), CheckStatus::kOk, std::move(detail), ""};
}
CheckResult Missing(std::string name, std::string detail, std::string remedy) {
  return {std::move(name), CheckStatus::kMissing, std::move(detail), std::move(remedy)};
}

CheckResult CheckKernel() {
  struct utsname u;
  uname(&u);
  int major = 0, minor = 0;
  std::vector<std::string> parts = absl::StrSplit(u.release, absl::ByAnyChar(".-"));
  if (parts.size() >= 2) {
    (void)absl::SimpleAtoi(parts[0], &major);
    (void)absl::SimpleAtoi(parts[1], &minor);
  }
  std::string detail = absl::StrCat("Linux ", u.release, " (", u.machine, ")");
  if (major < 5 || (major == 5 && minor < 8)) {
    return Missing("kernel", detail, "Kelpie needs Linux 5.8 or newer (BPF ring buffers, CO-RE)");
  }
  return Ok("kernel", detail);
}

CheckResult CheckBtf() {
  if (PathExists("/sys/kernel/btf/vmlinux")) return Ok("kernel BTF", "/sys/kernel/btf/vmlinux");
  return Missing("kernel BTF", "/sys/kernel/btf/vmlinux is absent",
                 "use a kernel built with CONFIG_DEBUG_INFO_BTF=y (most distribution kernels are)");
}

CheckResult CheckPrivileges() {
  auto status = ReadFileToString("/proc/self/status");
  std::vector<std::string> missing;
  for (auto [cap, name] : std::vector<std::pair<int, const char*>>{
           {kCapBpf, "CAP_BPF"}, {kCapPerfmon, "CAP_PERFMON"}, {kCapNetAdmin, "CAP_NET_ADMIN"}, {kCapSysAdmin, "CAP_SYS_ADMIN"}}) {
    if (!status.ok() || !HasCapability(*status, cap)) missing.push_back(name);
  }
  std::string who = absl::StrCat("uid ", geteuid());
  if (missing.empty()) return Ok("privileges", absl::StrCat(who, " with CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, CAP_SYS_ADMIN"));
  return Missing("privileges", absl::StrCat(who, " lacks ", absl::StrJoin(missing, ", ")),
                 "run kelpie as root (or with those capabilities)");
}

CheckResult CheckBpffs(const std::string& path) {
  std::string name = "bpffs";
  if (dataplane::IsBpffs(path)) return Ok(name, absl::StrCat("mounted at ", path));
  struct stat st;
  bool exists = ::stat(path.c_str(), &st) == 0;
  if (exists && !S_ISDIR(st.st_mode)) {
    return Missing(name, absl::StrCat(path, " exists and is not a directory, so no bpffs can be mounted there"),
                   absl::StrCat("remove ", path, " or pass --bpffs-path with a folder"));
  }
  absl::Status probe = dataplane::ProbeMount("bpf");
  if (!probe.ok()) {
    return Missing(name, absl::StrCat("not mounted at ", path, " and cannot be mounted: ", probe.message()),
                   absl::StrCat("mount -t bpf bpf ", path, " (as root)"));
  }
  return Ok(name, absl::StrCat("not mounted at ", path, "; mountable, kelpie mounts it at start"));
}

CheckResult CheckTracefs() {
  if (dataplane::IsTracefs("/sys/kernel/tracing")) return Ok("tracefs", "mounted at /sys/kernel/tracing");
  absl::Status probe = dataplane::ProbeMount("tracefs");
  if (!probe.ok()) {
    return Missing("tracefs", absl::StrCat("not mounted and cannot be mounted: ", probe.message()),
                   "mount -t tracefs tracefs /sys/kernel/tracing (as root)");
  }
  return Ok("tracefs", "not mounted at /sys/kernel/tracing; mountable, kelpie mounts it at start");
}

CheckResult CheckCgroupV2() {
  auto root = dataplane::DetectCgroupV2Root();
  switch (root.layout) {
    case dataplane::CgroupLayout::kUnified:
      return Ok("cgroup v2", absl::StrCat("unified hierarchy at ", root.path));
    case dataplane::CgroupLayout::kHybrid:
      return Ok("cgroup v2", absl::StrCat("hybrid layout: v2 at ", root.path, ", v1 controllers beside it"));
    case dataplane::CgroupLayout::kNone:
      break;
  }
  return Missing("cgroup v2", "no cgroup2 mount at /sys/fs/cgroup or /sys/fs/cgroup/unified",
                 "boot with cgroup v2 (systemd.unified_cgroup_hierarchy=1) or mount -t cgroup2 none /sys/fs/cgroup/unified");
}

// Loads exactly one program of the probe object through the verifier.
CheckResult CheckProgramType(const std::string& label, struct bpf_program* (*pick)(struct probe*)) {
  std::string name = absl::StrCat("BPF ", label);
  auto skel = BpfSkeleton<struct probe>::Open(KELPIE_SKELETON_OPS(probe));
  if (!skel.ok()) return Missing(name, std::string(skel.status().message()), "run as root on a kernel with BPF");
  skel->LoadOnly(pick(skel->get()));
  absl::Status s = skel->Load();
  if (!s.ok()) {
    return Missing(name, std::string(s.message()),
                   "run as root; the kernel must allow this program type (check kernel config and lockdown)");
  }
  return Ok(name, "loaded by the verifier");
}

CheckResult CheckRingBuffer() {
  std::string name = "BPF ring buffer";
  auto skel = BpfSkeleton<struct probe>::Open(KELPIE_SKELETON_OPS(probe));
  if (!skel.ok()) return Missing(name, std::string(skel.status().message()), "run as root on a kernel with BPF");
  std::random_device rd;
  uint64_t cookie = (static_cast<uint64_t>(rd()) << 32) | rd();
  (*skel)->rodata->probe_tgid = static_cast<__u32>(getpid());
  (*skel)->rodata->probe_cookie = cookie;
  (*skel)->rodata->probe_syscall_nr = SYS_getppid;
  skel->LoadOnly((*skel)->progs.probe_ringbuf);
  if (absl::Status s = skel->Load(); !s.ok()) return Missing(name, std::string(s.message()), "run as root");
  if (absl::Status s = skel->Attach((*skel)->progs.probe_ringbuf); !s.ok()) return Missing(name, std::string(s.message()), "run as root");
  bool seen = false;
  std::string problem;
  auto source = dataplane::RingBufferSource::Create(bpf_map__fd((*skel)->maps.probe_events), [&](std::string_view rec) {
    if (rec.size() != sizeof(kelpie_probe_event)) {
      problem = absl::StrCat("record of ", rec.size(), " bytes, expected ", sizeof(kelpie_probe_event));
      return false;
    }
    kelpie_probe_event e;
    std::memcpy(&e, rec.data(), sizeof(e));
    if (e.cookie == cookie && e.tgid == static_cast<__u32>(getpid()) && e.syscall_nr == SYS_getppid) seen = true;
    return !seen;
  });
  if (!source.ok()) return Missing(name, std::string(source.status().message()), "run as root");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (!seen && problem.empty() && std::chrono::steady_clock::now() < deadline) {
    syscall(SYS_getppid);  // the trigger, straight to the kernel
    auto polled = (*source)->Poll(std::chrono::milliseconds(100));
    if (!polled.ok()) return Missing(name, std::string(polled.status().message()), "run as root");
  }
  if (!problem.empty()) return Missing(name, problem, "rebuild kelpie: its BPF ABI and user space disagree");
  if (!seen) {
    return Missing(name, "raw tracepoint attached but no event arrived within 2 s",
                   "check that raw tracepoints are allowed (kernel lockdown, seccomp)");
  }
  return Ok(name, "raw tracepoint sys_enter -> ring buffer -> user space round trip");
}

CheckResult CheckRunc() {
  auto path = FindExecutable("runc");
  if (!path) return Missing("runc", "runc not found in PATH", "apt-get install runc");
  auto r = RunSubprocess({*path, "--version"});
  std::string version = r.ok() ? std::string(r->stdout_text.substr(0, r->stdout_text.find('\n'))) : "";
  if (!r.ok() || !r->Succeeded()) {
    return Missing("runc", absl::StrCat(*path, " does not run"), "reinstall runc (apt-get install --reinstall runc)");
  }
  auto parsed = ParseRuncVersion(r->stdout_text);
  if (!parsed || *parsed < std::make_pair(1, 1)) {
    // Older runc handles cgroup v2 (where pod identity lives) only partially.
    return {"runc", CheckStatus::kWarn, absl::StrCat(*path, ": ", version, " (1.1 or newer expected)"),
            "install runc 1.1 or newer (apt-get install runc)"};
  }
  return Ok("runc", absl::StrCat(*path, ": ", version));
}

CheckResult CheckCni(const std::vector<std::string>& dirs) {
  std::vector<std::string> missing;
  std::string found_dir;
  for (const char* plugin : {"bridge", "host-local", "loopback", "portmap"}) {
    bool found = false;
    for (const auto& d : dirs) {
      std::string p = d + "/" + plugin;
      if (::access(p.c_str(), X_OK) == 0) {
        found = true;
        if (found_dir.empty()) found_dir = d;
        break;
      }
    }
    if (!found) missing.push_back(plugin);
  }
  if (missing.empty()) return Ok("CNI plugins", absl::StrCat("bridge, host-local, loopback, portmap in ", found_dir));
  return Missing("CNI plugins", absl::StrCat("missing ", absl::StrJoin(missing, ", "), " in ", absl::StrJoin(dirs, ", ")),
                 "apt-get install containernetworking-plugins (or pass --cni-bin-dir)");
}

CheckResult CheckIproute2() {
  auto r = RunSubprocess({"ip", "-V"});
  if (!r.ok() || !r->Succeeded()) return Missing("iproute2", "`ip` not found or failing", "apt-get install iproute2");
  std::string v = r->stdout_text.substr(0, r->stdout_text.find('\n'));
  return Ok("iproute2", v);
}

}  // namespace

bool HasCapability(const std::string& proc_status, int capability) {
  for (absl::string_view line : absl::StrSplit(proc_status, '\n')) {
    if (!absl::ConsumePrefix(&line, "CapEff:")) continue;
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    uint64_t bits = 0;
    if (!absl::SimpleHexAtoi(line, &bits)) return false;
    return (bits >> capability) & 1;
  }
  return false;
}

std::optional<std::pair<int, int>> ParseRuncVersion(const std::string& version_output) {
  absl::string_view first = version_output;
  first = first.substr(0, first.find('\n'));
  if (!absl::ConsumePrefix(&first, "runc version ")) return std::nullopt;
  std::vector<absl::string_view> parts = absl::StrSplit(first, absl::MaxSplits('.', 2));
  int major = 0, minor = 0;
  if (parts.size() < 2 || !absl::SimpleAtoi(parts[0], &major)) return std::nullopt;
  absl::string_view minor_text = parts[1];
  size_t digits = 0;
  while (digits < minor_text.size() && absl::ascii_isdigit(minor_text[digits])) ++digits;
  if (digits == 0 || !absl::SimpleAtoi(minor_text.substr(0, digits), &minor)) return std::nullopt;
  return std::make_pair(major, minor);
}

const char* StatusName(CheckStatus status) {
  switch (status) {
    case CheckStatus::kOk:
      return "OK";
    case CheckStatus::kWarn:
      return "WARN";
    case CheckStatus::kMissing:
      return "MISSING";
  }
  return "?";
}

std::vector<CheckResult> RunPreflight(const PreflightOptions& options) {
  std::vector<CheckResult> r;
  r.push_back(CheckKernel());
  r.push_back(CheckBtf());
  r.push_back(CheckPrivileges());
  r.push_back(CheckBpffs(options.bpffs_path));
  r.push_back(CheckTracefs());
  r.push_back(CheckCgroupV2());
  r.push_back(CheckProgramType("cgroup sock_addr (connect4)", [](struct probe* s) { return s->progs.probe_connect4; }));
  r.push_back(CheckProgramType("cgroup skb", [](struct probe* s) { return s->progs.probe_cgroup_skb; }));
  r.push_back(CheckProgramType("sched_cls (tc)", [](struct probe* s) { return s->progs.probe_sched_cls; }));
  r.push_back(CheckProgramType("tracepoint", [](struct probe* s) { return s->progs.probe_tracepoint; }));
  r.push_back(CheckRingBuffer());
  r.push_back(CheckRunc());
  r.push_back(CheckCni(options.cni_bin_dirs));
  r.push_back(CheckIproute2());
  return r;
}

bool AllRequiredPresent(const std::vector<CheckResult>& results) {
  return std::none_of(results.begin(), results.end(),
                      [](const CheckResult& r) { return r.status == CheckStatus::kMissing; });
}

std::string FormatTable(const std::vector<CheckResult>& results) {
  size_t w_name = 5, w_status = 6;
  for (const auto& r : results) {
    w_name = std::max(w_name, r.name.size());
    w_status = std::max(w_status, std::strlen(StatusName(r.status)));
  }
  auto pad = [](const std::string& s, size_t w) { return s + std::string(w > s.size() ? w - s.size() : 0, ' '); };
  std::string out = absl::StrCat(pad("CHECK", w_name), "  ", pad("STATUS", w_status), "  DETAIL\n");
  for (const auto& r : results) {
    absl::StrAppend(&out, pad(r.name, w_name), "  ", pad(StatusName(r.status), w_status), "  ", r.detail, "\n");
  }
  std::string todo;
  for (const auto& r : results) {
    if (r.status != CheckStatus::kOk && !r.remedy.empty()) absl::StrAppend(&todo, "  - ", r.name, ": ", r.remedy, "\n");
  }
  if (!todo.empty()) absl::StrAppend(&out, "\nWhat to do:\n", todo);
  size_t missing = std::count_if(results.begin(), results.end(),
                                 [](const CheckResult& r) { return r.status == CheckStatus::kMissing; });
  absl::StrAppend(&out, "\n", missing == 0 ? "All required checks passed.\n"
                                            : absl::StrCat(missing, " required check(s) failed.\n"));
  return out;
}

std::string FormatJson(const std::vector<CheckResult>& results) {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& r : results) {
    nlohmann::json j = {{"check", r.name}, {"status", StatusName(r.status)}, {"detail", r.detail}};
    if (!r.remedy.empty()) j["remedy"] = r.remedy;
    arr.push_back(j);
  }
  return nlohmann::json({{"ok", AllRequiredPresent(results)}, {"checks", arr}}).dump(2) + "\n";
}

}  // namespace kelpie::preflight
