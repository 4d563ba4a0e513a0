#include "control/service_proxy/service_cidr_route.h"

#include <arpa/inet.h>

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/subprocess.h"

namespace kelpie::service_proxy {
namespace {

absl::Status ValidateCidr(const std::string& cidr) {
  std::vector<std::string> parts = absl::StrSplit(cidr, '/');
  struct in_addr a;
  int bits = 0;
  if (parts.size() != 2 || ::inet_pton(AF_INET, parts[0].c_str(), &a) != 1 || !absl::SimpleAtoi(parts[1], &bits) ||
      bits < 1 || bits > 32) {
    return absl::InvalidArgumentError(absl::StrCat("service CIDR \"", cidr, "\" is not an IPv4 prefix like 10.43.0.0/16"));
  }
  return absl::OkStatus();
}

absl::StatusOr<SubprocessResult> Ip(const std::string& netns, std::vector<std::string> args) {
  std::vector<std::string> argv = {"ip"};
  if (!netns.empty()) {
    argv.push_back("-n");
    argv.push_back(netns);
  }
  argv.insert(argv.end(), args.begin(), args.end());
  return RunSubprocess(argv);
}

}  // namespace

absl::Status EnsureServiceCidrRoute(const std::string& cidr, const std::string& netns) {
  if (absl::Status s = ValidateCidr(cidr); !s.ok()) return s;
  auto r = Ip(netns, {"route", "replace", "unreachable", cidr});
  if (!r.ok()) return r.status();
  if (!r->Succeeded()) {
    return absl::InternalError(absl::StrCat("ip route replace unreachable ", cidr, ": ", r->stderr_text));
  }
  return absl::OkStatus();
}

absl::Status RemoveServiceCidrRoute(const std::string& cidr, const std::string& netns) {
  if (absl::Status s = ValidateCidr(cidr); !s.ok()) return s;
  auto r = Ip(netns, {"route", "del", "unreachable", cidr});
  if (!r.ok()) return r.status();
  if (!r->Succeeded() && r->stderr_text.find("No such process") == std::string::npos) {
    return absl::InternalError(absl::StrCat("ip route del unreachable ", cidr, ": ", r->stderr_text));
  }
  return absl::OkStatus();
}

}  // namespace kelpie::service_proxy
