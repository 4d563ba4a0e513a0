// LbMaps in memory, with a log of every write in order, for testing what
// the service proxy programs and in which order.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>

#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "dataplane/service_maps.h"

namespace kelpie::service_proxy::testing {

class FakeLbMaps : public dataplane::LbMaps {
 public:
  absl::Status UpsertService(const kelpie_lb_service_key& key, const kelpie_lb_service_value& value) override {
    services[key] = value;
    log.push_back(absl::StrCat("service+ ", dataplane::FormatServiceKey(key), " id=", value.service_id,
                               " n=", value.slot_count));
    return absl::OkStatus();
  }
  absl::Status DeleteService(const kelpie_lb_service_key& key, uint32_t service_id) override {
    services.erase(key);
    log.push_back(absl::StrCat("service- ", dataplane::FormatServiceKey(key), " id=", service_id));
    return absl::OkStatus();
  }
  absl::Status UpsertBackend(uint32_t id, const kelpie_lb_backend& backend) override {
    backends[id] = backend;
    log.push_back(absl::StrCat("backend+ ", id));
    return absl::OkStatus();
  }
  absl::Status DeleteBackend(uint32_t id) override {
    backends.erase(id);
    log.push_back(absl::StrCat("backend- ", id));
    return absl::OkStatus();
  }
  absl::Status WriteSlots(uint32_t service_id, const std::vector<uint32_t>& ids) override {
    for (uint32_t i = 0; i < ids.size(); ++i) slots[service_id][i] = ids[i];
    log.push_back(absl::StrCat("slots ", service_id, " n=", ids.size()));
    return absl::OkStatus();
  }
  absl::Status DeleteSlots(uint32_t service_id, uint32_t from, uint32_t to) override {
    for (uint32_t i = from; i < to; ++i) slots[service_id].erase(i);
    if (slots[service_id].empty()) slots.erase(service_id);
    log.push_back(absl::StrCat("slots- ", service_id, " [", from, ",", to, ")"));
    return absl::OkStatus();
  }
  absl::StatusOr<dataplane::LbMapsSnapshot> Snapshot() override {
    dataplane::LbMapsSnapshot s;
    for (const auto& kv : services) s.services.push_back(kv);
    for (const auto& kv : backends) s.backends.push_back(kv);
    s.slots = slots;
    return s;
  }
  dataplane::LbMapCapacity Capacity() const override { return {100, 100, 1000, 100, 100}; }
  absl::StatusOr<LruUsage> CountLruEntries() const override { return lru; }
  LruUsage lru;

  // Backend addresses ("ip:port") the service at `key` routes to, in slot order.
  std::vector<std::string> RoutedTo(const kelpie_lb_service_key& key) const {
    std::vector<std::string> out;
    auto svc = services.find(key);
    if (svc == services.end()) return out;
    auto table = slots.find(svc->second.service_id);
    for (uint32_t i = 0; i < svc->second.slot_count; ++i) {
      if (table == slots.end() || !table->second.count(i)) {
        out.push_back("<missing slot>");
        continue;
      }
      auto b = backends.find(table->second.at(i));
      if (b == backends.end()) {
        out.push_back("<missing backend>");
        continue;
      }
      char buf[INET_ADDRSTRLEN] = {};
      struct in_addr a;
      a.s_addr = b->second.address;
      ::inet_ntop(AF_INET, &a, buf, sizeof(buf));
      out.push_back(absl::StrCat(buf, ":", ntohs(b->second.port)));
    }
    return out;
  }

  std::map<kelpie_lb_service_key, kelpie_lb_service_value> services;
  std::map<uint32_t, kelpie_lb_backend> backends;
  std::map<uint32_t, std::map<uint32_t, uint32_t>> slots;
  std::vector<std::string> log;
};

}  // namespace kelpie::service_proxy::testing
