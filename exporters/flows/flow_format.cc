#include "exporters/flows/flow_format.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"

namespace kelpie::flows {
namespace {

std::string FormatTime(int64_t ns) {
  return absl::FormatTime(absl::RFC3339_full, absl::FromUnixNanos(ns), absl::UTCTimeZone());
}

absl::StatusOr<int64_t> ParseTime(const nlohmann::json& j) {
  if (!j.is_string()) return absl::InvalidArgumentError("time is not a string");
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, j.get<std::string>(), &t, &err)) {
    return absl::InvalidArgumentError(absl::StrCat("bad time: ", err));
  }
  return absl::ToUnixNanos(t);
}

nlohmann::json EndpointJson(const identity::Endpoint& e) {
  nlohmann::json j = nlohmann::json::object();
  j["kind"] = identity::EndpointKindName(e.kind);
  if (!e.namespace_name.empty()) j["namespace"] = e.namespace_name;
  if (!e.pod_name.empty()) j["pod_name"] = e.pod_name;
  if (!e.service_name.empty()) j["service_name"] = e.service_name;
  if (!e.node_name.empty()) j["node_name"] = e.node_name;
  if (!e.labels.empty()) {
    nlohmann::json labels = nlohmann::json::array();
    for (const auto& [k, v] : e.labels) labels.push_back(absl::StrCat(k, "=", v));
    j["labels"] = labels;
  }
  if (!e.workload_name.empty()) {
    j["workloads"] = nlohmann::json::array({{{"kind", e.workload_kind}, {"name", e.workload_name}}});
  }
  return j;
}

identity::Endpoint EndpointFromJson(const nlohmann::json& j) {
  identity::Endpoint e;
  std::string kind = j.value("kind", "world");
  e.kind = kind == "pod"       ? identity::EndpointKind::kPod
           : kind == "service" ? identity::EndpointKind::kService
           : kind == "host"    ? identity::EndpointKind::kHost
                               : identity::EndpointKind::kWorld;
  e.namespace_name = j.value("namespace", "");
  e.pod_name = j.value("pod_name", "");
  e.service_name = j.value("service_name", "");
  e.node_name = j.value("node_name", "");
  if (j.contains("labels") && j["labels"].is_array()) {
    for (const auto& l : j["labels"]) {
      if (!l.is_string()) continue;
      std::string s = l.get<std::string>();
      size_t eq = s.find('=');
      if (eq != std::string::npos) e.labels[s.substr(0, eq)] = s.substr(eq + 1);
    }
  }
  if (j.contains("workloads") && j["workloads"].is_array() && !j["workloads"].empty()) {
    e.workload_kind = j["workloads"][0].value("kind", "");
    e.workload_name = j["workloads"][0].value("name", "");
  }
  return e;
}

}  // namespace

nlohmann::json FlowToJson(const Flow& f) {
  nlohmann::json j;
  j["time"] = FormatTime(f.time_ns);
  j["node_name"] = f.node_name;
  j["event_type"] = EventTypeName(f.type);
  j["verdict"] = VerdictName(f.verdict);
  if (!f.drop_reason.empty()) j["drop_reason_desc"] = f.drop_reason;
  j["IP"] = {{"source", f.source.ip}, {"destination", f.destination.ip}, {"ipVersion", "IPv4"}};
  nlohmann::json l4 = {{"source_port", f.source.port}, {"destination_port", f.destination.port}};
  if (f.protocol == "TCP") {
    nlohmann::json flags = nlohmann::json::object();
    for (const auto& name : f.tcp_flags) flags[name] = true;
    l4["flags"] = flags;
  }
  j["l4"] = {{f.protocol, l4}};
  j["source"] = EndpointJson(f.source.endpoint);
  j["destination"] = EndpointJson(f.destination.endpoint);
  if (!f.destination_service.empty()) {
    size_t slash = f.destination_service.find('/');
    j["destination_service"] = {{"namespace", f.destination_service.substr(0, slash)},
                                {"name", f.destination_service.substr(slash + 1)}};
  }
  j["traffic_direction"] = f.egress ? "EGRESS" : "INGRESS";
  j["bytes_sent"] = f.bytes_sent;
  j["bytes_received"] = f.bytes_received;
  j["packets_sent"] = f.packets_sent;
  j["packets_received"] = f.packets_received;
  j["drops"] = f.drops;
  j["first_seen"] = FormatTime(f.first_seen_ns);
  j["last_seen"] = FormatTime(f.last_seen_ns);
  return j;
}

absl::StatusOr<Flow> FlowFromJson(const nlohmann::json& j) {
  if (!j.is_object()) return absl::InvalidArgumentError("a flow is a JSON object");
  Flow f;
  auto t = ParseTime(j.value("time", nlohmann::json()));
  if (!t.ok()) return t.status();
  f.time_ns = *t;
  f.node_name = j.value("node_name", "");
  std::string type = j.value("event_type", "open");
  f.type = type == "close" ? FlowEventType::kClose
           : type == "update" ? FlowEventType::kUpdate
           : type == "drop"   ? FlowEventType::kDrop
                              : FlowEventType::kOpen;
  f.verdict = j.value("verdict", "FORWARDED") == "DROPPED" ? Verdict::kDropped : Verdict::kForwarded;
  f.drop_reason = j.value("drop_reason_desc", "");
  if (j.contains("IP") && j["IP"].is_object()) {
    f.source.ip = j["IP"].value("source", "");
    f.destination.ip = j["IP"].value("destination", "");
  }
  if (j.contains("l4") && j["l4"].is_object() && !j["l4"].empty()) {
    auto it = j["l4"].begin();
    f.protocol = it.key();
    f.source.port = it.value().value("source_port", 0);
    f.destination.port = it.value().value("destination_port", 0);
    if (it.value().contains("flags") && it.value()["flags"].is_object()) {
      for (const auto& [name, on] : it.value()["flags"].items()) {
        if (on.is_boolean() && on.get<bool>()) f.tcp_flags.push_back(name);
      }
    }
  }
  if (j.contains("source")) f.source.endpoint = EndpointFromJson(j["source"]);
  if (j.contains("destination")) f.destination.endpoint = EndpointFromJson(j["destination"]);
  if (j.contains("destination_service") && j["destination_service"].is_object()) {
    f.destination_service =
        absl::StrCat(j["destination_service"].value("namespace", ""), "/", j["destination_service"].value("name", ""));
  }
  f.egress = j.value("traffic_direction", "EGRESS") == "EGRESS";
  f.bytes_sent = j.value("bytes_sent", uint64_t{0});
  f.bytes_received = j.value("bytes_received", uint64_t{0});
  f.packets_sent = j.value("packets_sent", uint64_t{0});
  f.packets_received = j.value("packets_received", uint64_t{0});
  f.drops = j.value("drops", uint64_t{0});
  if (j.contains("first_seen")) {
    if (auto fs = ParseTime(j["first_seen"]); fs.ok()) f.first_seen_ns = *fs;
  }
  if (j.contains("last_seen")) {
    if (auto ls = ParseTime(j["last_seen"]); ls.ok()) f.last_seen_ns = *ls;
  }
  return f;
}

std::string DescribeEnd(const FlowEnd& end) {
  const identity::Endpoint& e = end.endpoint;
  std::string who;
  switch (e.kind) {
    case identity::EndpointKind::kPod:
      who = absl::StrCat(e.namespace_name, "/", e.pod_name);
      break;
    case identity::EndpointKind::kService:
      who = absl::StrCat("service ", e.namespace_name, "/", e.service_name);
      break;
    case identity::EndpointKind::kHost:
      who = "host";
      break;
    case identity::EndpointKind::kWorld:
      who = "world";
      break;
  }
  return absl::StrCat(who, " (", end.ip, ":", end.port, ")");
}

std::string TableHeader() {
  return "TIME                      SOURCE                                      "
         "DESTINATION                                 TYPE    VERDICT    SUMMARY";
}

std::string FlowToTableRow(const Flow& f) {
  auto pad = [](std::string s, size_t width) {
    if (s.size() < width) s.append(width - s.size(), ' ');
    return s;
  };
  std::string time = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromUnixNanos(f.time_ns), absl::UTCTimeZone());
  std::string summary = absl::StrCat(f.protocol, " ", f.bytes_sent, "B/", f.packets_sent, "p -> ",
                                     f.bytes_received, "B/", f.packets_received, "p <-");
  if (!f.tcp_flags.empty()) absl::StrAppend(&summary, " flags ", absl::StrJoin(f.tcp_flags, ","));
  if (!f.destination_service.empty()) absl::StrAppend(&summary, " service ", f.destination_service);
  if (!f.drop_reason.empty()) absl::StrAppend(&summary, " reason ", f.drop_reason);
  return absl::StrCat(pad(time, 26), pad(DescribeEnd(f.source), 44), " ", pad(DescribeEnd(f.destination), 44), " ",
                      pad(EventTypeName(f.type), 8), pad(VerdictName(f.verdict), 11), summary);
}

}  // namespace kelpie::flows
