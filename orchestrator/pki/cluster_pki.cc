#include "orchestrator/pki/cluster_pki.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/status_macros.h"

namespace kelpie::pki {
namespace {

using std::chrono::hours;

constexpr hours kCaValidity{24 * 365 * 10};
constexpr hours kLeafValidity{24 * 365};
constexpr hours kRenewBefore{24 * 30};

bool IsIpAddress(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

std::string CanonicalIp(const std::string& s) {
  unsigned char buf[16];
  char text[INET6_ADDRSTRLEN];
  if (inet_pton(AF_INET, s.c_str(), buf) == 1) return inet_ntop(AF_INET, buf, text, sizeof(text));
  if (inet_pton(AF_INET6, s.c_str(), buf) == 1) return inet_ntop(AF_INET6, buf, text, sizeof(text));
  return s;
}

std::vector<std::string> HostAddresses() {
  std::vector<std::string> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr) continue;
    char text[INET6_ADDRSTRLEN] = {0};
    if (i->ifa_addr->sa_family == AF_INET) {
      auto* a = reinterpret_cast<sockaddr_in*>(i->ifa_addr);
      if ((ntohl(a->sin_addr.s_addr) >> 24) == 127) continue;
      inet_ntop(AF_INET, &a->sin_addr, text, sizeof(text));
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(i->ifa_addr);
      if (IN6_IS_ADDR_LOOPBACK(&a->sin6_addr) || IN6_IS_ADDR_LINKLOCAL(&a->sin6_addr)) continue;
      inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof(text));
    }
    if (text[0] != 0) out.emplace_back(text);
  }
  freeifaddrs(list);
  return out;
}

struct LeafFiles {
  std::string cert;
  std::string key;
};

// Loads a leaf pair when it still fits `request` (and `ca`), else issues a
// new one and writes it.
absl::StatusOr<tls::KeyPairPem> EnsureLeaf(const tls::KeyPairPem& ca, const LeafFiles& files,
                                           const tls::CertificateRequest& request, bool* reissued) {
  *reissued = false;
  if (PathExists(files.cert) && PathExists(files.key)) {
    KELPIE_ASSIGN_OR_RETURN(std::string cert, ReadFileToString(files.cert));
    KELPIE_ASSIGN_OR_RETURN(std::string key, ReadFileToString(files.key));
    auto info = tls::ParseCertificate(cert);
    if (!info.ok()) {
      return absl::DataLossError(
          absl::StrCat("certificate ", files.cert, " is unreadable: ", info.status().message(),
                       "; delete it to have it reissued"));
    }
    std::set<std::string> have_dns(info->dns_names.begin(), info->dns_names.end());
    std::set<std::string> have_ips;
    for (const auto& ip : info->ip_addresses) have_ips.insert(CanonicalIp(ip));
    bool covers = std::all_of(request.dns_names.begin(), request.dns_names.end(),
                              [&](const std::string& d) { return have_dns.count(d) > 0; }) &&
                  std::all_of(request.ip_addresses.begin(), request.ip_addresses.end(),
                              [&](const std::string& ip) { return have_ips.count(CanonicalIp(ip)) > 0; });
    bool fresh = info->not_after - std::chrono::system_clock::now() > kRenewBefore;
    bool same_subject = info->common_name == request.common_name &&
                        info->organizations == request.organizations;
    if (covers && fresh && same_subject && tls::IsSignedBy(cert, ca.certificate_pem)) {
      return tls::KeyPairPem{std::move(cert), std::move(key)};
    }
  }
  KELPIE_ASSIGN_OR_RETURN(tls::KeyPairPem pair, tls::IssueCertificate(ca, request));
  KELPIE_RETURN_IF_ERROR(WriteFileAtomically(files.key, pair.private_key_pem, 0600));
  KELPIE_RETURN_IF_ERROR(WriteFileAtomically(files.cert, pair.certificate_pem, 0644));
  *reissued = true;
  return pair;
}

}  // namespace

void DefaultServingSans(const ClusterPkiOptions& options, std::vector<std::string>* dns,
                        std::vector<std::string>* ips) {
  std::set<std::string> dns_set = {"localhost", "kubernetes", "kubernetes.default",
                                   "kubernetes.default.svc",
                                   absl::StrCat("kubernetes.default.svc.", options.cluster_domain)};
  std::set<std::string> ip_set = {"127.0.0.1", "::1"};
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) == 0 && host[0] != 0) dns_set.insert(host);
  for (const auto& a : HostAddresses()) ip_set.insert(CanonicalIp(a));
  if (!options.first_service_ip.empty()) ip_set.insert(CanonicalIp(options.first_service_ip));
  for (const auto& s : options.extra_sans) {
    if (IsIpAddress(s)) {
      ip_set.insert(CanonicalIp(s));
    } else if (!s.empty()) {
      dns_set.insert(s);
    }
  }
  dns->assign(dns_set.begin(), dns_set.end());
  ips->assign(ip_set.begin(), ip_set.end());
}

absl::StatusOr<ClusterPki> EnsureClusterPki(const ClusterPkiOptions& options) {
  KELPIE_RETURN_IF_ERROR(MakeDirectories(options.directory, 0700));
  ClusterPki pki;
  const std::string& d = options.directory;
  pki.ca_certificate_file = d + "/ca.crt";
  pki.ca_key_file = d + "/ca.key";
  pki.serving_certificate_file = d + "/apiserver.crt";
  pki.serving_key_file = d + "/apiserver.key";
  pki.admin_certificate_file = d + "/admin.crt";
  pki.admin_key_file = d + "/admin.key";

  bool have_cert = PathExists(pki.ca_certificate_file);
  bool have_key = PathExists(pki.ca_key_file);
  if (have_cert != have_key) {
    return absl::FailedPreconditionError(absl::StrCat(
        "found only one of ", pki.ca_certificate_file, " and ", pki.ca_key_file,
        ": restore the missing file, or remove both to create a new cluster CA (every existing "
        "kubeconfig and node certificate then stops working)"));
  }
  if (have_cert) {
    KELPIE_ASSIGN_OR_RETURN(pki.ca.certificate_pem, ReadFileToString(pki.ca_certificate_file));
    KELPIE_ASSIGN_OR_RETURN(pki.ca.private_key_pem, ReadFileToString(pki.ca_key_file));
    if (!tls::ParseCertificate(pki.ca.certificate_pem).ok()) {
      return absl::DataLossError(
          absl::StrCat("cluster CA certificate ", pki.ca_certificate_file, " is not valid PEM"));
    }
  } else {
    KELPIE_ASSIGN_OR_RETURN(pki.ca, tls::CreateCertificateAuthority("kelpie-ca", kCaValidity));
    KELPIE_RETURN_IF_ERROR(WriteFileAtomically(pki.ca_key_file, pki.ca.private_key_pem, 0600));
    KELPIE_RETURN_IF_ERROR(WriteFileAtomically(pki.ca_certificate_file, pki.ca.certificate_pem, 0644));
    pki.created_ca = true;
  }

  tls::CertificateRequest serving;
  serving.common_name = "kube-apiserver";
  serving.server_auth = true;
  serving.validity = kLeafValidity;
  DefaultServingSans(options, &serving.dns_names, &serving.ip_addresses);
  bool reissued = false;
  KELPIE_RETURN_IF_ERROR(EnsureLeaf(pki.ca, {pki.serving_certificate_file, pki.serving_key_file},
                                    serving, &reissued)
                             .status());
  pki.reissued_serving = reissued;

  tls::CertificateRequest admin;
  admin.common_name = "kelpie-admin";
  admin.organizations = {"system:masters"};
  admin.client_auth = true;
  admin.validity = kLeafValidity;
  KELPIE_ASSIGN_OR_RETURN(pki.admin, EnsureLeaf(pki.ca, {pki.admin_certificate_file, pki.admin_key_file},
                                                admin, &reissued));

  pki.service_account_key_file = d + "/sa.key";
  pki.service_account_public_key_file = d + "/sa.pub";
  KELPIE_ASSIGN_OR_RETURN(pki.service_account,
                          EnsureServiceAccountKey(d, &pki.created_service_account_key));
  return pki;
}

}  // namespace kelpie::pki
