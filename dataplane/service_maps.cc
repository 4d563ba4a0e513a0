#include "dataplane/service_maps.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstring>
#include <tuple>

#include "absl/strings/str_cat.h"

bool operator<(const kelpie_lb_service_key& a, const kelpie_lb_service_key& b) {
  return std::tie(a.address, a.port, a.protocol) < std::tie(b.address, b.port, b.protocol);
}
bool operator==(const kelpie_lb_service_key& a, const kelpie_lb_service_key& b) {
  return a.address == b.address && a.port == b.port && a.protocol == b.protocol;
}
bool operator==(const kelpie_lb_service_value& a, const kelpie_lb_service_value& b) {
  return a.service_id == b.service_id && a.slot_count == b.slot_count &&
         a.affinity_timeout_s == b.affinity_timeout_s && a.flags == b.flags;
}
bool operator==(const kelpie_lb_backend& a, const kelpie_lb_backend& b) {
  return a.address == b.address && a.port == b.port && a.protocol == b.protocol && a.flags == b.flags;
}

namespace kelpie::dataplane {
namespace {

absl::Status MapError(absl::string_view what, int err) {
  // libbpf's low-level calls return -1 with errno, or -errno.
  int e = err < 0 ? -err : err;
  if (e == 1 && errno != 0) e = errno;
  return absl::Status(absl::ErrnoToStatusCode(e), absl::StrCat(what, ": ", std::strerror(e)));
}

// Walks every key of a hash map with bpf_map_get_next_key.
template <typename Key, typename Fn>
absl::Status ForEachKey(int fd, Fn fn) {
  Key key{};
  Key next{};
  const void* prev = nullptr;
  // Bounded by the map: get_next_key ends with ENOENT.
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    key = next;
    prev = &key;
    if (absl::Status s = fn(key); !s.ok()) return s;
  }
  if (errno != ENOENT) return MapError("walking map", -errno);
  return absl::OkStatus();
}

}  // namespace

std::string FormatServiceKey(const kelpie_lb_service_key& key) {
  char buf[INET_ADDRSTRLEN] = {};
  struct in_addr a;
  a.s_addr = key.address;
  ::inet_ntop(AF_INET, &a, buf, sizeof(buf));
  return absl::StrCat(buf, ":", ntohs(key.port), "/", key.protocol == IPPROTO_UDP ? "udp" : "tcp");
}

absl::Status ServiceMaps::UpsertService(const kelpie_lb_service_key& key, const kelpie_lb_service_value& value) {
  if (int err = bpf_map_update_elem(fds_.services, &key, &value, BPF_ANY); err != 0) {
    return MapError(absl::StrCat("writing service ", FormatServiceKey(key)), err);
  }
  return absl::OkStatus();
}

absl::Status ServiceMaps::DeleteService(const kelpie_lb_service_key& key, uint32_t service_id) {
  if (int err = bpf_map_delete_elem(fds_.services, &key); err != 0 && errno != ENOENT) {
    return MapError(absl::StrCat("deleting service ", FormatServiceKey(key)), err);
  }
  bpf_map_delete_elem(fds_.service_stats, &service_id);  // absent when never used
  return absl::OkStatus();
}

absl::Status ServiceMaps::UpsertBackend(uint32_t id, const kelpie_lb_backend& backend) {
  if (int err = bpf_map_update_elem(fds_.backends, &id, &backend, BPF_ANY); err != 0) {
    return MapError(absl::StrCat("writing backend ", id), err);
  }
  return absl::OkStatus();
}

absl::Status ServiceMaps::DeleteBackend(uint32_t id) {
  if (int err = bpf_map_delete_elem(fds_.backends, &id); err != 0 && errno != ENOENT) {
    return MapError(absl::StrCat("deleting backend ", id), err);
  }
  return absl::OkStatus();
}

absl::Status ServiceMaps::WriteSlots(uint32_t service_id, const std::vector<uint32_t>& backend_ids) {
  if (backend_ids.empty()) return absl::OkStatus();
  std::vector<kelpie_lb_slot_key> keys(backend_ids.size());
  for (uint32_t i = 0; i < keys.size(); ++i) keys[i] = {.service_id = service_id, .slot = i};
  // One syscall for the whole table (a Maglev table has thousands of slots).
  uint32_t count = static_cast<uint32_t>(keys.size());
  if (int err = bpf_map_update_batch(fds_.slots, keys.data(), backend_ids.data(), &count, nullptr); err != 0) {
    return MapError(absl::StrCat("writing ", keys.size(), " slots of service ", service_id), err);
  }
  return absl::OkStatus();
}

absl::Status ServiceMaps::DeleteSlots(uint32_t service_id, uint32_t from, uint32_t to) {
  // Delete one by one: a batch delete stops at the first absent key.
  for (uint32_t i = from; i < to; ++i) {
    kelpie_lb_slot_key key{.service_id = service_id, .slot = i};
    if (int err = bpf_map_delete_elem(fds_.slots, &key); err != 0 && errno != ENOENT) {
      return MapError(absl::StrCat("deleting slot ", i, " of service ", service_id), err);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<LbMapsSnapshot> ServiceMaps::Snapshot() {
  LbMapsSnapshot snap;
  absl::Status s = ForEachKey<kelpie_lb_service_key>(fds_.services, [&](const kelpie_lb_service_key& k) {
    kelpie_lb_service_value v{};
    if (bpf_map_lookup_elem(fds_.services, &k, &v) == 0) snap.services.emplace_back(k, v);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  s = ForEachKey<uint32_t>(fds_.backends, [&](const uint32_t& k) {
    kelpie_lb_backend v{};
    if (bpf_map_lookup_elem(fds_.backends, &k, &v) == 0) snap.backends.emplace_back(k, v);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  s = ForEachKey<kelpie_lb_slot_key>(fds_.slots, [&](const kelpie_lb_slot_key& k) {
    uint32_t v = 0;
    if (bpf_map_lookup_elem(fds_.slots, &k, &v) == 0) snap.slots[k.service_id][k.slot] = v;
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return snap;
}

absl::StatusOr<LbReasonCounts> ServiceMaps::ReasonCounts() const {
  int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return MapError("counting CPUs", cpus);
  LbReasonCounts out(KELPIE_LB_REASON_MAX, 0);
  std::vector<uint64_t> per_cpu(static_cast<size_t>(cpus));
  for (uint32_t r = 0; r < KELPIE_LB_REASON_MAX; ++r) {
    if (int err = bpf_map_lookup_elem(fds_.reasons, &r, per_cpu.data()); err != 0) {
      return MapError("reading reason counters", err);
    }
    for (uint64_t v : per_cpu) out[r] += v;
  }
  return out;
}

absl::StatusOr<kelpie_lb_service_stats> ServiceMaps::ServiceStats(uint32_t service_id) const {
  int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return MapError("counting CPUs", cpus);
  std::vector<kelpie_lb_service_stats> per_cpu(static_cast<size_t>(cpus));
  kelpie_lb_service_stats sum{};
  if (bpf_map_lookup_elem(fds_.service_stats, &service_id, per_cpu.data()) != 0) {
    if (errno == ENOENT) return sum;
    return MapError("reading service stats", -errno);
  }
  for (const auto& v : per_cpu) {
    sum.translated += v.translated;
    sum.no_backend += v.no_backend;
  }
  return sum;
}

absl::StatusOr<uint32_t> ServiceMaps::CountRevnatEntries() const {
  uint32_t n = 0;
  absl::Status s = ForEachKey<kelpie_lb_revnat_key>(fds_.revnat, [&](const kelpie_lb_revnat_key&) {
    ++n;
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return n;
}

absl::StatusOr<uint32_t> ServiceMaps::CountAffinityEntries() const {
  uint32_t n = 0;
  absl::Status s = ForEachKey<kelpie_lb_affinity_key>(fds_.affinity, [&](const kelpie_lb_affinity_key&) {
    ++n;
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return n;
}

absl::StatusOr<LbMaps::LruUsage> ServiceMaps::CountLruEntries() const {
  LruUsage usage;
  auto revnat = CountRevnatEntries();
  if (!revnat.ok()) return revnat.status();
  auto affinity = CountAffinityEntries();
  if (!affinity.ok()) return affinity.status();
  usage.revnat = *revnat;
  usage.affinity = *affinity;
  return usage;
}

}  // namespace kelpie::dataplane
