// Endpoint propagation benchmark: a Service selecting N pods (1,000 by
// default, all Running and Ready) in a real `kelpie server` running its
// controller manager; the benchmark flips one pod's Ready condition at a
// time through pods/status and times until a watch on the Service's
// EndpointSlices shows that endpoint with the new readiness. Printed beside
// the goal (p99 <= 100 ms; REFERENCES.md has no measured anchor for this).
//
//   endpoints_bench [--pods N] [--flips N] [--smoke]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "orchestrator/client/rest_client.h"
#include "tests/integration/controllers/fake_cluster.h"
#include "tests/testing/kelpie_server.h"
#include "tests/testing/test_env.h"

namespace kelpie::bench {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;
namespace res = client::resources;

constexpr double kGoalP99Ms = 100;

std::string PodIp(int i) { return absl::StrCat("10.42.", i / 250, ".", 1 + i % 250); }

// Readiness of every endpoint of the service as a watch sees it.
class SliceWatcher {
 public:
  SliceWatcher(client::RestClient& c, std::string service) : client_(c), selector_("kubernetes.io/service-name=" + service) {}
  ~SliceWatcher() {
    canceller_.Cancel();
    if (thread_.joinable()) thread_.join();
  }
  bool Start() {
    client::ListOptions lo;
    lo.label_selector = selector_;
    auto list = client_.ListAll(res::kEndpointSlices, "default", lo);
    if (!list.ok()) return false;
    for (const auto& s : (*list)["items"]) Apply(s, false);
    std::string rv = (*list)["metadata"].value("resourceVersion", "");
    thread_ = std::thread([this, rv] {
      client::WatchOptions wo;
      wo.label_selector = selector_;
      wo.resource_version = rv;
      (void)client_.Watch(
          res::kEndpointSlices, "default", wo,
          [this](const client::WatchEvent& e) {
            if (e.type == "ADDED" || e.type == "MODIFIED") Apply(e.object, false);
            if (e.type == "DELETED") Apply(e.object, true);
            return true;
          },
          &canceller_);
    });
    return true;
  }
  // Waits until `ip`'s ready condition is `ready`.
  bool WaitFor(const std::string& ip, bool ready, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] {
      auto it = ready_.find(ip);
      return it != ready_.end() && it->second == ready;
    });
  }
  size_t ReadyCount() {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    for (const auto& [ip, r] : ready_) n += r;
    return n;
  }

 private:
  void Apply(const json& slice, bool deleted) {
    std::lock_guard<std::mutex> lock(mu_);
    const std::string name = slice["metadata"].value("name", "");
    for (const auto& ip : by_slice_[name]) ready_.erase(ip);
    by_slice_[name].clear();
    if (!deleted) {
      for (const auto& ep : slice.value("endpoints", json::array())) {
        std::string ip = ep["addresses"][0];
        ready_[ip] = ep["conditions"].value("ready", false);
        by_slice_[name].push_back(ip);
      }
    }
    cv_.notify_all();
  }
  client::RestClient& client_;
  const std::string selector_;
  http::StreamCanceller canceller_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, bool> ready_;
  std::map<std::string, std::vector<std::string>> by_slice_;
};

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * v.size()))];
}

int Run(int pods, int flips) {
  testing::TempDir dir;
  auto server = testing::KelpieServer::Start(dir.File("data"), testing::FreeTcpPort(), dir.File("server.log"));
  if (!server.ok()) {
    std::fprintf(stderr, "kelpie server: %s\n", std::string(server.status().message()).c_str());
    return 1;
  }
  auto c = client::RestClient::FromKubeconfig((*server)->kubeconfig());
  if (!c.ok()) return 1;
  client::RestClient& client = **c;
  json svc = {{"apiVersion", "v1"},
              {"kind", "Service"},
              {"metadata", {{"name", "bench"}}},
              {"spec", {{"selector", {{"app", "bench"}}}, {"ports", json::array({{{"name", "http"}, {"port", 80}, {"targetPort", "http"}}})}}}};
  if (!client.Create(res::kServices, "default", svc).ok()) return 1;
  // Pods created and made Ready by a few client threads.
  std::atomic<int> next{0}, failed{0};
  auto setup_start = Clock::now();
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w) {
    workers.emplace_back([&] {
      for (int i = next++; i < pods; i = next++) {
        std::string name = absl::StrCat("bench-", i);
        if (!client.Create(res::kPods, "default", testing::TestPod(name, {{"app", "bench"}}, {{"http", 8080}})).ok() ||
            !testing::MarkPodRunning(client, "default", name, PodIp(i), true).ok()) {
          ++failed;
        }
      }
    });
  }
  for (auto& t : workers) t.join();
  if (failed > 0) {
    std::fprintf(stderr, "%d pods failed to be created\n", failed.load());
    return 1;
  }
  SliceWatcher watcher(client, "bench");
  if (!watcher.Start()) return 1;
  auto converge_start = Clock::now();
  while (watcher.ReadyCount() < static_cast<size_t>(pods)) {
    if (Clock::now() - converge_start > std::chrono::seconds(120)) {
      std::fprintf(stderr, "slices show %zu of %d ready endpoints after 120 s\n", watcher.ReadyCount(), pods);
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  double setup_s = std::chrono::duration<double>(Clock::now() - setup_start).count();

  std::vector<double> ms, write_ms;
  int timeouts = 0;
  for (int f = 0; f < flips; ++f) {
    int i = (f * 7919) % pods;
    bool ready = (f / pods) % 2 == 1;  // first pass: Ready -> not ready
    std::string name = absl::StrCat("bench-", i);
    auto t0 = Clock::now();
    if (!testing::MarkPodRunning(client, "default", name, PodIp(i), ready).ok()) return 1;
    write_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    if (!watcher.WaitFor(PodIp(i), ready, std::chrono::seconds(10))) {
      ++timeouts;
      continue;
    }
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  // Where the time goes: one write of an EndpointSlice right after a pod
  // write, as the controller does (no controller involved).
  json probe = {{"apiVersion", "discovery.k8s.io/v1"},
                {"kind", "EndpointSlice"},
                {"metadata", {{"name", "latency-probe"}}},
                {"addressType", "IPv4"},
                {"endpoints", json::array()}};
  for (int k = 0; k < std::min(pods, 100); ++k) {
    probe["endpoints"].push_back({{"addresses", json::array({absl::StrCat("10.99.0.", k + 1)})},
                                  {"conditions", {{"ready", true}, {"serving", true}, {"terminating", false}}},
                                  {"targetRef", {{"kind", "Pod"}, {"namespace", "default"}, {"name", absl::StrCat("probe-", k)}}}});
  }
  auto created = client.Create(res::kEndpointSlices, "default", probe);
  std::vector<double> slice_write_ms;
  for (int k = 0; created.ok() && k < std::min(flips, 20); ++k) {
    bool ready = k % 2 == 0;
    if (!testing::MarkPodRunning(client, "default", "bench-0", PodIp(0), ready).ok()) break;
    auto t0 = Clock::now();
    json next = *created;
    next["metadata"]["labels"]["probe"] = std::to_string(k);
    auto patched = client.Update(res::kEndpointSlices, "default", next);
    if (!patched.ok()) break;
    created = *patched;
    slice_write_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  double p50 = Percentile(ms, 0.5), p99 = Percentile(ms, 0.99);
  std::printf("\nEndpoint propagation: pod Ready flip (pods/status write) -> EndpointSlice seen by a watch\n");
  std::printf("Service with %d endpoints (%d slices of <= 100), %d flips, %d timed out; setup %.1f s\n\n", pods,
              (pods + 99) / 100, flips, timeouts, setup_s);
  std::printf("| metric | kelpie | anchor (goal) | kelpie / anchor |\n|---|---|---|---|\n");
  std::printf("| pods/status write p50 (part of the above) | %.1f ms | - | - |\n", Percentile(write_ms, 0.5));
  std::printf("| EndpointSlice write right after a pod write p50 (API server; part of the above) | %.1f ms | - | - |\n",
              Percentile(slice_write_ms, 0.5));
  std::printf("| propagation p50 | %.1f ms | - | - |\n", p50);
  std::printf("| propagation p99 | %.1f ms | <= %.0f ms (issue goal; no published Kubernetes figure) | %.2f |\n", p99,
              kGoalP99Ms, p99 / kGoalP99Ms);
  return timeouts == 0 ? 0 : 1;
}

}  // namespace
}  // namespace kelpie::bench

int main(int argc, char** argv) {
  int pods = 1000, flips = 200;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--smoke") {
      pods = 50;
      flips = 20;
    } else if (a == "--pods" && i + 1 < argc) {
      if (!absl::SimpleAtoi(argv[++i], &pods) || pods < 1) return 2;
    } else if (a == "--flips" && i + 1 < argc) {
      if (!absl::SimpleAtoi(argv[++i], &flips) || flips < 1) return 2;
    } else {
      std::fprintf(stderr, "usage: endpoints_bench [--pods N] [--flips N] [--smoke]\n");
      return 2;
    }
  }
  return kelpie::bench::Run(pods, flips);
}
