#include "control/dns/pod_resolv_conf.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace kelpie::dns {

namespace {
constexpr size_t kMaxSearchDomains = 32;  // kubelet's MaxDNSSearchPaths
}

std::string BuildPodResolvConf(const std::string& pod_namespace, const PodResolvConfOptions& options) {
  const std::string& d = options.cluster_domain;
  std::vector<std::string> search = {absl::StrCat(pod_namespace, ".svc.", d), absl::StrCat("svc.", d), d};
  for (const auto& s : options.host_search) {
    if (search.size() >= kMaxSearchDomains) break;
    if (std::find(search.begin(), search.end(), s) == search.end()) search.push_back(s);
  }
  std::string out = absl::StrCat("search ", absl::StrJoin(search, " "), "\n");
  for (const auto& ns : options.nameservers) absl::StrAppend(&out, "nameserver ", ns, "\n");
  absl::StrAppend(&out, "options ndots:", options.ndots, "\n");
  return out;
}

}  // namespace kelpie::dns
