#include "control/service_proxy/node_port_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>

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

uint32_t NodePortProxy::IdFor(const std::string& port_key) {
  auto [it, inserted] = ids_.emplace(port_key, next_id_);
  if (inserted) ++next_id_;
  return it->second;
}

absl::Status NodePortProxy::OnServiceUpdate(const Service& service) {
  services_[service.Key()] = service;
  return Sync(service.Key());
}

absl::Status NodePortProxy::OnServiceDelete(const std::string& namespace_name, const std::string& name) {
  std::string key = namespace_name + "/" + name;
  services_.erase(key);
  return Sync(key);
}

absl::Status NodePortProxy::OnEndpointSliceUpdate(const EndpointSlice& slice) {
  slices_[slice.Key()] = slice;
  return Sync(slice.ServiceKey());
}

absl::Status NodePortProxy::OnEndpointSliceDelete(const std::string& namespace_name, const std::string& name) {
  auto it = slices_.find(namespace_name + "/" + name);
  if (it == slices_.end()) return absl::OkStatus();
  std::string service_key = it->second.ServiceKey();
  slices_.erase(it);
  return Sync(service_key);
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
      if (port.protocol == Protocol::kSctp) continue;
      bool has_frontend = (node_ports && port.node_port != 0 && !node_addrs.empty()) ||
                          (!external_addrs.empty() && !node_addrs.empty());
      if (!has_frontend) continue;
      uint32_t id = IdFor(absl::StrCat(service_key, "/", port.name, "/", static_cast<int>(port.protocol)));
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
      auto add = [&](uint32_t address, uint16_t frontend_port, uint32_t snat) {
        kelpie_np_frontend_value v = {};
        v.service_id = id;
        v.backend_count = static_cast<uint32_t>(chosen.size());
        v.snat_address = snat;
        v.flags = s.external_traffic_local ? KELPIE_NP_FRONTEND_LOCAL : 0;
        want[{address, htons(frontend_port), IpProtocol(port.protocol)}] = v;
      };
      if (node_ports && port.node_port != 0) {
        for (uint32_t a : node_addrs) add(a, port.node_port, a);
      }
      if (!node_addrs.empty()) {
        for (uint32_t a : external_addrs) add(a, port.port, node_addrs.front());
      }
    }
  }
  // Backends first (growing lists), then frontends, then what shrank.
  for (const auto& [id, list] : want_backends) {
    std::vector<Backend>& have = backends_[id];
    for (size_t i = 0; i < list.size(); ++i) {
      if (i < have.size() && have[i] == list[i]) continue;
      kelpie_np_backend b = {.address = list[i].address, .port = list[i].port, .pad = 0};
      if (absl::Status st = maps_.UpsertBackend(id, static_cast<uint32_t>(i), b); !st.ok()) return st;
    }
  }
  for (const auto& [key, value] : want) {
    auto it = frontends_.find(key);
    if (it != frontends_.end() && std::memcmp(&it->second, &value, sizeof(value)) == 0) continue;
    kelpie_np_frontend_key k = {.address = std::get<0>(key), .port = std::get<1>(key),
                                .protocol = std::get<2>(key), .pad = 0};
    if (absl::Status st = maps_.UpsertFrontend(k, value); !st.ok()) return st;
    frontends_[key] = value;
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
  // Trailing backends no frontend counts any more; ids of ports that went.
  std::string prefix = service_key + "/";
  for (auto id_it = ids_.begin(); id_it != ids_.end(); ++id_it) {
    if (id_it->first.compare(0, prefix.size(), prefix) != 0) continue;
    uint32_t id = id_it->second;
    auto have = backends_.find(id);
    if (have == backends_.end()) continue;
    size_t keep = want_backends.count(id) ? want_backends[id].size() : 0;
    for (size_t i = keep; i < have->second.size(); ++i) {
      if (absl::Status st = maps_.DeleteBackend(id, static_cast<uint32_t>(i)); !st.ok()) return st;
    }
    if (keep == 0) {
      backends_.erase(have);
    } else {
      have->second = want_backends[id];
    }
  }
  return absl::OkStatus();
}

}  // namespace kelpie::service_proxy
