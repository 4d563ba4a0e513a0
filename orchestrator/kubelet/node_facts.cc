#include "orchestrator/kubelet/node_facts.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/files.h"

namespace kelpie::kubelet {
namespace {

std::string ReadTrimmed(const std::string& path) {
  auto content = ReadFileToString(path);
  if (!content.ok()) return "";
  return std::string(absl::StripAsciiWhitespace(*content));
}

// MemTotal from /proc/meminfo, in bytes.
int64_t MemoryBytes(const std::string& root) {
  std::ifstream in(root + "/proc/meminfo");
  std::string line;
  while (std::getline(in, line)) {
    if (!absl::StartsWith(line, "MemTotal:")) continue;
    std::vector<std::string> parts = absl::StrSplit(line, ' ', absl::SkipEmpty());
    int64_t kib = 0;
    if (parts.size() >= 2 && absl::SimpleAtoi(parts[1], &kib)) return kib * 1024;
  }
  return 0;
}

// Online CPUs: "/sys/devices/system/cpu/online" lists ranges ("0-3,6").
int64_t CpuCount(const std::string& root) {
  std::string online = ReadTrimmed(root + "/sys/devices/system/cpu/online");
  int64_t count = 0;
  for (absl::string_view range : absl::StrSplit(online, ',', absl::SkipEmpty())) {
    std::pair<std::string, std::string> bounds = absl::StrSplit(range, absl::MaxSplits('-', 1));
    int64_t lo = 0, hi = 0;
    if (!absl::SimpleAtoi(bounds.first, &lo)) continue;
    if (bounds.second.empty()) {
      hi = lo;
    } else if (!absl::SimpleAtoi(bounds.second, &hi)) {
      continue;
    }
    count += hi - lo + 1;
  }
  if (count == 0 && root.empty()) count = sysconf(_SC_NPROCESSORS_ONLN);
  return std::max<int64_t>(count, 1);
}

// PRETTY_NAME from os-release.
std::string OsImage(const std::string& root) {
  for (const char* file : {"/etc/os-release", "/usr/lib/os-release"}) {
    std::ifstream in(root + file);
    std::string line;
    while (std::getline(in, line)) {
      if (!absl::StartsWith(line, "PRETTY_NAME=")) continue;
      std::string value = line.substr(12);
      if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'')) {
        value = value.substr(1, value.size() - 2);
      }
      return value;
    }
  }
  return "Linux";
}

// The interface of the IPv4 default route, from /proc/net/route.
std::string DefaultRouteInterface(const std::string& root) {
  std::ifstream in(root + "/proc/net/route");
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::vector<std::string> f = absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (f.size() >= 2 && f[1] == "00000000") return f[0];
  }
  return "";
}

std::string PickNodeIp(const std::string& root) {
  std::string preferred = DefaultRouteInterface(root);
  struct ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return "127.0.0.1";
  std::string chosen, fallback;
  for (struct ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET) continue;
    if ((a->ifa_flags & IFF_UP) == 0 || (a->ifa_flags & IFF_LOOPBACK) != 0) continue;
    char buf[INET_ADDRSTRLEN];
    auto* sin = reinterpret_cast<struct sockaddr_in*>(a->ifa_addr);
    if (inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf)) == nullptr) continue;
    if (!preferred.empty() && preferred == a->ifa_name && chosen.empty()) chosen = buf;
    if (fallback.empty()) fallback = buf;
  }
  freeifaddrs(list);
  if (!chosen.empty()) return chosen;
  if (!fallback.empty()) return fallback;
  return "127.0.0.1";
}

std::string KubernetesArch(const std::string& machine) {
  if (machine == "x86_64") return "amd64";
  if (machine == "aarch64") return "arm64";
  if (machine == "armv7l") return "arm";
  return machine;
}

}  // namespace

std::string CpuQuantity(int64_t millicores) {
  if (millicores % 1000 == 0) return absl::StrCat(millicores / 1000);
  return absl::StrCat(millicores, "m");
}

std::string KibiQuantity(int64_t bytes) { return absl::StrCat(bytes / 1024, "Ki"); }

absl::StatusOr<NodeFacts> GatherNodeFacts(const NodeFactsOptions& options) {
  NodeFacts facts;
  const std::string& root = options.root;
  facts.cpu_millicores = CpuCount(root) * 1000;
  facts.memory_bytes = MemoryBytes(root);
  if (facts.memory_bytes == 0) {
    return absl::FailedPreconditionError(absl::StrCat("cannot read MemTotal from ", root, "/proc/meminfo"));
  }
  struct statvfs fs;
  if (statvfs(options.storage_path.c_str(), &fs) != 0) {
    return absl::FailedPreconditionError(absl::StrCat("cannot stat the filesystem of ", options.storage_path));
  }
  facts.ephemeral_storage_bytes = static_cast<int64_t>(fs.f_blocks) * static_cast<int64_t>(fs.f_frsize);
  struct utsname uts;
  uname(&uts);
  facts.hostname = options.hostname.empty() ? uts.nodename : options.hostname;
  facts.hostname = absl::AsciiStrToLower(facts.hostname);
  facts.kernel_version = uts.release;
  facts.architecture = KubernetesArch(uts.machine);
  facts.os_image = OsImage(root);
  facts.machine_id = ReadTrimmed(root + "/etc/machine-id");
  facts.boot_id = ReadTrimmed(root + "/proc/sys/kernel/random/boot_id");
  facts.internal_ip = options.node_ip.empty() ? PickNodeIp(root) : options.node_ip;
  facts.container_runtime_version =
      options.runc_version.empty() ? "runc://unknown" : absl::StrCat("runc://", options.runc_version);
  return facts;
}

nlohmann::json NodeObject(const NodeFacts& facts, const NodeSettings& settings) {
  using nlohmann::json;
  json labels = {{"kubernetes.io/hostname", facts.hostname},
                 {"kubernetes.io/os", "linux"},
                 {"kubernetes.io/arch", facts.architecture},
                 {"beta.kubernetes.io/os", "linux"},
                 {"beta.kubernetes.io/arch", facts.architecture}};
  for (const auto& [k, v] : settings.labels) labels[k] = v;
  int64_t alloc_cpu = std::max<int64_t>(facts.cpu_millicores - settings.reserved_cpu_millicores, 0);
  int64_t alloc_mem =
      std::max<int64_t>(facts.memory_bytes - settings.reserved_memory_bytes - settings.eviction_memory_bytes, 0);
  // The kubelet keeps 10% of the disk for its nodefs.available eviction
  // threshold.
  int64_t alloc_storage = facts.ephemeral_storage_bytes - facts.ephemeral_storage_bytes / 10;
  json node = {
      {"apiVersion", "v1"},
      {"kind", "Node"},
      {"metadata", {{"name", settings.name}, {"labels", labels}}},
      {"spec", json::object()},
      {"status",
       {{"capacity",
         {{"cpu", CpuQuantity(facts.cpu_millicores)},
          {"memory", KibiQuantity(facts.memory_bytes)},
          {"ephemeral-storage", KibiQuantity(facts.ephemeral_storage_bytes)},
          {"pods", absl::StrCat(settings.max_pods)}}},
        {"allocatable",
         {{"cpu", CpuQuantity(alloc_cpu)},
          {"memory", KibiQuantity(alloc_mem)},
          {"ephemeral-storage", absl::StrCat(alloc_storage)},
          {"pods", absl::StrCat(settings.max_pods)}}},
        {"addresses", json::array({{{"type", "InternalIP"}, {"address", facts.internal_ip}},
                                   {{"type", "Hostname"}, {"address", facts.hostname}}})},
        {"daemonEndpoints", {{"kubeletEndpoint", {{"Port", 10250}}}}},
        {"nodeInfo",
         {{"machineID", facts.machine_id},
          {"systemUUID", facts.machine_id},
          {"bootID", facts.boot_id},
          {"kernelVersion", facts.kernel_version},
          {"osImage", facts.os_image},
          {"containerRuntimeVersion", facts.container_runtime_version},
          {"kubeletVersion", settings.kubelet_version},
          {"kubeProxyVersion", ""},
          {"operatingSystem", "linux"},
          {"architecture", facts.architecture}}}}}};
  if (!settings.pod_cidr.empty()) {
    node["spec"]["podCIDR"] = settings.pod_cidr;
    node["spec"]["podCIDRs"] = json::array({settings.pod_cidr});
  }
  return node;
}

}  // namespace kelpie::kubelet
