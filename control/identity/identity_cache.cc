#include "control/identity/identity_cache.h"

#include <arpa/inet.h>

#include <algorithm>
#include <mutex>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace kelpie::identity {
namespace {

std::string Key(const std::string& ns, const std::string& name) { return absl::StrCat(ns, "/", name); }

std::string StringAt(const nlohmann::json& j, const char* a, const char* b) {
  if (!j.is_object() || !j.contains(a) || !j[a].is_object()) return "";
  const auto& o = j[a];
  if (!o.contains(b) || !o[b].is_string()) return "";
  return o[b].get<std::string>();
}

}  // namespace

const char* EndpointKindName(EndpointKind kind) {
  switch (kind) {
    case EndpointKind::kPod:
      return "pod";
    case EndpointKind::kService:
      return "service";
    case EndpointKind::kHost:
      return "host";
    case EndpointKind::kWorld:
      return "world";
  }
  return "world";
}

std::optional<uint32_t> ParseIpv4(const std::string& ip) {
  in_addr a{};
  if (::inet_pton(AF_INET, ip.c_str(), &a) != 1) return std::nullopt;
  return a.s_addr;
}

std::string FormatIpv4(uint32_t ipv4) {
  char buf[INET_ADDRSTRLEN] = {};
  in_addr a{.s_addr = ipv4};
  ::inet_ntop(AF_INET, &a, buf, sizeof(buf));
  return buf;
}

absl::StatusOr<PodRecord> PodRecordFromJson(const nlohmann::json& pod) {
  if (!pod.is_object() || !pod.contains("metadata") || !pod["metadata"].is_object()) {
    return absl::InvalidArgumentError("pod without metadata");
  }
  PodRecord r;
  const auto& meta = pod["metadata"];
  r.name = StringAt(pod, "metadata", "name");
  r.namespace_name = StringAt(pod, "metadata", "namespace");
  r.uid = StringAt(pod, "metadata", "uid");
  if (r.name.empty()) return absl::InvalidArgumentError("pod without metadata.name");
  if (r.namespace_name.empty()) r.namespace_name = "default";
  if (meta.contains("labels") && meta["labels"].is_object()) {
    for (const auto& [k, v] : meta["labels"].items()) {
      if (v.is_string()) r.labels[k] = v.get<std::string>();
    }
  }
  if (meta.contains("ownerReferences") && meta["ownerReferences"].is_array()) {
    for (const auto& owner : meta["ownerReferences"]) {
      if (!owner.is_object() || !owner.value("controller", false)) continue;
      r.workload_kind = owner.value("kind", "");
      r.workload_name = owner.value("name", "");
    }
  }
  // A ReplicaSet made by a Deployment is named "<deployment>-<pod-template-hash>".
  auto hash = r.labels.find("pod-template-hash");
  if (r.workload_kind == "ReplicaSet" && hash != r.labels.end()) {
    std::string suffix = "-" + hash->second;
    if (r.workload_name.size() > suffix.size() &&
        r.workload_name.compare(r.workload_name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      r.workload_kind = "Deployment";
      r.workload_name = r.workload_name.substr(0, r.workload_name.size() - suffix.size());
    }
  }
  r.node_name = StringAt(pod, "spec", "nodeName");
  if (pod.contains("spec") && pod["spec"].is_object()) r.host_network = pod["spec"].value("hostNetwork", false);
  if (pod.contains("status") && pod["status"].is_object()) {
    const auto& status = pod["status"];
    if (status.contains("podIPs") && status["podIPs"].is_array()) {
      for (const auto& ip : status["podIPs"]) {
        if (ip.is_object() && ip.contains("ip") && ip["ip"].is_string()) r.ips.push_back(ip["ip"].get<std::string>());
      }
    }
    if (r.ips.empty() && status.contains("podIP") && status["podIP"].is_string()) {
      r.ips.push_back(status["podIP"].get<std::string>());
    }
  }
  return r;
}

absl::StatusOr<ServiceRecord> ServiceRecordFromJson(const nlohmann::json& service) {
  ServiceRecord r;
  r.name = StringAt(service, "metadata", "name");
  r.namespace_name = StringAt(service, "metadata", "namespace");
  if (r.name.empty()) return absl::InvalidArgumentError("service without metadata.name");
  if (r.namespace_name.empty()) r.namespace_name = "default";
  if (service.contains("spec") && service["spec"].is_object()) {
    const auto& spec = service["spec"];
    if (spec.contains("clusterIPs") && spec["clusterIPs"].is_array()) {
      for (const auto& ip : spec["clusterIPs"]) {
        if (ip.is_string() && ip.get<std::string>() != "None") r.cluster_ips.push_back(ip.get<std::string>());
      }
    }
    if (r.cluster_ips.empty() && spec.contains("clusterIP") && spec["clusterIP"].is_string() &&
        spec["clusterIP"].get<std::string>() != "None" && !spec["clusterIP"].get<std::string>().empty()) {
      r.cluster_ips.push_back(spec["clusterIP"].get<std::string>());
    }
    if (spec.contains("selector") && spec["selector"].is_object()) {
      for (const auto& [k, v] : spec["selector"].items()) {
        if (v.is_string()) r.selector[k] = v.get<std::string>();
      }
    }
  }
  return r;
}

Endpoint IdentityCache::PodEndpoint(const PodRecord& pod) {
  Endpoint e;
  e.kind = EndpointKind::kPod;
  e.namespace_name = pod.namespace_name;
  e.pod_name = pod.name;
  e.labels = pod.labels;
  e.workload_kind = pod.workload_kind;
  e.workload_name = pod.workload_name;
  e.node_name = pod.node_name;
  return e;
}

void IdentityCache::RemovePodLocked(const std::string& key) {
  auto it = pods_.find(key);
  if (it == pods_.end()) return;
  for (const auto& ip : it->second.ips) {
    auto parsed = ParseIpv4(ip);
    if (!parsed) continue;
    auto owner = pod_by_ip_.find(*parsed);
    if (owner != pod_by_ip_.end() && owner->second == key) pod_by_ip_.erase(owner);
  }
  pod_by_uid_.erase(it->second.uid);
  pods_.erase(it);
}

void IdentityCache::UpsertPod(const PodRecord& pod) {
  std::string key = Key(pod.namespace_name, pod.name);
  std::unique_lock lock(mu_);
  RemovePodLocked(key);
  // Host-network pods share the node's address: it stays "host".
  if (!pod.host_network) {
    for (const auto& ip : pod.ips) {
      if (auto parsed = ParseIpv4(ip)) pod_by_ip_[*parsed] = key;
    }
  }
  if (!pod.uid.empty()) pod_by_uid_[pod.uid] = key;
  pods_[key] = pod;
}

void IdentityCache::DeletePod(const std::string& namespace_name, const std::string& name) {
  std::unique_lock lock(mu_);
  std::string key = Key(namespace_name, name);
  auto it = pods_.find(key);
  if (it != pods_.end()) {
    auto cg = cgroups_by_uid_.find(it->second.uid);
    if (cg != cgroups_by_uid_.end()) {
      for (uint64_t id : cg->second) uid_by_cgroup_.erase(id);
      cgroups_by_uid_.erase(cg);
    }
  }
  RemovePodLocked(key);
}

void IdentityCache::UpsertService(const ServiceRecord& service) {
  std::string key = Key(service.namespace_name, service.name);
  std::unique_lock lock(mu_);
  for (uint32_t ip : service_ips_[key]) service_by_ip_.erase(ip);
  std::vector<uint32_t> ips;
  for (const auto& ip : service.cluster_ips) {
    if (auto parsed = ParseIpv4(ip)) {
      ips.push_back(*parsed);
      service_by_ip_[*parsed] = key;
    }
  }
  service_ips_[key] = std::move(ips);
  if (service.selector.empty()) service_selectors_.erase(key);
  else service_selectors_[key] = service.selector;
}

void IdentityCache::DeleteService(const std::string& namespace_name, const std::string& name) {
  std::string key = Key(namespace_name, name);
  std::unique_lock lock(mu_);
  auto it = service_ips_.find(key);
  if (it == service_ips_.end()) return;
  for (uint32_t ip : it->second) service_by_ip_.erase(ip);
  service_ips_.erase(it);
  service_selectors_.erase(key);
}

void IdentityCache::SetPodCgroup(const std::string& pod_uid, uint64_t cgroup_id) {
  std::unique_lock lock(mu_);
  auto [it, added] = uid_by_cgroup_.emplace(cgroup_id, pod_uid);
  if (!added) {
    if (it->second == pod_uid) return;
    auto& old = cgroups_by_uid_[it->second];
    old.erase(std::remove(old.begin(), old.end(), cgroup_id), old.end());
    it->second = pod_uid;
  }
  cgroups_by_uid_[pod_uid].push_back(cgroup_id);
}

bool IdentityCache::HasCgroup(uint64_t cgroup_id) const {
  std::shared_lock lock(mu_);
  return uid_by_cgroup_.count(cgroup_id) != 0;
}

void IdentityCache::SetHostAddresses(const std::vector<std::string>& ips, const std::string& node_name) {
  std::unique_lock lock(mu_);
  host_ips_.clear();
  for (const auto& ip : ips) {
    if (auto parsed = ParseIpv4(ip)) host_ips_[*parsed] = node_name;
  }
}

Endpoint IdentityCache::ByIp(uint32_t ipv4) const {
  std::shared_lock lock(mu_);
  if (auto it = pod_by_ip_.find(ipv4); it != pod_by_ip_.end()) {
    if (auto pod = pods_.find(it->second); pod != pods_.end()) return PodEndpoint(pod->second);
  }
  if (auto it = service_by_ip_.find(ipv4); it != service_by_ip_.end()) {
    Endpoint e;
    e.kind = EndpointKind::kService;
    size_t slash = it->second.find('/');
    e.namespace_name = it->second.substr(0, slash);
    e.service_name = it->second.substr(slash + 1);
    return e;
  }
  // Loopback is always this node.
  if ((ntohl(ipv4) >> 24) == 127) return Endpoint{.kind = EndpointKind::kHost};
  if (auto it = host_ips_.find(ipv4); it != host_ips_.end()) {
    return Endpoint{.kind = EndpointKind::kHost, .node_name = it->second};
  }
  return Endpoint{};
}

std::optional<Endpoint> IdentityCache::ByCgroup(uint64_t cgroup_id) const {
  std::shared_lock lock(mu_);
  auto uid = uid_by_cgroup_.find(cgroup_id);
  if (uid == uid_by_cgroup_.end()) return std::nullopt;
  auto key = pod_by_uid_.find(uid->second);
  if (key == pod_by_uid_.end()) return std::nullopt;
  auto pod = pods_.find(key->second);
  if (pod == pods_.end()) return std::nullopt;
  return PodEndpoint(pod->second);
}

std::optional<std::string> IdentityCache::ServiceByIp(uint32_t ipv4) const {
  std::shared_lock lock(mu_);
  auto it = service_by_ip_.find(ipv4);
  if (it == service_by_ip_.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> IdentityCache::ServiceSelecting(const Endpoint& pod) const {
  if (pod.kind != EndpointKind::kPod) return std::nullopt;
  std::shared_lock lock(mu_);
  std::string prefix = pod.namespace_name + "/";
  for (auto it = service_selectors_.lower_bound(prefix); it != service_selectors_.end(); ++it) {
    if (it->first.compare(0, prefix.size(), prefix) != 0) break;
    bool all = true;
    for (const auto& [k, v] : it->second) {
      auto label = pod.labels.find(k);
      if (label == pod.labels.end() || label->second != v) {
        all = false;
        break;
      }
    }
    if (all) return it->first;
  }
  return std::nullopt;
}

size_t IdentityCache::pod_count() const {
  std::shared_lock lock(mu_);
  return pods_.size();
}

}  // namespace kelpie::identity
