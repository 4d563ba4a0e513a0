#include "orchestrator/apiserver/service_strategy.h"

#include <openssl/rand.h>

#include <set>

#include "absl/strings/str_cat.h"

namespace kelpie::apiserver {
namespace {

using nlohmann::json;

constexpr int kRandomProbes = 32;

uint64_t RandomBelow(uint64_t n) {
  uint64_t r = 0;
  RAND_bytes(reinterpret_cast<unsigned char*>(&r), sizeof(r));
  return n == 0 ? 0 : r % n;
}

bool UsesNodePorts(const std::string& type) { return type == "NodePort" || type == "LoadBalancer"; }

api::ApiError InvalidService(const json& svc, std::vector<api::StatusCause> causes) {
  return api::Invalid("", "Service", svc["metadata"].value("name", ""), std::move(causes));
}

}  // namespace

ServiceStrategy::ServiceStrategy(store::Store& store, net::Ipv4Cidr service_cidr, NodePortRange node_ports)
    : store_(store), cidr_(service_cidr), node_ports_(node_ports) {}

std::string ServiceStrategy::IpKey(const std::string& ip) { return "/registry/ranges/serviceips/" + ip; }
std::string ServiceStrategy::NodePortKey(int port) {
  return absl::StrCat("/registry/ranges/servicenodeports/", port);
}

bool ServiceStrategy::KeyExists(const std::string& key) { return store_.Get(key).ok(); }

absl::Status ServiceStrategy::DefaultAndValidate(json& svc, api::ApiError* error) {
  if (!svc.contains("spec") || !svc["spec"].is_object()) svc["spec"] = json::object();
  json& spec = svc["spec"];
  std::string type = spec.value("type", "ClusterIP");
  spec["type"] = type;
  std::vector<api::StatusCause> causes;
  if (type != "ClusterIP" && type != "NodePort" && type != "LoadBalancer" && type != "ExternalName") {
    causes.push_back({"FieldValueNotSupported",
                      absl::StrCat("Unsupported value: \"", type,
                                   "\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""),
                      "spec.type"});
  }
  if (type == "ExternalName") {
    if (spec.value("externalName", "").empty()) {
      causes.push_back({"FieldValueRequired", "Required value", "spec.externalName"});
    }
  } else {
    if (!spec.contains("sessionAffinity")) spec["sessionAffinity"] = "None";
    if (!spec.contains("internalTrafficPolicy")) spec["internalTrafficPolicy"] = "Cluster";
    if (UsesNodePorts(type) && !spec.contains("externalTrafficPolicy")) spec["externalTrafficPolicy"] = "Cluster";
    std::string affinity = spec.value("sessionAffinity", "None");
    if (affinity != "None" && affinity != "ClientIP") {
      causes.push_back({"FieldValueNotSupported", "supported values: \"ClientIP\", \"None\"", "spec.sessionAffinity"});
    }
    if (!spec.contains("ports") || !spec["ports"].is_array() || spec["ports"].empty()) {
      if (spec.value("clusterIP", "") != "None") {
        causes.push_back({"FieldValueRequired", "Required value", "spec.ports"});
      }
    }
  }
  if (spec.contains("ports") && spec["ports"].is_array()) {
    std::set<std::string> names;
    std::set<std::pair<int64_t, std::string>> port_protocols;
    bool many = spec["ports"].size() > 1;
    for (size_t i = 0; i < spec["ports"].size(); ++i) {
      json& p = spec["ports"][i];
      std::string field = absl::StrCat("spec.ports[", i, "]");
      if (!p.is_object()) {
        causes.push_back({"FieldValueInvalid", "must be an object", field});
        continue;
      }
      if (p.contains("nodePort") && p["nodePort"].is_null()) p.erase("nodePort");
      std::string protocol = p.value("protocol", "TCP");
      p["protocol"] = protocol;
      if (protocol != "TCP" && protocol != "UDP" && protocol != "SCTP") {
        causes.push_back({"FieldValueNotSupported", "supported values: \"SCTP\", \"TCP\", \"UDP\"", field + ".protocol"});
      }
      int64_t port = p.value("port", int64_t{0});
      if (!p.contains("port") || !p["port"].is_number_integer() || port < 1 || port > 65535) {
        causes.push_back({"FieldValueInvalid",
                          absl::StrCat("Invalid value: ", p.contains("port") ? p["port"].dump() : "0",
                                       ": must be between 1 and 65535, inclusive"),
                          field + ".port"});
      }
      if (!p.contains("targetPort")) p["targetPort"] = port;
      if (p["targetPort"].is_number_integer()) {
        int64_t tp = p["targetPort"].get<int64_t>();
        if (tp < 1 || tp > 65535) {
          causes.push_back({"FieldValueInvalid", "must be between 1 and 65535, inclusive", field + ".targetPort"});
        }
      }
      std::string name = p.value("name", "");
      if (many && name.empty()) {
        causes.push_back({"FieldValueRequired", "Required value", field + ".name"});
      }
      if (!name.empty() && !names.insert(name).second) {
        causes.push_back({"FieldValueDuplicate", absl::StrCat("Duplicate value: \"", name, "\""), field + ".name"});
      }
      if (!port_protocols.insert({port, protocol}).second) {
        causes.push_back({"FieldValueDuplicate", "Duplicate value: port and protocol", field});
      }
      if (p.contains("nodePort")) {
        int64_t np = p["nodePort"].is_number_integer() ? p["nodePort"].get<int64_t>() : -1;
        if (!UsesNodePorts(type) && np != 0) {
          causes.push_back({"FieldValueForbidden", "may not be used when `type` is 'ClusterIP'", field + ".nodePort"});
        } else if (UsesNodePorts(type) && np != 0 && (np < node_ports_.first || np > node_ports_.last)) {
          causes.push_back({"FieldValueInvalid",
                            absl::StrCat("Invalid value: ", np, ": provided port is not in the valid range. The range of valid ports is ",
                                         node_ports_.first, "-", node_ports_.last),
                            field + ".nodePort"});
        }
      }
    }
  }
  if (!causes.empty()) {
    *error = InvalidService(svc, std::move(causes));
    return absl::InvalidArgumentError("invalid service");
  }
  return absl::OkStatus();
}

absl::Status ServiceStrategy::AllocateClusterIp(json& svc, WriteExtras* extras, api::ApiError* error) {
  json& spec = svc["spec"];
  std::string ref = absl::StrCat(svc["metadata"].value("namespace", ""), "/", svc["metadata"].value("name", ""));
  std::string requested = spec.value("clusterIP", "");
  if (requested == "None") {
    spec["clusterIPs"] = json::array({"None"});
    return absl::OkStatus();
  }
  std::string ip;
  if (!requested.empty()) {
    auto addr = net::ParseIpv4(requested);
    if (!addr.ok() || !cidr_.Contains(*addr) || *addr == cidr_.network() ||
        *addr == cidr_.network() + static_cast<uint32_t>(cidr_.size() - 1)) {
      *error = InvalidService(svc, {{"FieldValueInvalid",
                                     absl::StrCat("Invalid value: \"", requested,
                                                  "\": failed to allocate IP ", requested,
                                                  ": the provided IP (", requested,
                                                  ") is not in the valid range. The range of valid IPs is ",
                                                  cidr_.ToString()),
                                     "spec.clusterIPs"}});
      return absl::InvalidArgumentError("ip out of range");
    }
    if (KeyExists(IpKey(requested))) {
      *error = InvalidService(svc, {{"FieldValueInvalid",
                                     absl::StrCat("Invalid value: \"", requested, "\": failed to allocate IP ",
                                                  requested, ": provided IP is already allocated"),
                                     "spec.clusterIPs"}});
      return absl::AlreadyExistsError("ip taken");
    }
    ip = requested;
  } else {
    // Random probing keeps allocation O(1) in a sparse range; a full scan
    // finds the last free addresses of a nearly full one.
    uint64_t usable = cidr_.size() - 2;
    for (int i = 0; i < kRandomProbes && ip.empty(); ++i) {
      std::string candidate = *cidr_.AddressAt(1 + RandomBelow(usable));
      if (!KeyExists(IpKey(candidate))) ip = candidate;
    }
    if (ip.empty()) {
      auto used = store_.Range("/registry/ranges/serviceips/", {});
      std::set<std::string> taken;
      if (used.ok()) {
        for (const auto& kv : used->kvs) taken.insert(kv.key.substr(std::string("/registry/ranges/serviceips/").size()));
      }
      for (uint64_t off = 1; off <= usable && ip.empty(); ++off) {
        std::string candidate = *cidr_.AddressAt(off);
        if (!taken.count(candidate)) ip = candidate;
      }
    }
    if (ip.empty()) {
      *error = InvalidService(svc, {{"FieldValueInvalid",
                                     absl::StrCat("failed to allocate a serviceIP: range is full (", cidr_.ToString(), ")"),
                                     "spec.clusterIPs"}});
      return absl::ResourceExhaustedError("range full");
    }
  }
  spec["clusterIP"] = ip;
  spec["clusterIPs"] = json::array({ip});
  spec["ipFamilies"] = json::array({"IPv4"});
  spec["ipFamilyPolicy"] = "SingleStack";
  extras->compares.push_back({IpKey(ip), store::Compare::Target::kCreateRevision, store::Compare::Result::kEqual, 0});
  extras->ops.push_back(store::Op::Put(IpKey(ip), ref));
  return absl::OkStatus();
}

absl::Status ServiceStrategy::AllocateNodePorts(json& svc, const json* old_svc, WriteExtras* extras,
                                                api::ApiError* error) {
  json& spec = svc["spec"];
  std::string ref = absl::StrCat(svc["metadata"].value("namespace", ""), "/", svc["metadata"].value("name", ""));
  std::set<int64_t> old_ports;
  std::map<std::pair<int64_t, std::string>, int64_t> old_by_port;
  if (old_svc != nullptr && old_svc->contains("spec") && (*old_svc)["spec"].contains("ports")) {
    for (const auto& p : (*old_svc)["spec"]["ports"]) {
      int64_t np = p.value("nodePort", int64_t{0});
      if (np > 0) {
        old_ports.insert(np);
        old_by_port[{p.value("port", int64_t{0}), p.value("protocol", "TCP")}] = np;
      }
    }
  }
  std::set<int64_t> kept;
  if (UsesNodePorts(spec.value("type", "")) && spec.contains("ports")) {
    std::set<int64_t> chosen;
    for (size_t i = 0; i < spec["ports"].size(); ++i) {
      json& p = spec["ports"][i];
      int64_t np = p.value("nodePort", int64_t{0});
      if (np == 0) {
        auto it = old_by_port.find({p.value("port", int64_t{0}), p.value("protocol", "TCP")});
        if (it != old_by_port.end()) np = it->second;
      }
      if (np != 0 && old_ports.count(np)) {  // already ours
        p["nodePort"] = np;
        kept.insert(np);
        chosen.insert(np);
        continue;
      }
      if (np != 0) {
        if (chosen.count(np) || KeyExists(NodePortKey(static_cast<int>(np)))) {
          *error = InvalidService(svc, {{"FieldValueInvalid",
                                         absl::StrCat("Invalid value: ", np, ": provided port is already allocated"),
                                         absl::StrCat("spec.ports[", i, "].nodePort")}});
          return absl::AlreadyExistsError("port taken");
        }
      } else {
        int span = node_ports_.last - node_ports_.first + 1;
        for (int probe = 0; probe < kRandomProbes * 4 && np == 0; ++probe) {
          int64_t candidate = node_ports_.first + static_cast<int64_t>(RandomBelow(static_cast<uint64_t>(span)));
          if (!chosen.count(candidate) && !KeyExists(NodePortKey(static_cast<int>(candidate)))) np = candidate;
        }
        for (int64_t candidate = node_ports_.first; candidate <= node_ports_.last && np == 0; ++candidate) {
          if (!chosen.count(candidate) && !KeyExists(NodePortKey(static_cast<int>(candidate)))) np = candidate;
        }
        if (np == 0) {
          *error = InvalidService(svc, {{"FieldValueInvalid", "failed to allocate a nodePort: range is full",
                                         absl::StrCat("spec.ports[", i, "].nodePort")}});
          return absl::ResourceExhaustedError("ports full");
        }
      }
      p["nodePort"] = np;
      chosen.insert(np);
      extras->compares.push_back({NodePortKey(static_cast<int>(np)), store::Compare::Target::kCreateRevision,
                                  store::Compare::Result::kEqual, 0});
      extras->ops.push_back(store::Op::Put(NodePortKey(static_cast<int>(np)), ref));
    }
  }
  for (int64_t np : old_ports) {
    if (!kept.count(np)) extras->ops.push_back(store::Op::Delete(NodePortKey(static_cast<int>(np))));
  }
  return absl::OkStatus();
}

absl::Status ServiceStrategy::PrepareCreate(json& svc, WriteExtras* extras, api::ApiError* error) {
  if (absl::Status s = DefaultAndValidate(svc, error); !s.ok()) return s;
  if (svc["spec"].value("type", "") != "ExternalName") {
    if (absl::Status s = AllocateClusterIp(svc, extras, error); !s.ok()) return s;
  }
  return AllocateNodePorts(svc, nullptr, extras, error);
}

absl::Status ServiceStrategy::PrepareUpdate(const json& old_svc, json& svc, WriteExtras* extras,
                                            api::ApiError* error) {
  // Leaving NodePort/LoadBalancer drops the node ports the Service held, as
  // kube-apiserver does, rather than rejecting the leftover fields.
  std::string old_type = old_svc.contains("spec") ? old_svc["spec"].value("type", "ClusterIP") : "ClusterIP";
  if (svc.contains("spec") && svc["spec"].is_object() && UsesNodePorts(old_type) &&
      !UsesNodePorts(svc["spec"].value("type", "ClusterIP")) && svc["spec"].contains("ports") &&
      svc["spec"]["ports"].is_array()) {
    for (auto& p : svc["spec"]["ports"]) {
      if (p.is_object()) p.erase("nodePort");
    }
  }
  if (absl::Status s = DefaultAndValidate(svc, error); !s.ok()) return s;
  json& spec = svc["spec"];
  const json& old_spec = old_svc.contains("spec") ? old_svc["spec"] : json::object();
  std::string old_ip = old_spec.value("clusterIP", "");
  std::string new_ip = spec.value("clusterIP", "");
  if (new_ip.empty()) new_ip = old_ip;
  if (new_ip != old_ip && !old_ip.empty()) {
    *error = InvalidService(svc, {{"FieldValueInvalid",
                                   absl::StrCat("Invalid value: \"", spec.value("clusterIP", ""), "\": field is immutable"),
                                   "spec.clusterIPs[0]"}});
    return absl::InvalidArgumentError("immutable");
  }
  if (!old_ip.empty()) {
    spec["clusterIP"] = old_ip;
    spec["clusterIPs"] = old_spec.value("clusterIPs", json::array({old_ip}));
    if (old_spec.contains("ipFamilies")) spec["ipFamilies"] = old_spec["ipFamilies"];
    if (old_spec.contains("ipFamilyPolicy")) spec["ipFamilyPolicy"] = old_spec["ipFamilyPolicy"];
  } else if (spec.value("type", "") != "ExternalName") {
    if (absl::Status s = AllocateClusterIp(svc, extras, error); !s.ok()) return s;
  }
  return AllocateNodePorts(svc, &old_svc, extras, error);
}

void ServiceStrategy::PrepareDelete(const json& svc, WriteExtras* extras) {
  if (!svc.contains("spec")) return;
  const json& spec = svc["spec"];
  std::string ip = spec.value("clusterIP", "");
  if (!ip.empty() && ip != "None") extras->ops.push_back(store::Op::Delete(IpKey(ip)));
  if (spec.contains("ports") && spec["ports"].is_array()) {
    for (const auto& p : spec["ports"]) {
      int64_t np = p.value("nodePort", int64_t{0});
      if (np > 0) extras->ops.push_back(store::Op::Delete(NodePortKey(static_cast<int>(np))));
    }
  }
}

}  // namespace kelpie::apiserver
