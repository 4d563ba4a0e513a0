// Test helpers for controllers against a real `kelpie server` without
// kubelets: fake Node objects with Leases the test renews (or stops
// renewing), pods marked Running/Ready through pods/status, and polling.
#pragma once

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "orchestrator/client/rest_client.h"

namespace kelpie::testing {

template <typename F>
bool Eventually(F f, std::chrono::milliseconds limit = std::chrono::seconds(30)) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return f();
}

// A pod with one container whose ports are named (name, containerPort).
nlohmann::json TestPod(const std::string& name, const nlohmann::json& labels,
                       const std::vector<std::pair<std::string, int>>& ports = {},
                       const std::string& node_name = "");

// Sets status.phase Running, podIP/podIPs and the Ready condition.
absl::Status MarkPodRunning(client::RestClient& client, const std::string& ns, const std::string& name,
                            const std::string& ip, bool ready);

// A Node that reports Ready, and its Lease in kube-node-lease renewed now.
absl::Status CreateFakeNode(client::RestClient& client, const std::string& name);
// Renews the node's Lease (a kubelet's heartbeat).
absl::Status RenewNodeLease(client::RestClient& client, const std::string& name);

// Items of a list call (empty on error).
std::vector<nlohmann::json> ListItems(client::RestClient& client, const client::ResourceRef& ref,
                                      const std::string& ns, const std::string& label_selector = "");

}  // namespace kelpie::testing
