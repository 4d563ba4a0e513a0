// Typed access to the socket load-balancing maps of bpf/sock_lb.bpf.c
// (layout in kelpie/sock_lb_abi.h). `LbMaps` is what the service proxy
// programs through; `ServiceMaps` implements it over the kernel maps, and
// tests may implement it in memory.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kelpie/sock_lb_abi.h"

// Comparisons of the ABI structs (global, like the structs, for ADL):
// ordered containers and change detection ignore padding.
bool operator<(const kelpie_lb_service_key& a, const kelpie_lb_service_key& b);
bool operator==(const kelpie_lb_service_key& a, const kelpie_lb_service_key& b);
bool operator==(const kelpie_lb_service_value& a, const kelpie_lb_service_value& b);
bool operator==(const kelpie_lb_backend& a, const kelpie_lb_backend& b);

namespace kelpie::dataplane {

// Everything the proxy programmed, read back from the maps (restore after a
// restart).
struct LbMapsSnapshot {
  std::vector<std::pair<kelpie_lb_service_key, kelpie_lb_service_value>> services;
  std::vector<std::pair<uint32_t, kelpie_lb_backend>> backends;
  // service id -> slot -> backend id
  std::map<uint32_t, std::map<uint32_t, uint32_t>> slots;
};

// max_entries of each programmed map, for the pressure metric.
struct LbMapCapacity {
  uint32_t services = 0;
  uint32_t backends = 0;
  uint32_t slots = 0;
  uint32_t revnat = 0;
  uint32_t affinity = 0;
};

class LbMaps {
 public:
  virtual ~LbMaps() = default;
  virtual absl::Status UpsertService(const kelpie_lb_service_key& key, const kelpie_lb_service_value& value) = 0;
  // Also drops the per-service counters of `service_id`.
  virtual absl::Status DeleteService(const kelpie_lb_service_key& key, uint32_t service_id) = 0;
  virtual absl::Status UpsertBackend(uint32_t id, const kelpie_lb_backend& backend) = 0;
  virtual absl::Status DeleteBackend(uint32_t id) = 0;
  // Writes slots [0, backend_ids.size()) of `service_id` in one batch.
  virtual absl::Status WriteSlots(uint32_t service_id, const std::vector<uint32_t>& backend_ids) = 0;
  // Deletes slots [from, to) of `service_id`.
  virtual absl::Status DeleteSlots(uint32_t service_id, uint32_t from, uint32_t to) = 0;
  virtual absl::StatusOr<LbMapsSnapshot> Snapshot() = 0;
  virtual LbMapCapacity Capacity() const = 0;
  // Entries in the maps the BPF programs fill themselves (LRU: reverse
  // translation, affinity). Walks them: call on a slow timer.
  struct LruUsage {
    uint32_t revnat = 0;
    uint32_t affinity = 0;
  };
  virtual absl::StatusOr<LruUsage> CountLruEntries() const = 0;
};

// Reason counters summed over CPUs, indexed by enum kelpie_lb_reason.
using LbReasonCounts = std::vector<uint64_t>;

// The kernel maps, by file descriptor (owned by whoever loaded them).
class ServiceMaps : public LbMaps {
 public:
  struct Fds {
    int services = -1;
    int slots = -1;
    int backends = -1;
    int revnat = -1;
    int affinity = -1;
    int service_stats = -1;
    int reasons = -1;
  };
  ServiceMaps(Fds fds, LbMapCapacity capacity) : fds_(fds), capacity_(capacity) {}

  absl::Status UpsertService(const kelpie_lb_service_key& key, const kelpie_lb_service_value& value) override;
  absl::Status DeleteService(const kelpie_lb_service_key& key, uint32_t service_id) override;
  absl::Status UpsertBackend(uint32_t id, const kelpie_lb_backend& backend) override;
  absl::Status DeleteBackend(uint32_t id) override;
  absl::Status WriteSlots(uint32_t service_id, const std::vector<uint32_t>& backend_ids) override;
  absl::Status DeleteSlots(uint32_t service_id, uint32_t from, uint32_t to) override;
  absl::StatusOr<LbMapsSnapshot> Snapshot() override;
  LbMapCapacity Capacity() const override { return capacity_; }
  absl::StatusOr<LruUsage> CountLruEntries() const override;

  // Per-CPU reason counters summed (KELPIE_LB_REASON_MAX entries).
  absl::StatusOr<LbReasonCounts> ReasonCounts() const;
  // Per-service counters summed over CPUs (zero when never used).
  absl::StatusOr<kelpie_lb_service_stats> ServiceStats(uint32_t service_id) const;
  // Entries currently in the LRU maps (walks them: call sparingly).
  absl::StatusOr<uint32_t> CountRevnatEntries() const;
  absl::StatusOr<uint32_t> CountAffinityEntries() const;

 private:
  Fds fds_;
  LbMapCapacity capacity_;
};

// "10.43.0.10:53/udp"
std::string FormatServiceKey(const kelpie_lb_service_key& key);

}  // namespace kelpie::dataplane
