#include "control/service_proxy/node_port_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "absl/strings/str_cat.h"

namespace kelpie::service_proxy {
namespace {

bool ParseIpv4(const std::string& s, uint32_t* out) {
  in_addr a = {};
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) return false;
  *out = a.s_addr;
  return true;
}

uint8_t IpProtocol(Protocol p) { return p == Protocol::kUdp ? IPPROTO_UDP : IPPROTO_TCP; }

}  // namespace

NodePortProxy::NodePortProxy(dataplane::NodePortMaps& maps, NodePortProxyOptions options)
    : maps_(maps), options_(std::move(options)) {}

absl::Status NodePortProxy::Restore() {
  std::lock_guard<std::mutex> lock(mu_);
  auto snapshot = maps_.Snapshot();
  if (!snapshot.ok()) return snapshot.status();
  for (const auto& [k, v] : snapshot->frontends) {
    frontends_[{k.address, k.port, k.protocol}] = v;
    next_id_ = std::max(next_id_, v.service_id + 1);
  }
  // Backend lists are dense from index 0; a gap (a write the previous run
  // did not finish) is a placeholder the next sync overwrites or deletes.
  constexpr uint32_t kMaxRestoredIndex = 1u << 20;
  for (const auto& [k, b] : snapshot->backends) {
    if (k.index >= kMaxRestoredIndex) continue;
    std::vector<Backend>& list = backends_[k.service_id];
    if (list.size() <= k.index) list.resize(k.index + 1, Backend{0, 0});
    list[k.index] = Backend{b.address, b.port};
    next_id_ = std::max(next_id_, k.service_id + 1);
  }
  deferred_ = true;
  return absl::OkStatus();
}

uint32_t NodePortProxy::IdFor(const std::string& port_key, const std::vector<FrontendKey>& frontends) {
  if (auto it = ids_.find(port_key); it != ids_.end()) return it->second;
  // A restored frontend of this port keeps its id: its backend list is
  // then rewritten in place instead of a new list being built beside it.
  uint32_t id = 0;
  for (const FrontendKey& key : frontends) {
    auto fe = frontends_.find(key);
    if (fe == frontends_.end() || frontend_owner_.count(key) != 0) continue;
    if (claimed_ids_.count(fe->second.service_id) != 0) continue;
    id = fe->second.service_id;
    break;
  }
  if (id == 0) id = next_id_++;
  ids_[port_key] = id;
  claimed_ids_.insert(id);
  return id;
}

absl::Status NodePortProxy::OnServiceUpdate(const Service& service) {
  std::lock_guard<std::mutex> lock(mu_);
  services_[service.Key()] = service;
  return deferred_ ? absl::OkStatus() : Sync(service.Key());
}

absl::Status NodePortProxy::OnServiceDelete(const std::string& namespace_name, const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string key = namespace_name + "/" + name;
  services_.erase(key);
  return deferred_ ? absl::OkStatus() : Sync(key);
}

absl::Status NodePortProxy::OnEndpointSliceUpdate(const EndpointSlice& slice) {
  std::lock_guard<std::mutex> lock(mu_);
  // A slice relabelled to another service leaves the old one.
  std::string previous_service;
  if (auto it = slices_.find(slice.Key()); it != slices_.end()) previous_service = it->second.ServiceKey();
  slices_[slice.Key()] = slice;
  if (deferred_) return absl::OkStatus();
  if (!previous_service.empty() && previous_service != slice.ServiceKey()) {
    if (absl::Status st = Sync(previous_service); !st.ok()) return st;
  }
  return Sync(slice.ServiceKey());
}

absl::Status NodePortProxy::OnEndpointSliceDelete(const std::string& namespace_name, const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = slices_.find(namespace_name + "/" + name);
  if (it == slices_.end()) return absl::OkStatus();
  std::string service_key = it->second.ServiceKey();
  slices_.erase(it);
  return deferred_ ? absl::OkStatus() : Sync(service_key);
}

absl::Status NodePortProxy::OnInitialSyncDone() {
  std::lock_guard<std::mutex> lock(mu_);
  deferred_ = false;
  absl::Status first = SyncAll();
  // What the previous run left and no service claims: frontends first (the
  // program stops choosing from their lists), then the lists.
  for (auto it = frontends_.begin(); it != frontends_.end();) {
    if (frontend_owner_.count(it->first) != 0) {
      ++it;
      continue;
    }
    kelpie_np_frontend_key k = {.address = std::get<0>(it->first), .port = std::get<1>(it->first),
                                .protocol = std::get<2>(it->first), .pad = 0};
    if (absl::Status st = maps_.DeleteFrontend(k); !st.ok()) {
      if (first.ok()) first = st;
      ++it;
      continue;
    }
    it = frontends_.erase(it);
  }
  std::set<uint32_t> referenced = claimed_ids_;
  for (const auto& [key, value] : frontends_) referenced.insert(value.service_id);
  for (auto it = backends_.begin(); it != backends_.end();) {
    if (referenced.count(it->first) != 0) {
      ++it;
      continue;
    }
    bool all = true;
    for (size_t i = 0; i < it->second.size(); ++i) {
      if (absl::Status st = maps_.DeleteBackend(it->first, static_cast<uint32_t>(i)); !st.ok()) {
        if (first.ok()) first = st;
        all = false;
      }
    }
    it = all ? backends_.erase(it) : std::next(it);
  }
  return first;
}

absl::Status NodePortProxy::SetNodeAddresses(std::vector<std::string> addresses) {
  std::lock_guard<std::mutex> lock(mu_);
  std::sort(addresses.begin(), addresses.end());
  addresses.erase(std::unique(addresses.begin(), addresses.end()), addresses.end());
  if (addresses == options_.node_addresses) return absl::OkStatus();
  options_.node_addresses = std::move(addresses);
  return deferred_ ? absl::OkStatus() : SyncAll();
}

std::vector<std::string> NodePortProxy::node_addresses() const {
  std::lock_guard<std::mutex> lock(mu_);
  return options_.node_addresses;
}

size_t NodePortProxy::frontend_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return frontends_.size();
}

size_t NodePortProxy::backend_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (const auto& [id, list] : backends_) n += list.size();
  return n;
}

absl::Status NodePortProxy::SyncAll() {
  std::set<std::string> keys;
  for (const auto& [key, service] : services_) keys.insert(key);
  for (const auto& [key, slice] : slices_) keys.insert(slice.ServiceKey());
  for (const auto& [key, owner] : frontend_owner_) keys.insert(owner);
  absl::Status first;
  for (const std::string& key : keys) {
    absl::Status st = Sync(key);
    if (!st.ok() && first.ok()) first = st;
  }
  return first;
}

absl::Status NodePortProxy::Sync(const std::string& service_key) {
  std::map<FrontendKey, kelpie_np_frontend_value> want;
  std::map<uint32_t, std::vector<Backend>> want_backends;
  auto svc = services_.find(service_key);
  if (svc != services_.end() && svc->second.type != "ExternalName" && !svc->second.Headless()) {
    const Service& s = svc->second;
    std::vector<uint32_t> node_addrs;
    for (const auto& a : options_.node_addresses) {
      uint32_t v;
      if (ParseIpv4(a, &v)) node_addrs.push_back(v);
    }
    std::vector<uint32_t> external_addrs;
    for (const auto& a : s.external_ips) {
      uint32_t v;
      if (ParseIpv4(a, &v)) external_addrs.push_back(v);
    }
    bool node_ports = s.type == "NodePort" || s.type == "LoadBalancer";
    for (const ServicePort& port : s.ports) {
      if (port.protocol == Protocol::kSctp || node_addrs.empty()) continue;
      // (frontend, SNAT address) pairs of this port.
      std::vector<std::pair<FrontendKey, uint32_t>> frontends;
      if (node_ports && port.node_port != 0) {
        for (uint32_t a : node_addrs) frontends.push_back({{a, htons(port.node_port), IpProtocol(port.protocol)}, a});
      }
      for (uint32_t a : external_addrs) {
        frontends.push_back({{a, htons(port.port), IpProtocol(port.protocol)}, node_addrs.front()});
      }
      if (frontends.empty()) continue;
      std::vector<FrontendKey> keys;
      for (const auto& f : frontends) keys.push_back(f.first);
      uint32_t id = IdFor(absl::StrCat(service_key, "/", port.name, "/", static_cast<int>(port.protocol)), keys);
      // Ready endpoints; serving terminating ones only when none is ready.
      std::vector<Backend> ready, terminating;
      std::set<std::pair<uint32_t, uint16_t>> seen;
      for (const auto& [key, slice] : slices_) {
        if (slice.ServiceKey() != service_key || slice.address_type != "IPv4") continue;
        for (const EndpointPort& ep : slice.ports) {
          if (ep.name != port.name || ep.protocol != port.protocol || !ep.port) continue;
          for (const Endpoint& e : slice.endpoints) {
            if (s.external_traffic_local && e.node_name != options_.node_name) continue;
            for (const auto& addr : e.addresses) {
              uint32_t v;
              if (!ParseIpv4(addr, &v) || !seen.insert({v, *ep.port}).second) continue;
              Backend b{v, htons(*ep.port)};
              if (e.conditions.ready && !e.conditions.terminating) {
                ready.push_back(b);
              } else if (e.conditions.serving && e.conditions.terminating) {
                terminating.push_back(b);
              }
            }
          }
        }
      }
      std::vector<Backend>& chosen = ready.empty() ? terminating : ready;
      want_backends[id] = chosen;
      for (const auto& [key, snat] : frontends) {
        kelpie_np_frontend_value v = {};
        v.service_id = id;
        v.backend_count = static_cast<uint32_t>(chosen.size());
        v.snat_address = snat;
        v.flags = s.external_traffic_local ? KELPIE_NP_FRONTEND_LOCAL : 0;
        want[key] = v;
      }
    }
  }
  // Backends first (growing lists), then frontends, then what shrank.
  for (const auto& [id, list] : want_backends) {
    const std::vector<Backend>& have = backends_[id];
    for (size_t i = 0; i < list.size(); ++i) {
      if (i < have.size() && have[i] == list[i]) continue;
      kelpie_np_backend b = {.address = list[i].address, .port = list[i].port, .pad = 0};
      if (absl::Status st = maps_.UpsertBackend(id, static_cast<uint32_t>(i), b); !st.ok()) return st;
    }
  }
  for (const auto& [key, value] : want) {
    auto it = frontends_.find(key);
    if (it == frontends_.end() || std::memcmp(&it->second, &value, sizeof(value)) != 0) {
      kelpie_np_frontend_key k = {.address = std::get<0>(key), .port = std::get<1>(key),
                                  .protocol = std::get<2>(key), .pad = 0};
      if (absl::Status st = maps_.UpsertFrontend(k, value); !st.ok()) return st;
      frontends_[key] = value;
    }
    frontend_owner_[key] = service_key;
  }
  for (auto it = frontend_owner_.begin(); it != frontend_owner_.end();) {
    if (it->second != service_key || want.count(it->first) != 0) {
      ++it;
      continue;
    }
    kelpie_np_frontend_key k = {.address = std::get<0>(it->first), .port = std::get<1>(it->first),
                                .protocol = std::get<2>(it->first), .pad = 0};
    if (absl::Status st = maps_.DeleteFrontend(k); !st.ok()) return st;
    frontends_.erase(it->first);
    it = frontend_owner_.erase(it);
  }
  // Trailing backends no frontend counts any more; whole lists of ports
  // that went.
  std::string prefix = service_key + "/";
  for (auto id_it = ids_.begin(); id_it != ids_.end(); ++id_it) {
    if (id_it->first.compare(0, prefix.size(), prefix) != 0) continue;
    uint32_t id = id_it->second;
    auto have = backends_.find(id);
    if (have == backends_.end()) continue;
    auto wanted = want_backends.find(id);
    size_t keep = wanted != want_backends.end() ? wanted->second.size() : 0;
    for (size_t i = keep; i < have->second.size(); ++i) {
      if (absl::Status st = maps_.DeleteBackend(id, static_cast<uint32_t>(i)); !st.ok()) return st;
    }
    if (keep == 0) {
      backends_.erase(have);
    } else {
      have->second = wanted->second;
    }
  }
  return absl::OkStatus();
}

}  // namespace kelpie::service_proxy
