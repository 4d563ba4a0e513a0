#include "control/service_proxy/service_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/log.h"
#include "control/service_proxy/maglev.h"

namespace kelpie::service_proxy {
namespace {

using dataplane::FormatServiceKey;

std::optional<uint32_t> ParseIpv4(const std::string& text) {
  struct in_addr a;
  if (::inet_pton(AF_INET, text.c_str(), &a) != 1) return std::nullopt;
  return a.s_addr;
}

uint8_t IpProtocol(Protocol p) { return p == Protocol::kUdp ? IPPROTO_UDP : IPPROTO_TCP; }

prometheus::Histogram::BucketBoundaries LatencyBuckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

}  // namespace

std::string BackendAddress::ToString() const {
  char buf[INET_ADDRSTRLEN] = {};
  struct in_addr a;
  a.s_addr = address_be;
  ::inet_ntop(AF_INET, &a, buf, sizeof(buf));
  return absl::StrCat(buf, ":", port, protocol == IPPROTO_UDP ? "/udp" : "/tcp");
}

ServiceProxy::ServiceProxy(dataplane::LbMaps& maps, prometheus::Registry& registry, ServiceProxyOptions options)
    : maps_(maps), options_(std::move(options)) {
  sync_duration_ = &prometheus::BuildHistogram()
                        .Name("kelpie_service_sync_duration_seconds")
                        .Help("Time to reconcile one service's frontends into the BPF maps")
                        .Register(registry)
                        .Add({}, LatencyBuckets());
  programming_latency_ = &prometheus::BuildHistogram()
                              .Name("kelpie_service_programming_latency_seconds")
                              .Help("Time from an endpoint change (the EndpointSlice's last-change-trigger-time, "
                                    "else its arrival) until the BPF maps route it")
                              .Register(registry)
                              .Add({}, LatencyBuckets());
  auto& pressure = prometheus::BuildGauge()
                       .Name("kelpie_service_map_pressure")
                       .Help("Entries in a service routing map divided by its capacity (1 = full)")
                       .Register(registry);
  pressure_services_ = &pressure.Add({{"map", "lb_services"}});
  pressure_backends_ = &pressure.Add({{"map", "lb_backends"}});
  pressure_slots_ = &pressure.Add({{"map", "lb_slots"}});
  pressure_revnat_ = &pressure.Add({{"map", "lb_revnat"}});
  pressure_affinity_ = &pressure.Add({{"map", "lb_affinity"}});
}

absl::Status ServiceProxy::RefreshLruPressure() {
  // No lock: reads only the kernel maps and sets gauges.
  auto usage = maps_.CountLruEntries();
  if (!usage.ok()) return usage.status();
  dataplane::LbMapCapacity c = maps_.Capacity();
  pressure_revnat_->Set(c.revnat ? static_cast<double>(usage->revnat) / c.revnat : 0.0);
  pressure_affinity_->Set(c.affinity ? static_cast<double>(usage->affinity) / c.affinity : 0.0);
  return absl::OkStatus();
}

ServiceProxy::~ServiceProxy() = default;

size_t ServiceProxy::frontend_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return applied_.size() - orphan_frontends_;
}

size_t ServiceProxy::backend_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return backends_.size();
}

std::optional<uint32_t> ServiceProxy::ServiceIdOf(const kelpie_lb_service_key& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = applied_.find(key);
  if (it == applied_.end()) return std::nullopt;
  return it->second.value.service_id;
}

absl::Status ServiceProxy::Restore() {
  std::lock_guard<std::mutex> lock(mu_);
  auto snap = maps_.Snapshot();
  if (!snap.ok()) return snap.status();
  for (const auto& [id, b] : snap->backends) {
    BackendAddress addr{.address_be = b.address, .port = ntohs(b.port), .protocol = b.protocol};
    backends_[addr] = BackendEntry{.id = id, .refs = 0};
    backend_by_id_[id] = addr;
    next_backend_id_ = std::max(next_backend_id_, id + 1);
  }
  for (const auto& [key, value] : snap->services) {
    AppliedFrontend f;
    f.value = value;
    auto slots = snap->slots.find(value.service_id);
    if (slots != snap->slots.end()) {
      for (const auto& [slot, backend] : slots->second) {
        if (slot < value.slot_count) {
          if (f.slots.size() <= slot) f.slots.resize(slot + 1, 0);
          f.slots[slot] = backend;
        }
        f.slot_extent = std::max(f.slot_extent, slot + 1);
      }
      slot_entries_ += slots->second.size();
    }
    f.slots.resize(value.slot_count, 0);
    for (uint32_t id : f.slots) {
      if (backend_by_id_.count(id) && f.backend_ids.insert(id).second) backends_[backend_by_id_[id]].refs++;
    }
    used_service_ids_.insert(value.service_id);
    next_service_id_ = std::max(next_service_id_, value.service_id + 1);
    applied_[key] = std::move(f);
  }
  // Slots of ids no service entry names are left by an interrupted delete;
  // they go at the initial sync with the other stale entries.
  for (const auto& [id, slots] : snap->slots) {
    if (!used_service_ids_.count(id)) {
      used_service_ids_.insert(id);
      AppliedFrontend orphan;
      orphan.value.service_id = id;
      orphan.slot_extent = slots.empty() ? 0 : slots.rbegin()->first + 1;
      slot_entries_ += slots.size();
      // Keyed by an impossible frontend (port 0) so that no service claims it.
      kelpie_lb_service_key k{.address = 0, .port = 0, .protocol = 0};
      k.address = id;  // distinct per orphan id
      applied_[k] = std::move(orphan);
      ++orphan_frontends_;
    }
  }
  spdlog::info("service proxy restored {} frontends and {} backends from pinned maps", applied_.size(),
               backends_.size());
  UpdatePressure();
  return absl::OkStatus();
}

absl::Status ServiceProxy::OnServiceUpdate(const Service& service) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string key = service.Key();
  services_[key] = service;
  return Reconcile(key);
}

absl::Status ServiceProxy::OnServiceDelete(const std::string& namespace_name, const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string key = namespace_name + "/" + name;
  services_.erase(key);
  return Reconcile(key);
}

absl::Status ServiceProxy::OnEndpointSliceUpdate(const EndpointSlice& slice) {
  absl::Time arrived = absl::Now();
  std::lock_guard<std::mutex> lock(mu_);
  std::string slice_key = slice.Key();
  std::string service_key = slice.ServiceKey();
  absl::Status s = absl::OkStatus();
  // A slice relabelled to another service leaves its old one.
  auto prev = slice_owner_.find(slice_key);
  if (prev != slice_owner_.end() && prev->second != service_key) {
    std::string old = prev->second;
    slices_[old].erase(slice_key);
    if (slices_[old].empty()) slices_.erase(old);
    s.Update(Reconcile(old));
  }
  if (slice.service_name.empty()) {
    slice_owner_.erase(slice_key);
    return s;
  }
  slice_owner_[slice_key] = service_key;
  slices_[service_key][slice_key] = slice;
  s.Update(Reconcile(service_key));
  if (s.ok() && initial_sync_done_) {
    absl::Time start = slice.last_change_trigger_ns ? absl::FromUnixNanos(*slice.last_change_trigger_ns) : arrived;
    // The trigger time has second precision and another clock: never below
    // our own part of the latency.
    double seconds = std::max(absl::ToDoubleSeconds(absl::Now() - start), absl::ToDoubleSeconds(absl::Now() - arrived));
    programming_latency_->Observe(seconds);
  }
  return s;
}

absl::Status ServiceProxy::OnEndpointSliceDelete(const std::string& namespace_name, const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string slice_key = namespace_name + "/" + name;
  auto owner = slice_owner_.find(slice_key);
  if (owner == slice_owner_.end()) return absl::OkStatus();
  std::string service_key = owner->second;
  slice_owner_.erase(owner);
  slices_[service_key].erase(slice_key);
  if (slices_[service_key].empty()) slices_.erase(service_key);
  return Reconcile(service_key);
}

absl::Status ServiceProxy::OnInitialSyncDone() {
  std::lock_guard<std::mutex> lock(mu_);
  if (initial_sync_done_) return absl::OkStatus();
  initial_sync_done_ = true;
  absl::Status s;
  // Everything heard so far, now that the picture is complete.
  std::set<std::string> pending = std::move(pending_);
  pending_.clear();
  for (const auto& key : pending) s.Update(Reconcile(key));
  std::vector<kelpie_lb_service_key> stale;
  for (const auto& [key, f] : applied_) {
    if (f.owner.empty()) stale.push_back(key);
  }
  std::vector<uint32_t> released;
  for (const auto& key : stale) s.Update(RemoveFrontend(key, released));
  // Backends nothing references (restored orphans included).
  for (const auto& [addr, entry] : backends_) {
    if (entry.refs == 0) released.push_back(entry.id);
  }
  s.Update(DeleteUnreferencedBackends(released));
  spdlog::info("service proxy initial sync: {} services reconciled, {} stale frontends removed", pending.size(),
               stale.size());
  UpdatePressure();
  return s;
}

std::vector<ServiceProxy::DesiredFrontend> ServiceProxy::Compute(const Service& svc) const {
  std::vector<DesiredFrontend> out;
  // Headless services get DNS records only; ExternalName is a DNS alias.
  if (svc.Headless() || svc.type == "ExternalName") return out;

  auto slices = slices_.find(svc.Key());
  auto backends_for = [&](const ServicePort& sp, bool local_only) {
    std::vector<BackendAddress> ready, fallback;
    if (slices == slices_.end()) return ready;
    for (const auto& [name, slice] : slices->second) {
      if (slice.address_type != "IPv4") continue;
      // Named ports resolve per slice: the slice's port with the service
      // port's name (both empty for a single unnamed port) and protocol.
      const EndpointPort* ep = nullptr;
      for (const auto& p : slice.ports) {
        if (p.name == sp.name && p.protocol == sp.protocol && p.port) ep = &p;
      }
      if (ep == nullptr) continue;
      for (const auto& e : slice.endpoints) {
        if (local_only && e.node_name != options_.node_name) continue;
        for (const auto& a : e.addresses) {
          auto ip = ParseIpv4(a);
          if (!ip) continue;
          BackendAddress b{.address_be = *ip, .port = *ep->port, .protocol = IpProtocol(sp.protocol)};
          if (e.conditions.ready) {
            ready.push_back(b);
          } else if (e.conditions.serving && e.conditions.terminating) {
            fallback.push_back(b);
          }
        }
      }
    }
    // Terminating-but-serving endpoints only when nothing is ready
    // (Kubernetes "ProxyTerminatingEndpoints").
    std::vector<BackendAddress>& chosen = ready.empty() ? fallback : ready;
    std::sort(chosen.begin(), chosen.end());
    chosen.erase(std::unique(chosen.begin(), chosen.end()), chosen.end());
    return chosen;
  };

  auto add = [&](const std::string& ip_text, bool external) {
    auto ip = ParseIpv4(ip_text);
    if (!ip) return;  // IPv6 frontends: not routed (v6 hooks absent)
    for (const auto& sp : svc.ports) {
      if (sp.protocol == Protocol::kSctp) continue;
      DesiredFrontend f;
      f.key = {.address = *ip, .port = htons(sp.port), .protocol = IpProtocol(sp.protocol)};
      bool local = external ? false : svc.internal_traffic_local;
      if (svc.session_affinity_client_ip) {
        f.flags |= KELPIE_LB_SERVICE_AFFINITY;
        f.affinity_timeout_s = svc.session_affinity_timeout_s;
      }
      if (options_.maglev_table_size != 0) f.flags |= KELPIE_LB_SERVICE_MAGLEV;
      if (external) f.flags |= KELPIE_LB_SERVICE_EXTERNAL;
      if (local) f.flags |= KELPIE_LB_SERVICE_LOCAL;
      f.backends = backends_for(sp, local);
      out.push_back(std::move(f));
    }
  };
  for (const auto& ip : svc.cluster_ips) add(ip, false);
  for (const auto& ip : svc.external_ips) add(ip, true);
  // <node address>:<nodePort> from this node: treated like external IPs
  // (externalTrafficPolicy does not apply to node-local clients, as in
  // kube-proxy, whose local traffic to a Local NodePort uses every endpoint).
  if (svc.type == "NodePort" || svc.type == "LoadBalancer") {
    for (const auto& address : options_.node_addresses) {
      auto ip = ParseIpv4(address);
      if (!ip) continue;
      for (const auto& sp : svc.ports) {
        if (sp.protocol == Protocol::kSctp || sp.node_port == 0) continue;
        DesiredFrontend f;
        f.key = {.address = *ip, .port = htons(sp.node_port), .protocol = IpProtocol(sp.protocol)};
        f.flags = KELPIE_LB_SERVICE_EXTERNAL;
        if (svc.session_affinity_client_ip) {
          f.flags |= KELPIE_LB_SERVICE_AFFINITY;
          f.affinity_timeout_s = svc.session_affinity_timeout_s;
        }
        if (options_.maglev_table_size != 0) f.flags |= KELPIE_LB_SERVICE_MAGLEV;
        f.backends = backends_for(sp, false);
        out.push_back(std::move(f));
      }
    }
  }
  return out;
}

absl::Status ServiceProxy::SetNodeAddresses(std::vector<std::string> addresses) {
  std::lock_guard<std::mutex> lock(mu_);
  std::sort(addresses.begin(), addresses.end());
  addresses.erase(std::unique(addresses.begin(), addresses.end()), addresses.end());
  if (addresses == options_.node_addresses) return absl::OkStatus();
  options_.node_addresses = std::move(addresses);
  absl::Status s = absl::OkStatus();
  for (const auto& [key, service] : services_) {
    if (service.type == "NodePort" || service.type == "LoadBalancer") s.Update(Reconcile(key));
  }
  return s;
}

absl::Status ServiceProxy::Reconcile(const std::string& service_key) {
  if (!initial_sync_done_) {
    // Partial knowledge (a Service without its slices yet) must not shrink
    // what a previous run left serving: wait for the full list.
    pending_.insert(service_key);
    return absl::OkStatus();
  }
  auto started = std::chrono::steady_clock::now();
  std::vector<DesiredFrontend> want;
  auto svc = services_.find(service_key);
  if (svc != services_.end()) want = Compute(svc->second);

  absl::Status status;
  std::vector<uint32_t> released;
  std::set<kelpie_lb_service_key> keep;
  for (const auto& f : want) {
    // Another service already owns this frontend (duplicate clusterIP or
    // externalIP): first come keeps it, as the API server forbids the former.
    auto existing = applied_.find(f.key);
    if (existing != applied_.end() && !existing->second.owner.empty() && existing->second.owner != service_key) {
      spdlog::warn("service {} frontend {} already belongs to {}; skipped", service_key, FormatServiceKey(f.key),
                   existing->second.owner);
      continue;
    }
    status.Update(ApplyFrontend(service_key, f, released));
    keep.insert(f.key);
  }
  std::set<kelpie_lb_service_key>& owned = owned_[service_key];
  for (auto it = owned.begin(); it != owned.end();) {
    if (!keep.count(*it)) {
      status.Update(RemoveFrontend(*it, released));
      it = owned.erase(it);
    } else {
      ++it;
    }
  }
  owned.insert(keep.begin(), keep.end());
  if (owned.empty()) owned_.erase(service_key);
  // Backends last, and before the initial sync only those this run placed
  // (restored ones may still serve unclaimed frontends).
  status.Update(DeleteUnreferencedBackends(released));
  sync_duration_->Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  UpdatePressure();
  if (!status.ok()) spdlog::warn("service {}: {}", service_key, status.message());
  return status;
}

absl::StatusOr<uint32_t> ServiceProxy::BackendId(const BackendAddress& b) {
  auto it = backends_.find(b);
  if (it != backends_.end()) return it->second.id;
  uint32_t id = next_backend_id_++;
  kelpie_lb_backend value{.address = b.address_be, .port = htons(b.port), .protocol = b.protocol, .flags = 0};
  if (absl::Status s = maps_.UpsertBackend(id, value); !s.ok()) return s;
  backends_[b] = BackendEntry{.id = id, .refs = 0};
  backend_by_id_[id] = b;
  return id;
}

uint32_t ServiceProxy::AllocateServiceId() {
  while (used_service_ids_.count(next_service_id_)) ++next_service_id_;
  uint32_t id = next_service_id_++;
  used_service_ids_.insert(id);
  return id;
}

absl::Status ServiceProxy::ApplyFrontend(const std::string& owner, const DesiredFrontend& want,
                                         std::vector<uint32_t>& released) {
  // 1. Backends first: slots may only name backends that exist.
  std::vector<uint32_t> ids;
  std::vector<std::string> identities;
  for (const auto& b : want.backends) {
    auto id = BackendId(b);
    if (!id.ok()) return id.status();
    ids.push_back(*id);
    identities.push_back(b.ToString());
  }
  std::vector<uint32_t> slots;
  if (options_.maglev_table_size != 0 && !ids.empty()) {
    auto table = MaglevTable(identities, options_.maglev_table_size);
    if (!table.ok()) return table.status();
    slots.reserve(table->size());
    for (uint32_t index : *table) slots.push_back(ids[index]);
  } else {
    slots = ids;
  }

  auto it = applied_.find(want.key);
  bool fresh = it == applied_.end();
  AppliedFrontend& f = applied_[want.key];
  if (fresh) f.value.service_id = AllocateServiceId();
  f.owner = owner;

  kelpie_lb_service_value value{.service_id = f.value.service_id,
                                .slot_count = static_cast<uint32_t>(slots.size()),
                                .affinity_timeout_s = want.affinity_timeout_s,
                                .flags = want.flags,
                                .pad = 0};
  // 2. Slots in place: readers holding the old count see old or new ids,
  // all valid backends.
  if (slots != f.slots) {
    if (absl::Status s = maps_.WriteSlots(value.service_id, slots); !s.ok()) return s;
  }
  // 3. The service entry switches to the new count atomically.
  if (fresh || !(value == f.value)) {
    if (absl::Status s = maps_.UpsertService(want.key, value); !s.ok()) return s;
  }
  // 4. Slots past the new count are unreachable now.
  uint32_t extent = std::max<uint32_t>(f.slot_extent, static_cast<uint32_t>(f.slots.size()));
  if (extent > slots.size()) {
    if (absl::Status s = maps_.DeleteSlots(value.service_id, static_cast<uint32_t>(slots.size()), extent); !s.ok()) {
      return s;
    }
  }
  slot_entries_ = slot_entries_ - std::min<size_t>(slot_entries_, extent) + slots.size();
  f.value = value;
  f.slots = std::move(slots);
  f.slot_extent = static_cast<uint32_t>(f.slots.size());

  std::set<uint32_t> now(ids.begin(), ids.end());
  for (uint32_t id : now) {
    if (!f.backend_ids.count(id)) backends_[backend_by_id_[id]].refs++;
  }
  for (uint32_t id : f.backend_ids) {
    if (!now.count(id)) {
      auto& e = backends_[backend_by_id_[id]];
      if (e.refs > 0) e.refs--;
      released.push_back(id);
    }
  }
  f.backend_ids = std::move(now);
  return absl::OkStatus();
}

absl::Status ServiceProxy::RemoveFrontend(const kelpie_lb_service_key& key, std::vector<uint32_t>& released) {
  auto it = applied_.find(key);
  if (it == applied_.end()) return absl::OkStatus();
  AppliedFrontend& f = it->second;
  // The service entry goes first: after it no reader reaches the slots.
  if (key.port != 0) {
    if (absl::Status s = maps_.DeleteService(key, f.value.service_id); !s.ok()) return s;
  }
  uint32_t extent = std::max<uint32_t>(f.slot_extent, static_cast<uint32_t>(f.slots.size()));
  if (absl::Status s = maps_.DeleteSlots(f.value.service_id, 0, extent); !s.ok()) return s;
  slot_entries_ -= std::min<size_t>(slot_entries_, extent);
  for (uint32_t id : f.backend_ids) {
    auto& e = backends_[backend_by_id_[id]];
    if (e.refs > 0) e.refs--;
    released.push_back(id);
  }
  used_service_ids_.erase(f.value.service_id);
  if (key.port == 0) --orphan_frontends_;
  applied_.erase(it);
  return absl::OkStatus();
}

absl::Status ServiceProxy::DeleteUnreferencedBackends(const std::vector<uint32_t>& candidates) {
  absl::Status status;
  for (uint32_t id : candidates) {
    auto addr = backend_by_id_.find(id);
    if (addr == backend_by_id_.end()) continue;
    auto entry = backends_.find(addr->second);
    if (entry == backends_.end() || entry->second.refs != 0) continue;
    if (absl::Status s = maps_.DeleteBackend(id); !s.ok()) {
      status.Update(s);
      continue;
    }
    backends_.erase(entry);
    backend_by_id_.erase(addr);
  }
  return status;
}

void ServiceProxy::UpdatePressure() {
  dataplane::LbMapCapacity c = maps_.Capacity();
  auto ratio = [](size_t n, uint32_t cap) { return cap == 0 ? 0.0 : static_cast<double>(n) / cap; };
  size_t services = applied_.size() - orphan_frontends_;
  pressure_services_->Set(ratio(services, c.services));
  pressure_backends_->Set(ratio(backends_.size(), c.backends));
  pressure_slots_->Set(ratio(slot_entries_, c.slots));
}

}  // namespace kelpie::service_proxy
