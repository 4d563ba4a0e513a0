#include "control/dns/cluster_dns_view.h"

#include <arpa/inet.h>

#include <algorithm>
#include <ctime>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace kelpie::dns {
namespace {

using service_proxy::EndpointSlice;
using service_proxy::Protocol;
using service_proxy::Service;

std::optional<std::string> Canonical(const std::string& ip) {
  char buf[INET6_ADDRSTRLEN] = {};
  in_addr a4{};
  if (inet_pton(AF_INET, ip.c_str(), &a4) == 1) return std::string(inet_ntop(AF_INET, &a4, buf, sizeof(buf)));
  in6_addr a6{};
  if (inet_pton(AF_INET6, ip.c_str(), &a6) == 1) return std::string(inet_ntop(AF_INET6, &a6, buf, sizeof(buf)));
  return std::nullopt;
}

bool IsV4(const std::string& ip) { return ip.find(':') == std::string::npos; }

std::string Dashed(const std::string& ip) {
  std::string out = ip;
  std::replace(out.begin(), out.end(), '.', '-');
  std::replace(out.begin(), out.end(), ':', '-');
  return out;
}

const char* ProtoLabel(Protocol p) {
  switch (p) {
    case Protocol::kTcp: return "_tcp";
    case Protocol::kUdp: return "_udp";
    case Protocol::kSctp: return "_sctp";
  }
  return "_tcp";
}

// Whether the question type wants addresses of this family.
bool WantsAddress(uint16_t qtype, const std::string& ip) {
  if (qtype == rr::kAny) return true;
  return IsV4(ip) ? qtype == rr::kA : qtype == rr::kAaaa;
}

uint16_t SrvWeight(size_t count) { return static_cast<uint16_t>(std::max<size_t>(1, 100 / std::max<size_t>(1, count))); }

}  // namespace

std::optional<std::string> AddressFromDashed(const std::string& dashed) {
  if (dashed.empty()) return std::nullopt;
  std::string dotted = dashed;
  std::replace(dotted.begin(), dotted.end(), '-', '.');
  in_addr a4{};
  if (inet_pton(AF_INET, dotted.c_str(), &a4) == 1) return Canonical(dotted);
  std::string colons = dashed;
  std::replace(colons.begin(), colons.end(), '-', ':');
  in6_addr a6{};
  if (inet_pton(AF_INET6, colons.c_str(), &a6) == 1) return Canonical(colons);
  return std::nullopt;
}

std::optional<std::string> AddressFromReverseName(const std::string& raw) {
  std::string name = LowerName(raw);
  const std::string v4 = ".in-addr.arpa", v6 = ".ip6.arpa";
  auto ends_with = [&](const std::string& s) {
    return name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  if (ends_with(v4)) {
    std::vector<std::string> labels = absl::StrSplit(name.substr(0, name.size() - v4.size()), '.');
    if (labels.size() != 4) return std::nullopt;
    std::string ip;
    for (int i = 3; i >= 0; --i) {
      const std::string& l = labels[i];
      if (l.empty() || l.size() > 3 || !std::all_of(l.begin(), l.end(), ::isdigit)) return std::nullopt;
      if (std::stoi(l) > 255 || (l.size() > 1 && l[0] == '0')) return std::nullopt;
      absl::StrAppend(&ip, l, i > 0 ? "." : "");
    }
    return Canonical(ip);
  }
  if (ends_with(v6)) {
    std::vector<std::string> labels = absl::StrSplit(name.substr(0, name.size() - v6.size()), '.');
    if (labels.size() != 32) return std::nullopt;
    std::string hex;
    for (int i = 31; i >= 0; --i) {
      if (labels[i].size() != 1 || !::isxdigit(static_cast<unsigned char>(labels[i][0]))) return std::nullopt;
      hex += labels[i];
      if (i % 4 == 0 && i > 0) hex += ':';
    }
    return Canonical(hex);
  }
  return std::nullopt;
}

ClusterDnsView::ClusterDnsView(Options options)
    : options_(std::move(options)), zone_(LowerName(options_.domain)), serial_(static_cast<uint32_t>(std::time(nullptr))) {}

void ClusterDnsView::OnServiceUpdate(const Service& service) {
  std::lock_guard lock(mu_);
  services_[service.Key()] = service;
  ++serial_;
  ptr_index_dirty_ = true;
}

void ClusterDnsView::OnServiceDelete(const Service& service) {
  std::lock_guard lock(mu_);
  services_.erase(service.Key());
  ++serial_;
  ptr_index_dirty_ = true;
}

void ClusterDnsView::OnEndpointSliceUpdate(const EndpointSlice& slice) {
  std::lock_guard lock(mu_);
  auto old = slices_.find(slice.Key());
  if (old != slices_.end() && old->second.ServiceKey() != slice.ServiceKey()) {
    slices_by_service_[old->second.ServiceKey()].erase(slice.Key());
  }
  slices_[slice.Key()] = slice;
  slices_by_service_[slice.ServiceKey()][slice.Key()] = true;
  ++serial_;
  ptr_index_dirty_ = true;
}

void ClusterDnsView::OnEndpointSliceDelete(const EndpointSlice& slice) {
  std::lock_guard lock(mu_);
  auto old = slices_.find(slice.Key());
  if (old == slices_.end()) return;
  auto by = slices_by_service_.find(old->second.ServiceKey());
  if (by != slices_by_service_.end()) {
    by->second.erase(slice.Key());
    if (by->second.empty()) slices_by_service_.erase(by);
  }
  slices_.erase(old);
  ++serial_;
  ptr_index_dirty_ = true;
}

std::optional<ZoneAnswer> ClusterDnsView::Resolve(const Question& q) const {
  std::string name = LowerName(q.name);
  if (!name.empty() && name.back() == '.') name.pop_back();
  std::lock_guard lock(mu_);
  if (auto address = AddressFromReverseName(name)) return ResolvePtr(q, *address);
  if (name == zone_) return ResolveInZone(q, {});
  const std::string suffix = "." + zone_;
  if (name.size() <= suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
    return std::nullopt;
  }
  std::vector<std::string> labels = absl::StrSplit(name.substr(0, name.size() - suffix.size()), '.');
  std::reverse(labels.begin(), labels.end());  // labels[0] is "svc" or "pod"
  return ResolveInZone(q, labels);
}

ZoneAnswer ClusterDnsView::ResolveInZone(const Question& q, const std::vector<std::string>& l) const {
  if (l.empty()) {  // the apex
    if (q.type == rr::kSoa) {
      ZoneAnswer a;
      a.answers.push_back(Soa());
      return a;
    }
    return Negative(Rcode::kNoError);
  }
  if (l[0] == "svc") {
    if (l.size() == 1) return Negative(Rcode::kNoError);
    const std::string& ns = l[1];
    if (l.size() == 2) {
      auto it = services_.lower_bound(ns + "/");
      bool exists = it != services_.end() && it->first.compare(0, ns.size() + 1, ns + "/") == 0;
      return Negative(exists ? Rcode::kNoError : Rcode::kNxDomain);
    }
    auto svc = services_.find(ns + "/" + l[2]);
    if (svc == services_.end()) return Negative(Rcode::kNxDomain);
    if (l.size() == 3) return ResolveService(q, svc->second, ServiceFqdn(svc->second));
    if (l.size() == 4) return ResolveEndpoint(q, svc->second, l[3]);
    if (l.size() == 5) return ResolveSrvPort(q, svc->second, l[4], l[3]);
    return Negative(Rcode::kNxDomain);
  }
  if (l[0] == "pod") {
    if (l.size() <= 2) return Negative(Rcode::kNoError);
    if (l.size() == 3) return ResolvePod(q, l[2]);
  }
  return Negative(Rcode::kNxDomain);
}

ZoneAnswer ClusterDnsView::ResolveService(const Question& q, const Service& svc, const std::string& fqdn) const {
  ZoneAnswer a;
  if (svc.type == "ExternalName") {
    if (svc.external_name.empty()) return Negative(Rcode::kNoError);
    auto target = RdataName(svc.external_name);
    if (!target.ok()) return Negative(Rcode::kServFail);
    a.answers.push_back({fqdn, rr::kCname, kClassIn, options_.ttl_seconds, std::move(*target)});
    return a;
  }
  std::vector<EndpointName> endpoints;
  if (svc.Headless()) endpoints = ReadyEndpoints(svc.Key());
  if (q.type == rr::kSrv) {
    if (!svc.Headless()) {
      for (const auto& port : svc.ports) {
        auto rdata = RdataSrv(0, SrvWeight(svc.ports.size()), port.port, fqdn);
        if (rdata.ok()) a.answers.push_back({fqdn, rr::kSrv, kClassIn, options_.ttl_seconds, std::move(*rdata)});
      }
      for (const auto& ip : svc.cluster_ips) {
        if (Canonical(ip)) a.additionals.push_back(Address(fqdn, ip));
      }
    } else {
      // One SRV per endpoint and port of the slices, as CoreDNS does.
      std::set<std::pair<std::string, uint16_t>> seen;
      auto slices = slices_by_service_.find(svc.Key());
      std::vector<std::pair<std::string, uint16_t>> targets;
      if (slices != slices_by_service_.end()) {
        for (const auto& [slice_key, unused] : slices->second) {
          const EndpointSlice& slice = slices_.at(slice_key);
          for (const auto& ep : slice.endpoints) {
            if (!ep.conditions.ready) continue;
            for (const auto& addr : ep.addresses) {
              auto ip = Canonical(addr);
              if (!ip) continue;
              std::string host = ep.hostname.empty() ? Dashed(*ip) : ep.hostname;
              for (const auto& port : slice.ports) {
                if (!port.port || !seen.insert({*ip, *port.port}).second) continue;
                targets.push_back({host + "." + fqdn, *port.port});
                a.additionals.push_back(Address(host + "." + fqdn, *ip));
              }
            }
          }
        }
      }
      for (const auto& [target, port] : targets) {
        auto rdata = RdataSrv(0, SrvWeight(targets.size()), port, target);
        if (rdata.ok()) a.answers.push_back({fqdn, rr::kSrv, kClassIn, options_.ttl_seconds, std::move(*rdata)});
      }
    }
  } else if (!svc.Headless()) {
    for (const auto& ip : svc.cluster_ips) {
      if (Canonical(ip) && WantsAddress(q.type, ip)) a.answers.push_back(Address(fqdn, ip));
    }
  } else {
    for (const auto& ep : endpoints) {
      if (WantsAddress(q.type, ep.address)) a.answers.push_back(Address(fqdn, ep.address));
    }
  }
  if (a.answers.empty()) return Negative(Rcode::kNoError);
  return a;
}

ZoneAnswer ClusterDnsView::ResolveSrvPort(const Question& q, const Service& svc, const std::string& port_label,
                                          const std::string& proto_label) const {
  if (port_label.size() < 2 || port_label[0] != '_' || proto_label.size() < 2 || proto_label[0] != '_') {
    return Negative(Rcode::kNxDomain);
  }
  const std::string port_name = port_label.substr(1);
  const std::string fqdn = absl::StrCat(port_label, ".", proto_label, ".", ServiceFqdn(svc));
  const std::string svc_fqdn = ServiceFqdn(svc);
  ZoneAnswer a;
  bool exists = false;
  if (!svc.Headless()) {
    for (const auto& port : svc.ports) {
      if (port.name != port_name || ProtoLabel(port.protocol) != proto_label) continue;
      exists = true;
      if (q.type != rr::kSrv && q.type != rr::kAny) break;
      auto rdata = RdataSrv(0, 100, port.port, svc_fqdn);
      if (rdata.ok()) a.answers.push_back({fqdn, rr::kSrv, kClassIn, options_.ttl_seconds, std::move(*rdata)});
      for (const auto& ip : svc.cluster_ips) {
        if (Canonical(ip)) a.additionals.push_back(Address(svc_fqdn, ip));
      }
    }
  } else {
    std::vector<std::pair<std::string, uint16_t>> targets;
    std::set<std::pair<std::string, uint16_t>> seen;
    auto slices = slices_by_service_.find(svc.Key());
    if (slices != slices_by_service_.end()) {
      for (const auto& [slice_key, unused] : slices->second) {
        const EndpointSlice& slice = slices_.at(slice_key);
        for (const auto& port : slice.ports) {
          if (port.name != port_name || ProtoLabel(port.protocol) != proto_label || !port.port) continue;
          exists = true;
          for (const auto& ep : slice.endpoints) {
            if (!ep.conditions.ready) continue;
            for (const auto& addr : ep.addresses) {
              auto ip = Canonical(addr);
              if (!ip || !seen.insert({*ip, *port.port}).second) continue;
              std::string target = (ep.hostname.empty() ? Dashed(*ip) : ep.hostname) + "." + svc_fqdn;
              targets.push_back({target, *port.port});
              a.additionals.push_back(Address(target, *ip));
            }
          }
        }
      }
    }
    // A headless service's port name also exists while it has no endpoints.
    for (const auto& port : svc.ports) {
      if (port.name == port_name && ProtoLabel(port.protocol) == proto_label) exists = true;
    }
    if (q.type == rr::kSrv || q.type == rr::kAny) {
      for (const auto& [target, port] : targets) {
        auto rdata = RdataSrv(0, SrvWeight(targets.size()), port, target);
        if (rdata.ok()) a.answers.push_back({fqdn, rr::kSrv, kClassIn, options_.ttl_seconds, std::move(*rdata)});
      }
    }
  }
  if (!exists) return Negative(Rcode::kNxDomain);
  if (a.answers.empty()) return Negative(Rcode::kNoError);
  return a;
}

ZoneAnswer ClusterDnsView::ResolveEndpoint(const Question& q, const Service& svc, const std::string& host) const {
  if (!svc.Headless()) return Negative(Rcode::kNxDomain);
  const std::string fqdn = host + "." + ServiceFqdn(svc);
  ZoneAnswer a;
  bool exists = false;
  for (const auto& ep : ReadyEndpoints(svc.Key())) {
    if (ep.host != host) continue;
    exists = true;
    if (WantsAddress(q.type, ep.address)) a.answers.push_back(Address(fqdn, ep.address));
  }
  if (!exists) return Negative(Rcode::kNxDomain);
  if (a.answers.empty()) return Negative(Rcode::kNoError);
  return a;
}

ZoneAnswer ClusterDnsView::ResolvePod(const Question& q, const std::string& dashed) const {
  auto ip = AddressFromDashed(dashed);
  if (!ip) return Negative(Rcode::kNxDomain);
  if (!WantsAddress(q.type, *ip)) return Negative(Rcode::kNoError);
  ZoneAnswer a;
  a.answers.push_back(Address(q.name, *ip));
  return a;
}

std::optional<ZoneAnswer> ClusterDnsView::ResolvePtr(const Question& q, const std::string& address) const {
  if (ptr_index_dirty_) RebuildPtrIndexLocked();
  auto it = ptr_index_.find(address);
  if (it == ptr_index_.end()) return std::nullopt;  // not a cluster address: the upstream's business
  if (q.type != rr::kPtr && q.type != rr::kAny) return Negative(Rcode::kNoError);
  auto rdata = RdataName(it->second);
  if (!rdata.ok()) return Negative(Rcode::kServFail);
  ZoneAnswer a;
  a.answers.push_back({q.name, rr::kPtr, kClassIn, options_.ttl_seconds, std::move(*rdata)});
  return a;
}

void ClusterDnsView::RebuildPtrIndexLocked() const {
  ptr_index_.clear();
  // Endpoint names first, then ClusterIPs win on a clash (a ClusterIP is
  // never a pod address in a sane cluster).
  for (const auto& [key, svc] : services_) {
    for (const auto& ep : ReadyEndpoints(key)) ptr_index_[ep.address] = ep.host + "." + ServiceFqdn(svc);
  }
  for (const auto& [key, svc] : services_) {
    if (svc.Headless()) continue;
    for (const auto& ip : svc.cluster_ips) {
      if (auto c = Canonical(ip)) ptr_index_[*c] = ServiceFqdn(svc);
    }
  }
  ptr_index_dirty_ = false;
}

std::vector<ClusterDnsView::EndpointName> ClusterDnsView::ReadyEndpoints(const std::string& service_key) const {
  std::vector<EndpointName> out;
  auto slices = slices_by_service_.find(service_key);
  if (slices == slices_by_service_.end()) return out;
  std::set<std::string> seen;
  for (const auto& [slice_key, unused] : slices->second) {
    for (const auto& ep : slices_.at(slice_key).endpoints) {
      if (!ep.conditions.ready) continue;
      for (const auto& addr : ep.addresses) {
        auto ip = Canonical(addr);
        if (!ip || !seen.insert(*ip).second) continue;
        out.push_back({ep.hostname.empty() ? Dashed(*ip) : LowerName(ep.hostname), *ip});
      }
    }
  }
  return out;
}

std::string ClusterDnsView::ServiceFqdn(const Service& svc) const {
  return absl::StrCat(LowerName(svc.name), ".", LowerName(svc.namespace_name), ".svc.", zone_);
}

ZoneAnswer ClusterDnsView::Negative(Rcode rcode) const {
  ZoneAnswer a;
  a.rcode = rcode;
  if (rcode == Rcode::kNoError || rcode == Rcode::kNxDomain) a.authorities.push_back(Soa());
  return a;
}

ResourceRecord ClusterDnsView::Soa() const {
  // Same shape as CoreDNS: ns.dns.<zone> hostmaster.<zone>, negative TTL = TTL.
  auto rdata = RdataSoa("ns.dns." + zone_, "hostmaster." + zone_, serial_, 7200, 1800, 86400, options_.ttl_seconds);
  return {zone_, rr::kSoa, kClassIn, options_.ttl_seconds, rdata.ok() ? std::move(*rdata) : std::vector<uint8_t>{}};
}

ResourceRecord ClusterDnsView::Address(const std::string& name, const std::string& ip) const {
  if (IsV4(ip)) return {name, rr::kA, kClassIn, options_.ttl_seconds, RdataA(ip)};
  return {name, rr::kAaaa, kClassIn, options_.ttl_seconds, RdataAaaa(ip)};
}

}  // namespace kelpie::dns
