#include "orchestrator/controllers/core/service_endpoints.h"

namespace kelpie::controllers {

using nlohmann::json;

std::optional<api::LabelSelector> ServicePodSelector(const json& service) {
  const json spec = service.value("spec", json::object());
  if (spec.value("type", "") == "ExternalName") return std::nullopt;
  auto it = spec.find("selector");
  if (it == spec.end() || !it->is_object() || it->empty()) return std::nullopt;
  // A Service selector is a plain map: matchLabels.
  auto selector = api::LabelSelector::FromJson(json{{"matchLabels", *it}});
  if (!selector.ok()) return std::nullopt;
  return std::move(*selector);
}

bool PodIsTerminating(const json& pod) {
  return pod.contains("metadata") && pod["metadata"].contains("deletionTimestamp") &&
         !pod["metadata"]["deletionTimestamp"].is_null();
}

bool PodIsEndpoint(const json& pod, bool include_terminating) {
  const json status = pod.value("status", json::object());
  if (status.value("podIP", "").empty()) return false;
  std::string phase = status.value("phase", "");
  if (phase == "Succeeded" || phase == "Failed") return false;
  if (!include_terminating && PodIsTerminating(pod)) return false;
  return true;
}

bool PodIsReady(const json& pod) {
  const json status = pod.value("status", json::object());
  auto conditions = status.find("conditions");
  if (conditions == status.end() || !conditions->is_array()) return false;
  for (const auto& c : *conditions) {
    if (c.value("type", "") == "Ready") return c.value("status", "") == "True";
  }
  return false;
}

std::optional<int> ResolveTargetPort(const json& service_port, const json& pod) {
  auto target = service_port.find("targetPort");
  if (target == service_port.end() || target->is_null()) return service_port.value("port", 0);
  if (target->is_number_integer()) return target->get<int>();
  if (!target->is_string()) return std::nullopt;
  const std::string name = target->get<std::string>();
  const std::string protocol = service_port.value("protocol", "TCP");
  const json spec = pod.value("spec", json::object());
  for (const char* list : {"containers", "initContainers"}) {
    auto containers = spec.find(list);
    if (containers == spec.end() || !containers->is_array()) continue;
    for (const auto& c : *containers) {
      auto ports = c.find("ports");
      if (ports == c.end() || !ports->is_array()) continue;
      for (const auto& p : *ports) {
        if (p.value("name", "") == name && p.value("protocol", "TCP") == protocol) {
          return p.value("containerPort", 0);
        }
      }
    }
  }
  return std::nullopt;
}

json PodEndpointProjection(const json& pod) {
  const json meta = pod.value("metadata", json::object());
  const json status = pod.value("status", json::object());
  const json spec = pod.value("spec", json::object());
  json ports = json::array();
  for (const char* list : {"containers", "initContainers"}) {
    if (spec.contains(list) && spec[list].is_array()) {
      for (const auto& c : spec[list]) ports.push_back(c.value("ports", json()));
    }
  }
  return {{"labels", meta.value("labels", json())},
          {"deletion", meta.value("deletionTimestamp", json())},
          {"ip", status.value("podIP", json())},
          {"ips", status.value("podIPs", json())},
          {"phase", status.value("phase", json())},
          {"ready", PodIsReady(pod)},
          {"node", spec.value("nodeName", json())},
          {"hostname", spec.value("hostname", json())},
          {"subdomain", spec.value("subdomain", json())},
          {"ports", ports}};
}

std::vector<std::string> ServicesSelectingPod(const ObjectStore& services, const json& pod) {
  std::vector<std::string> keys;
  const json meta = pod.value("metadata", json::object());
  const json labels = meta.value("labels", json::object());
  for (const auto& svc : services.ByIndex(kNamespaceIndex, meta.value("namespace", ""))) {
    auto selector = ServicePodSelector(svc);
    if (selector && selector->Matches(labels)) keys.push_back(ObjectKey(svc));
  }
  return keys;
}

void EnqueueServicesOnChange(SharedInformer& services, SharedInformer& pods, WorkQueue& queue,
                             ServiceChangeOptions options) {
  services.AddIndexer(kNamespaceIndex, NamespaceIndex);
  pods.AddIndexer(kNamespaceIndex, NamespaceIndex);
  auto on_change = std::make_shared<ServiceChangeOptions>(std::move(options));
  auto service_changed = [&queue, on_change](const nlohmann::json& s) {
    const std::string key = ObjectKey(s);
    if (on_change->on_change) on_change->on_change(key, nullptr);
    queue.Add(key);
  };
  EventHandlers svc;
  svc.on_add = service_changed;
  svc.on_update = [service_changed](const nlohmann::json&, const nlohmann::json& s) { service_changed(s); };
  svc.on_delete = [service_changed](const nlohmann::json& s, bool) { service_changed(s); };
  services.AddEventHandler(std::move(svc));
  auto enqueue_services_of = [&services, &queue, on_change](const nlohmann::json& pod) {
    const std::string pod_key = ObjectKey(pod);
    for (const auto& key : ServicesSelectingPod(services.store(), pod)) {
      if (on_change->on_change) on_change->on_change(key, &pod_key);
      if (on_change->pod_batch_period.count() > 0) {
        queue.AddAfter(key, on_change->pod_batch_period);
      } else {
        queue.Add(key);
      }
    }
  };
  EventHandlers pod;
  pod.on_add = enqueue_services_of;
  pod.on_update = [enqueue_services_of](const nlohmann::json& old_pod, const nlohmann::json& new_pod) {
    nlohmann::json before = PodEndpointProjection(old_pod);
    nlohmann::json after = PodEndpointProjection(new_pod);
    if (before == after) return;
    enqueue_services_of(new_pod);
    if (before["labels"] != after["labels"]) enqueue_services_of(old_pod);
  };
  pod.on_delete = [enqueue_services_of](const nlohmann::json& p, bool) { enqueue_services_of(p); };
  pods.AddEventHandler(std::move(pod));
}

}  // namespace kelpie::controllers
