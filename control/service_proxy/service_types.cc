#include "control/service_proxy/service_types.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace kelpie::service_proxy {
namespace {

using nlohmann::json;

absl::StatusOr<Protocol> DecodeProtocol(const json& obj, const std::string& where) {
  if (!obj.contains("protocol") || obj["protocol"].is_null()) return Protocol::kTcp;
  if (!obj["protocol"].is_string()) return absl::InvalidArgumentError(where + ".protocol must be a string");
  std::string p = obj["protocol"].get<std::string>();
  if (p == "TCP") return Protocol::kTcp;
  if (p == "UDP") return Protocol::kUdp;
  if (p == "SCTP") return Protocol::kSctp;
  return absl::InvalidArgumentError(absl::StrCat(where, ".protocol: unsupported value \"", p, "\""));
}

absl::StatusOr<uint16_t> DecodePort(const json& v, const std::string& where) {
  if (!v.is_number_integer()) return absl::InvalidArgumentError(where + " must be an integer");
  int64_t n = v.get<int64_t>();
  if (n < 0 || n > 65535) return absl::InvalidArgumentError(absl::StrCat(where, " out of range: ", n));
  return static_cast<uint16_t>(n);
}

std::string StringOr(const json& obj, const char* key, const std::string& fallback = "") {
  if (obj.is_object() && obj.contains(key) && obj[key].is_string()) return obj[key].get<std::string>();
  return fallback;
}

std::vector<std::string> Strings(const json& obj, const char* key) {
  std::vector<std::string> out;
  if (obj.is_object() && obj.contains(key) && obj[key].is_array()) {
    for (const json& v : obj[key]) {
      if (v.is_string()) out.push_back(v.get<std::string>());
    }
  }
  return out;
}

std::optional<bool> OptionalBool(const json& obj, const char* key) {
  if (obj.is_object() && obj.contains(key) && obj[key].is_boolean()) return obj[key].get<bool>();
  return std::nullopt;
}

}  // namespace

bool Service::Headless() const { return cluster_ips.empty() || cluster_ips.front() == "None"; }

absl::StatusOr<Service> DecodeService(const std::string& text) {
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return absl::InvalidArgumentError("Service: not a JSON object");
  Service s;
  const json& meta = doc.value("metadata", json::object());
  s.namespace_name = StringOr(meta, "namespace", "default");
  s.name = StringOr(meta, "name");
  if (s.name.empty()) return absl::InvalidArgumentError("Service: metadata.name is required");
  const json& spec = doc.value("spec", json::object());
  s.type = StringOr(spec, "type", "ClusterIP");
  s.external_name = StringOr(spec, "externalName");
  s.cluster_ips = Strings(spec, "clusterIPs");
  if (s.cluster_ips.empty()) {
    std::string ip = StringOr(spec, "clusterIP");
    if (!ip.empty()) s.cluster_ips.push_back(ip);
  }
  if (spec.contains("ports") && spec["ports"].is_array()) {
    int i = 0;
    for (const json& p : spec["ports"]) {
      std::string where = absl::StrCat("spec.ports[", i++, "]");
      ServicePort port;
      port.name = StringOr(p, "name");
      auto proto = DecodeProtocol(p, where);
      if (!proto.ok()) return proto.status();
      port.protocol = *proto;
      auto n = DecodePort(p.value("port", json()), where + ".port");
      if (!n.ok()) return n.status();
      port.port = *n;
      if (p.contains("nodePort") && !p["nodePort"].is_null()) {
        auto np = DecodePort(p["nodePort"], where + ".nodePort");
        if (!np.ok()) return np.status();
        port.node_port = *np;
      }
      s.ports.push_back(port);
    }
  }
  s.session_affinity_client_ip = StringOr(spec, "sessionAffinity") == "ClientIP";
  if (spec.contains("sessionAffinityConfig")) {
    const json& cfg = spec["sessionAffinityConfig"];
    if (cfg.is_object() && cfg.contains("clientIP") && cfg["clientIP"].is_object() &&
        cfg["clientIP"].contains("timeoutSeconds")) {
      const json& t = cfg["clientIP"]["timeoutSeconds"];
      if (!t.is_number_integer() || t.get<int64_t>() <= 0 || t.get<int64_t>() > 86400) {
        return absl::InvalidArgumentError(
            "spec.sessionAffinityConfig.clientIP.timeoutSeconds must be an integer in (0, 86400]");
      }
      s.session_affinity_timeout_s = static_cast<uint32_t>(t.get<int64_t>());
    }
  }
  s.external_ips = Strings(spec, "externalIPs");
  s.internal_traffic_local = StringOr(spec, "internalTrafficPolicy") == "Local";
  s.external_traffic_local = StringOr(spec, "externalTrafficPolicy") == "Local";
  return s;
}

absl::StatusOr<EndpointSlice> DecodeEndpointSlice(const std::string& text) {
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return absl::InvalidArgumentError("EndpointSlice: not a JSON object");
  EndpointSlice s;
  const json& meta = doc.value("metadata", json::object());
  s.namespace_name = StringOr(meta, "namespace", "default");
  s.name = StringOr(meta, "name");
  if (s.name.empty()) return absl::InvalidArgumentError("EndpointSlice: metadata.name is required");
  s.service_name = StringOr(meta.value("labels", json::object()), "kubernetes.io/service-name");
  std::string trigger = StringOr(meta.value("annotations", json::object()), "endpoints.kubernetes.io/last-change-trigger-time");
  if (!trigger.empty()) {
    absl::Time t;
    std::string err;
    if (absl::ParseTime(absl::RFC3339_full, trigger, &t, &err)) s.last_change_trigger_ns = absl::ToUnixNanos(t);
  }
  s.address_type = StringOr(doc, "addressType", "IPv4");
  if (doc.contains("endpoints") && doc["endpoints"].is_array()) {
    for (const json& e : doc["endpoints"]) {
      Endpoint ep;
      ep.addresses = Strings(e, "addresses");
      ep.node_name = StringOr(e, "nodeName");
      ep.hostname = StringOr(e, "hostname");
      const json& c = e.value("conditions", json::object());
      ep.conditions.ready = OptionalBool(c, "ready").value_or(true);
      ep.conditions.serving = OptionalBool(c, "serving").value_or(ep.conditions.ready);
      ep.conditions.terminating = OptionalBool(c, "terminating").value_or(false);
      s.endpoints.push_back(std::move(ep));
    }
  }
  if (doc.contains("ports") && doc["ports"].is_array()) {
    int i = 0;
    for (const json& p : doc["ports"]) {
      std::string where = absl::StrCat("ports[", i++, "]");
      EndpointPort port;
      port.name = StringOr(p, "name");
      auto proto = DecodeProtocol(p, where);
      if (!proto.ok()) return proto.status();
      port.protocol = *proto;
      if (p.contains("port") && !p["port"].is_null()) {
        auto n = DecodePort(p["port"], where + ".port");
        if (!n.ok()) return n.status();
        port.port = *n;
      }
      s.ports.push_back(port);
    }
  }
  return s;
}

}  // namespace kelpie::service_proxy
