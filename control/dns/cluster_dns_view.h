// The cluster zone (default cluster.local) as CoreDNS's kubernetes plugin
// serves it, computed from an in-memory view of Services and EndpointSlices
// that informers keep current through the On* calls.
//
//   <svc>.<ns>.svc.<zone>              A/AAAA: ClusterIPs, or for headless
//                                      services the ready endpoint addresses;
//                                      SRV: one per port; ExternalName: CNAME
//   _<port>._<proto>.<svc>.<ns>.svc.<zone>   SRV for a named port
//   <host>.<svc>.<ns>.svc.<zone>       A/AAAA of one endpoint of a headless
//                                      service (hostname or dashed address)
//   <a-b-c-d>.<ns>.pod.<zone>          A (as CoreDNS "pods insecure")
//   d.c.b.a.in-addr.arpa / ip6.arpa    PTR for ClusterIPs and endpoint IPs
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "control/dns/dns_message.h"
#include "control/service_proxy/service_types.h"

namespace kelpie::dns {

struct ZoneAnswer {
  Rcode rcode = Rcode::kNoError;
  std::vector<ResourceRecord> answers;
  std::vector<ResourceRecord> authorities;  // SOA on negative answers
  std::vector<ResourceRecord> additionals;  // addresses of SRV targets
};

class ClusterDnsView {
 public:
  struct Options {
    std::string domain = "cluster.local";
    uint32_t ttl_seconds = 5;
  };
  explicit ClusterDnsView(Options options);

  // Thread-safe; informer handlers call these.
  void OnServiceUpdate(const service_proxy::Service& service);
  void OnServiceDelete(const service_proxy::Service& service);
  void OnEndpointSliceUpdate(const service_proxy::EndpointSlice& slice);
  void OnEndpointSliceDelete(const service_proxy::EndpointSlice& slice);

  // The answer when the question is inside the cluster zone or asks for the
  // PTR of a known address; nullopt when it should be forwarded upstream.
  std::optional<ZoneAnswer> Resolve(const Question& question) const;

  const std::string& domain() const { return options_.domain; }

 private:
  struct EndpointName {
    std::string host;     // hostname, or the address with '.'/':' as '-'
    std::string address;  // canonical text form
  };

  ZoneAnswer ResolveInZone(const Question& q, const std::vector<std::string>& labels) const;
  ZoneAnswer ResolveService(const Question& q, const service_proxy::Service& svc, const std::string& fqdn) const;
  ZoneAnswer ResolveSrvPort(const Question& q, const service_proxy::Service& svc, const std::string& port_label,
                            const std::string& proto_label) const;
  ZoneAnswer ResolveEndpoint(const Question& q, const service_proxy::Service& svc, const std::string& host) const;
  ZoneAnswer ResolvePod(const Question& q, const std::string& dashed) const;
  std::optional<ZoneAnswer> ResolvePtr(const Question& q, const std::string& address) const;

  // Ready endpoints of a service across its slices, deduplicated by address.
  std::vector<EndpointName> ReadyEndpoints(const std::string& service_key) const;
  std::string ServiceFqdn(const service_proxy::Service& svc) const;
  ZoneAnswer Negative(Rcode rcode) const;  // NXDOMAIN or NODATA with SOA
  ResourceRecord Soa() const;
  ResourceRecord Address(const std::string& name, const std::string& ip) const;  // A or AAAA
  void RebuildPtrIndexLocked() const;

  const Options options_;
  const std::string zone_;  // lower-cased domain
  mutable std::mutex mu_;
  std::map<std::string, service_proxy::Service> services_;       // ns/name
  std::map<std::string, service_proxy::EndpointSlice> slices_;   // ns/name
  std::map<std::string, std::map<std::string, bool>> slices_by_service_;  // svc key -> slice keys
  uint32_t serial_;
  // Address -> PTR target, rebuilt lazily after a change.
  mutable bool ptr_index_dirty_ = true;
  mutable std::map<std::string, std::string> ptr_index_;
};

// "1.2.3.4" from "4.3.2.1.in-addr.arpa" (and IPv6 from 32 ip6.arpa nibbles);
// nullopt for anything else (partial reverse names, bad labels).
std::optional<std::string> AddressFromReverseName(const std::string& name);

// "10-1-2-3" -> "10.1.2.3", "fd00--1" -> "fd00::1"; nullopt if not an address.
std::optional<std::string> AddressFromDashed(const std::string& dashed);

}  // namespace kelpie::dns
