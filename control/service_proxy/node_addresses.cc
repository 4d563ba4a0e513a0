#include "control/service_proxy/node_addresses.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/files.h"

namespace kelpie::service_proxy {

absl::StatusOr<std::vector<std::string>> InterfaceIpv4Addresses(const std::vector<std::string>& interfaces) {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) {
    return absl::Status(absl::ErrnoToStatusCode(errno), absl::StrCat("getifaddrs: ", std::strerror(errno)));
  }
  std::set<std::string> wanted(interfaces.begin(), interfaces.end());
  std::set<std::string> found;
  for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET || a->ifa_name == nullptr) continue;
    if (wanted.count(a->ifa_name) == 0) continue;
    char text[INET_ADDRSTRLEN] = {};
    const auto* in = reinterpret_cast<const sockaddr_in*>(a->ifa_addr);
    if (::inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text)) != nullptr) found.insert(text);
  }
  ::freeifaddrs(list);
  return std::vector<std::string>(found.begin(), found.end());
}

absl::StatusOr<std::string> DefaultRouteInterface(const std::string& route_table) {
  // Iface Destination Gateway Flags RefCnt Use Metric Mask ... (hex, host
  // byte order of the kernel); the default route has destination and mask 0.
  std::string best;
  uint64_t best_metric = std::numeric_limits<uint64_t>::max();
  bool header = true;
  for (absl::string_view line : absl::StrSplit(route_table, '\n')) {
    if (header) {
      header = false;
      continue;
    }
    std::vector<absl::string_view> f = absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (f.size() < 8) continue;
    uint32_t flags = 0;
    uint64_t metric = 0;
    if (f[1] != "00000000" || f[7] != "00000000") continue;
    if (!absl::SimpleHexAtoi(f[3], &flags) || !absl::SimpleAtoi(f[6], &metric)) continue;
    if ((flags & 0x1) == 0) continue;  // RTF_UP
    if (metric < best_metric) {
      best_metric = metric;
      best = std::string(f[0]);
    }
  }
  if (best.empty()) return absl::NotFoundError("no IPv4 default route");
  return best;
}

absl::StatusOr<std::vector<std::string>> ResolveNodePortInterfaces(const std::vector<std::string>& names) {
  std::vector<std::string> out;
  for (const std::string& name : names) {
    if (name != "default-route") {
      if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
      continue;
    }
    auto table = ReadFileToString("/proc/net/route");
    if (!table.ok()) return table.status();
    auto interface = DefaultRouteInterface(*table);
    if (!interface.ok()) return interface.status();
    if (std::find(out.begin(), out.end(), *interface) == out.end()) out.push_back(*interface);
  }
  return out;
}

}  // namespace kelpie::service_proxy
