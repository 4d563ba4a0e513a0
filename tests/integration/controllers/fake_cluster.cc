#include "tests/integration/controllers/fake_cluster.h"

#include "orchestrator/controllers/leader_elector.h"
#include "orchestrator/controllers/rest_event_recorder.h"

namespace kelpie::testing {

using nlohmann::json;

json TestPod(const std::string& name, const json& labels, const std::vector<std::pair<std::string, int>>& ports,
             const std::string& node_name) {
  json container = {{"name", "app"}, {"image", "busybox"}};
  if (!ports.empty()) {
    container["ports"] = json::array();
    for (const auto& [port_name, number] : ports) {
      container["ports"].push_back({{"name", port_name}, {"containerPort", number}, {"protocol", "TCP"}});
    }
  }
  json pod = {{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata", {{"name", name}, {"labels", labels}}},
              {"spec", {{"containers", json::array({container})}}}};
  if (!node_name.empty()) pod["spec"]["nodeName"] = node_name;
  return pod;
}

absl::Status MarkPodRunning(client::RestClient& client, const std::string& ns, const std::string& name,
                            const std::string& ip, bool ready) {
  const std::string now = controllers::EventTimestamp(std::chrono::system_clock::now());
  json status = {{"status",
                  {{"phase", "Running"},
                   {"podIP", ip},
                   {"podIPs", json::array({{{"ip", ip}}})},
                   {"conditions",
                    json::array({{{"type", "Ready"}, {"status", ready ? "True" : "False"}, {"lastTransitionTime", now}},
                                 {{"type", "ContainersReady"},
                                  {"status", ready ? "True" : "False"},
                                  {"lastTransitionTime", now}}})}}}};
  return client.Patch(client::resources::kPods, ns, name, client::PatchType::kMerge, status, "status").status();
}

absl::Status CreateFakeNode(client::RestClient& client, const std::string& name) {
  const std::string now = controllers::EventTimestamp(std::chrono::system_clock::now());
  json node = {{"apiVersion", "v1"},
               {"kind", "Node"},
               {"metadata", {{"name", name}, {"labels", {{"kubernetes.io/hostname", name}}}}},
               {"spec", json::object()}};
  auto created = client.Create(client::resources::kNodes, "", node);
  if (!created.ok()) return created.status();
  json status = {{"status",
                  {{"conditions",
                    json::array({{{"type", "Ready"},
                                  {"status", "True"},
                                  {"reason", "KubeletReady"},
                                  {"lastHeartbeatTime", now},
                                  {"lastTransitionTime", now}}})}}}};
  auto patched = client.Patch(client::resources::kNodes, "", name, client::PatchType::kMerge, status, "status");
  if (!patched.ok()) return patched.status();
  json lease = {{"apiVersion", "coordination.k8s.io/v1"},
                {"kind", "Lease"},
                {"metadata", {{"name", name}, {"namespace", "kube-node-lease"}}},
                {"spec",
                 {{"holderIdentity", name}, {"leaseDurationSeconds", 40}, {"renewTime", controllers::MicroTimeNow()}}}};
  return client.Create(client::resources::kLeases, "kube-node-lease", lease).status();
}

absl::Status RenewNodeLease(client::RestClient& client, const std::string& name) {
  json patch = {{"spec", {{"renewTime", controllers::MicroTimeNow()}}}};
  return client.Patch(client::resources::kLeases, "kube-node-lease", name, client::PatchType::kMerge, patch).status();
}

std::vector<json> ListItems(client::RestClient& client, const client::ResourceRef& ref, const std::string& ns,
                            const std::string& label_selector) {
  client::ListOptions o;
  o.label_selector = label_selector;
  auto list = client.List(ref, ns, o);
  if (!list.ok() || !list->contains("items")) return {};
  return (*list)["items"].get<std::vector<json>>();
}

}  // namespace kelpie::testing
