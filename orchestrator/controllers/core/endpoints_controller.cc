#include "orchestrator/controllers/core/endpoints_controller.h"

#include <algorithm>
#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "orchestrator/client/api_errors.h"
#include "orchestrator/controllers/core/service_endpoints.h"

namespace kelpie::controllers {

using nlohmann::json;

namespace {
constexpr char kOverCapacity[] = "endpoints.kubernetes.io/over-capacity";

struct Subset {
  json ports;
  std::vector<json> ready, not_ready;
};

bool ByIp(const json& a, const json& b) { return a.value("ip", "") < b.value("ip", ""); }
}  // namespace

EndpointsController::EndpointsController(ControllerContext& ctx, int max_addresses,
                                         std::chrono::milliseconds pod_batch_period)
    : QueueController("endpoint", ctx),
      max_addresses_(max_addresses),
      services_(ctx.informers.For(client::resources::kServices)),
      pods_(ctx.informers.For(client::resources::kPods)),
      endpoints_(ctx.informers.For(client::resources::kEndpoints)) {
  EnqueueServicesOnChange(services_, pods_, queue(), {.pod_batch_period = pod_batch_period, .on_change = nullptr});
  // Someone deleting or changing the object: put it back.
  EventHandlers ep;
  ep.on_update = [this](const json& o, const json& n) {
    if (o.value("subsets", json()) != n.value("subsets", json())) queue().Add(ObjectKey(n));
  };
  ep.on_delete = [this](const json& e, bool) { queue().Add(ObjectKey(e)); };
  endpoints_.AddEventHandler(std::move(ep));
}

absl::Status EndpointsController::Sync(const std::string& key) {
  auto slash = key.find('/');
  const std::string ns = key.substr(0, slash);
  const std::string name = key.substr(slash + 1);
  auto service = services_.store().Get(key);
  auto current = endpoints_.store().Get(key);
  if (!service) {
    if (!current) return absl::OkStatus();
    auto r = ctx_.client.Delete(client::resources::kEndpoints, ns, name);
    if (!r.ok() && !client::IsNotFound(r.status())) return r.status();
    return absl::OkStatus();
  }
  auto selector = ServicePodSelector(*service);
  if (!selector) return absl::OkStatus();
  const json& svc = *service;
  const json spec = svc.value("spec", json::object());
  const bool publish_not_ready = spec.value("publishNotReadyAddresses", false);
  const json service_ports = spec.value("ports", json::array());

  std::map<std::string, Subset> subsets;  // by ports
  int total = 0;
  bool truncated = false;
  for (const auto& pod : pods_.store().ByIndex(kNamespaceIndex, ns)) {
    const json meta = pod.value("metadata", json::object());
    if (!selector->Matches(meta.value("labels", json::object()))) continue;
    if (!PodIsEndpoint(pod, /*include_terminating=*/publish_not_ready)) continue;
    if (total >= max_addresses_) {
      truncated = true;
      continue;
    }
    json ports = json::array();
    for (const auto& sp : service_ports) {
      auto port = ResolveTargetPort(sp, pod);
      if (!port) continue;
      json p = {{"name", sp.value("name", "")}, {"port", *port}, {"protocol", sp.value("protocol", "TCP")}};
      if (p["name"] == "") p.erase("name");
      if (sp.contains("appProtocol") && sp["appProtocol"].is_string()) p["appProtocol"] = sp["appProtocol"];
      ports.push_back(std::move(p));
    }
    // A Service with ports that none resolve on this pod gets no address.
    if (!service_ports.empty() && ports.empty()) continue;
    std::sort(ports.begin(), ports.end(), [](const json& a, const json& b) { return a.dump() < b.dump(); });
    const json pod_spec = pod.value("spec", json::object());
    json address = {{"ip", pod["status"].value("podIP", "")},
                    {"targetRef",
                     {{"kind", "Pod"},
                      {"namespace", ns},
                      {"name", meta.value("name", "")},
                      {"uid", meta.value("uid", "")}}}};
    if (!pod_spec.value("nodeName", "").empty()) address["nodeName"] = pod_spec["nodeName"];
    if (!pod_spec.value("hostname", "").empty() && pod_spec.value("subdomain", "") == name) {
      address["hostname"] = pod_spec["hostname"];
    }
    Subset& s = subsets[ports.dump()];
    s.ports = ports;
    (publish_not_ready || PodIsReady(pod) ? s.ready : s.not_ready).push_back(std::move(address));
    ++total;
  }
  json desired_subsets = json::array();
  for (auto& [k, s] : subsets) {
    std::sort(s.ready.begin(), s.ready.end(), ByIp);
    std::sort(s.not_ready.begin(), s.not_ready.end(), ByIp);
    json subset = json::object();
    if (!s.ready.empty()) subset["addresses"] = s.ready;
    if (!s.not_ready.empty()) subset["notReadyAddresses"] = s.not_ready;
    if (!s.ports.empty()) subset["ports"] = s.ports;
    desired_subsets.push_back(std::move(subset));
  }
  json labels = svc["metadata"].value("labels", json::object());
  if (!labels.is_object()) labels = json::object();
  labels["endpointslice.kubernetes.io/skip-mirror"] = "true";
  if (spec.value("clusterIP", "") == "None") labels["service.kubernetes.io/headless"] = "";

  json obj = current ? *current
                     : json{{"apiVersion", "v1"}, {"kind", "Endpoints"}, {"metadata", {{"name", name}, {"namespace", ns}}}};
  json annotations = obj["metadata"].value("annotations", json::object());
  if (!annotations.is_object()) annotations = json::object();
  if (truncated) {
    annotations[kOverCapacity] = "truncated";
  } else {
    annotations.erase(kOverCapacity);
  }
  if (current && current->value("subsets", json::array()) == desired_subsets &&
      (*current)["metadata"].value("labels", json::object()) == labels &&
      (*current)["metadata"].value("annotations", json::object()) == annotations) {
    return absl::OkStatus();
  }
  obj["metadata"]["labels"] = labels;
  if (annotations.empty()) {
    obj["metadata"].erase("annotations");
  } else {
    obj["metadata"]["annotations"] = annotations;
  }
  obj["subsets"] = desired_subsets;
  auto written = current ? ctx_.client.Update(client::resources::kEndpoints, ns, obj)
                         : ctx_.client.Create(client::resources::kEndpoints, ns, obj);
  if (!written.ok()) {
    if (!client::IsConflict(written.status()) && !client::IsAlreadyExists(written.status())) {
      ctx_.recorder.Event(svc, EventType::kWarning, current ? "FailedToUpdateEndpoint" : "FailedToCreateEndpoint",
                          absl::StrCat("Failed to ", current ? "update" : "create", " endpoint ", key, ": ",
                                       std::string(written.status().message())));
    }
    return written.status();
  }
  return absl::OkStatus();
}

}  // namespace kelpie::controllers
