// Scheduler benchmark, modelled on kube-scheduler's scheduler_perf: a real
// `kelpie server` (embedded store, no kubelets, its own scheduler off), M
// fake Nodes and N pending pods created through the API, then Kelpie's
// scheduler (in this process, as scheduler_perf runs kube-scheduler) places
// them all through pods/binding. Throughput is pods bound per second from the
// scheduler's start (informers synced) to the last accepted binding. After
// each run the placements are read back from the API and verified: every pod
// bound, no node over its cpu, memory or pod count, constraints held.
//
// Workloads: SchedulingBasic; required topology spread (3 zones, maxSkew 1);
// required pod anti-affinity (hostname). Printed beside kube-scheduler's
// published minimum thresholds on its CI machines (REFERENCES.md).
//
//   scheduler_bench [--nodes M] [--pods N] [--anti-pods N] [--only basic|spread|anti] [--smoke]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "orchestrator/client/kubeconfig.h"
#include "orchestrator/client/rest_client.h"
#include "orchestrator/scheduler/scheduler_service.h"
#include "tests/testing/kelpie_server.h"
#include "tests/testing/test_env.h"

namespace kelpie::bench {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;
namespace res = client::resources;

enum class Workload { kBasic, kSpread, kAntiAffinity };

struct Result {
  std::string name;
  int nodes = 0;
  int pods = 0;
  double pods_per_second = 0;
  double anchor = 0;  // kube-scheduler's threshold
  double goal = 0;
  std::string verdict;  // verification outcome
};

json NodeObject(int i) {
  std::string name = absl::StrCat("node-", i);
  json quantity = {{"cpu", "4"}, {"memory", "32Gi"}, {"pods", "110"}};
  return {{"apiVersion", "v1"},
          {"kind", "Node"},
          {"metadata",
           {{"name", name},
            {"labels", {{"kubernetes.io/hostname", name}, {"topology.kubernetes.io/zone", absl::StrCat("zone-", i % 3)}}}}},
          {"spec", json::object()},
          {"status", {{"capacity", quantity}, {"allocatable", quantity}}}};
}

json PodObject(Workload w, int i) {
  json spec = {{"containers", json::array({{{"name", "pause"},
                                            {"image", "registry.k8s.io/pause:3.10"},
                                            {"resources", {{"requests", {{"cpu", "100m"}, {"memory", "500Mi"}}}}}}})}};
  json labels = {{"app", "bench"}};
  if (w == Workload::kSpread) {
    spec["topologySpreadConstraints"] = json::array({{{"maxSkew", 1},
                                                      {"topologyKey", "topology.kubernetes.io/zone"},
                                                      {"whenUnsatisfiable", "DoNotSchedule"},
                                                      {"labelSelector", {{"matchLabels", labels}}}}});
  } else if (w == Workload::kAntiAffinity) {
    labels = {{"color", "green"}};
    spec["affinity"] = {{"podAntiAffinity",
                         {{"requiredDuringSchedulingIgnoredDuringExecution",
                           json::array({{{"labelSelector", {{"matchLabels", labels}}},
                                         {"topologyKey", "kubernetes.io/hostname"}}})}}}};
  }
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata", {{"name", absl::StrCat("pod-", i)}, {"namespace", "default"}, {"labels", labels}}},
          {"spec", spec}};
}

// Creates `count` objects with `clients` parallel connections.
bool CreateAll(const std::string& kubeconfig, const client::ResourceRef& ref, const std::string& ns, int count,
               const std::function<json(int)>& make, int clients = 8) {
  std::atomic<int> next{0};
  std::atomic<bool> ok{true};
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&] {
      auto client = client::RestClient::FromKubeconfig(kubeconfig);
      if (!client.ok()) {
        ok = false;
        return;
      }
      for (int i = next++; i < count && ok; i = next++) {
        auto r = (*client)->Create(ref, ns, make(i));
        if (!r.ok()) {
          std::cerr << "create: " << r.status() << "\n";
          ok = false;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  return ok;
}

// Reads the placements back and checks them.
std::string Verify(client::RestClient& c, Workload w, int pods) {
  auto list = c.ListAll(res::kPods, "default", {});
  if (!list.ok()) return absl::StrCat("list failed: ", list.status().ToString());
  std::map<std::string, int> per_node;
  std::map<std::string, int> per_zone;
  int bound = 0;
  for (const auto& p : (*list)["items"]) {
    std::string node = p["spec"].value("nodeName", "");
    if (node.empty()) continue;
    ++bound;
    ++per_node[node];
    int index = 0;
    if (absl::SimpleAtoi(node.substr(5), &index)) ++per_zone[absl::StrCat("zone-", index % 3)];
  }
  if (bound != pods) return absl::StrCat("FAILED: ", bound, "/", pods, " bound");
  for (const auto& [node, n] : per_node) {
    // 4 cpu / 100m = 40 pods, 32Gi / 500Mi = 65, 110 pods: cpu binds first.
    if (n > 40) return absl::StrCat("FAILED: ", node, " holds ", n, " pods (over its cpu)");
    if (w == Workload::kAntiAffinity && n > 1) return absl::StrCat("FAILED: anti-affinity broken on ", node);
  }
  if (w == Workload::kSpread) {
    int lo = pods, hi = 0;
    for (int z = 0; z < 3; ++z) {
      int n = per_zone[absl::StrCat("zone-", z)];
      lo = std::min(lo, n);
      hi = std::max(hi, n);
    }
    if (hi - lo > 1) return absl::StrCat("FAILED: zone skew ", hi - lo);
  }
  return "verified";
}

absl::StatusOr<Result> Run(Workload w, int nodes, int pods, const std::string& work_dir, int run) {
  Result r;
  r.nodes = nodes;
  r.pods = pods;
  switch (w) {
    case Workload::kBasic:
      r.name = "SchedulingBasic";
      r.anchor = 680;
      r.goal = 5000;
      break;
    case Workload::kSpread:
      r.name = "TopologySpreading (required)";
      r.anchor = 460;
      r.goal = 2000;
      break;
    case Workload::kAntiAffinity:
      r.name = "SchedulingPodAntiAffinity";
      r.anchor = 60;
      r.goal = 1000;
      break;
  }
  std::string dir = absl::StrCat(work_dir, "/run", run);
  // A /8 cluster range: 65,536 node ranges of /24 for the fake nodes.
  auto server = testing::KelpieServer::Start(dir, testing::FreeTcpPort(), dir + ".log",
                                             {"--scheduler=false", "--cluster-cidr=10.0.0.0/8"});
  if (!server.ok()) return server.status();
  const std::string& kc = (*server)->kubeconfig();
  // One client: concurrent Node creates race in the API server's podCIDR allocation.
  if (!CreateAll(kc, res::kNodes, "", nodes, NodeObject, 1)) return absl::InternalError("creating nodes failed");
  if (!CreateAll(kc, res::kPods, "default", pods, [w](int i) { return PodObject(w, i); })) {
    return absl::InternalError("creating pods failed");
  }
  auto contents = client::LoadKubeconfig(kc);
  if (!contents.ok()) return contents.status();
  scheduler::SchedulerConfig config;
  config.preemption = false;
  auto service = scheduler::SchedulerService::Start(config, client::ClientOptionsFromKubeconfig(*contents), nullptr);
  if (!service.ok()) return service.status();
  // Run() happened right after the informers synced: measure from here.
  auto start = Clock::now();
  auto deadline = start + std::chrono::minutes(10);
  scheduler::Scheduler& s = (*service)->scheduler();
  while (s.bound_count() < static_cast<uint64_t>(pods) && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  uint64_t bound = s.bound_count();
  (*service)->Stop();
  r.pods_per_second = static_cast<double>(bound) / seconds;
  auto c = client::RestClient::FromKubeconfig(kc);
  if (!c.ok()) return c.status();
  r.verdict = Verify(**c, w, pods);
  return r;
}

}  // namespace
}  // namespace kelpie::bench

int main(int argc, char** argv) {
  using namespace kelpie;
  int nodes = 5000;
  int pods = 10000;
  int anti_pods = 2000;
  bool smoke = false;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next_int = [&](int* out) {
      if (i + 1 >= argc || !absl::SimpleAtoi(argv[++i], out)) {
        std::cerr << a << " needs a number\n";
        std::exit(2);
      }
    };
    if (a == "--smoke") {
      smoke = true;
      nodes = 100;
      pods = 300;
      anti_pods = 50;
    } else if (a == "--nodes") {
      next_int(&nodes);
    } else if (a == "--pods") {
      next_int(&pods);
    } else if (a == "--anti-pods") {
      next_int(&anti_pods);
    } else if (a == "--only" && i + 1 < argc) {
      only = argv[++i];
    } else {
      std::cerr << "usage: scheduler_bench [--nodes M] [--pods N] [--anti-pods N] [--only basic|spread|anti] [--smoke]\n";
      return 2;
    }
  }
  spdlog::set_level(spdlog::level::warn);
  kelpie::testing::TempDir dir;
  std::vector<bench::Result> results;
  int run = 0;
  for (auto [w, n] : {std::pair{bench::Workload::kBasic, pods}, std::pair{bench::Workload::kSpread, pods},
                      std::pair{bench::Workload::kAntiAffinity, std::min(anti_pods, nodes)}}) {
    const char* names[] = {"basic", "spread", "anti"};
    if (!only.empty() && only != names[static_cast<int>(w)]) continue;
    auto r = bench::Run(w, nodes, n, dir.path(), run++);
    if (!r.ok()) {
      std::cerr << "benchmark failed: " << r.status() << "\n";
      return 1;
    }
    results.push_back(*r);
  }
  std::printf("\nScheduler throughput, end to end through the API server (bindings included)\n");
  std::printf("kelpie: API server, store and scheduler sharing this machine's %u cores; kube-scheduler: its\n"
              "published scheduler_perf minimum on its CI machines (in-process apiserver + etcd, 5000 nodes)\n\n",
              std::thread::hardware_concurrency());
  std::printf("| workload | nodes | pods | kelpie pods/s | kube-scheduler threshold | ratio | goal | placements |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  bool all_ok = true;
  for (const auto& r : results) {
    std::printf("| %s | %d | %d | %.0f | %.0f | %.1fx | %.0f | %s |\n", r.name.c_str(), r.nodes, r.pods,
                r.pods_per_second, r.anchor, r.pods_per_second / r.anchor, r.goal, r.verdict.c_str());
    if (r.verdict != "verified") all_ok = false;
  }
  if (smoke) std::printf("\n(smoke sizes: figures not comparable to the anchors)\n");
  return all_ok ? 0 : 1;
}
