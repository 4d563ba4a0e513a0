// Pod startup latency and agent memory: a real `kelpie server` and a real
// `kelpie agent` (the node, with the runc runtime and CNI plugins), a burst
// of pods bound to the agent's node, each timed from its create call to the
// moment a watch shows it Running (image present), as the Kubernetes pod
// startup SLO measures it. Then the agent's resident memory with every pod
// running, beside k3s's published agent figure. Needs root.
//
// Where the time goes: the agent logs one "pod-startup {json}" line per pod
// with the duration of every step of its start (the kubelet's own and the
// runtime's: cgroup, netns, each CNI plugin, overlay mount, config.json,
// runc, status patch); the benchmark adds the watch delivery (create call ->
// the kubelet's informer) and the way back (status posted -> the benchmark's
// watch) and prints p50/p99 per step.
//
//   pod_startup_bench [--pods N] [--smoke] [--max-parallel-pod-starts N]
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/files.h"
#include "common/subprocess.h"
#include "orchestrator/client/rest_client.h"
#include "orchestrator/runtime/image/image_store.h"
#include "orchestrator/runtime/runc_pod_runtime.h"
#include "tests/testing/busybox_image.h"
#include "tests/testing/kelpie_server.h"
#include "tests/testing/test_env.h"

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace kelpie;

int64_t UnixNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t RssKib(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "VmRSS:")) {
      int64_t kib = 0;
      std::string digits;
      for (char c : line) if (std::isdigit(static_cast<unsigned char>(c))) digits.push_back(c);
      if (absl::SimpleAtoi(digits, &kib)) return kib;
    }
  }
  return 0;
}

// Total RSS of the shims (their command line says runtime-shim) under `state_dir`.
int64_t ShimRssKib(const std::string& state_dir, int* count) {
  int64_t total = 0;
  *count = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    std::string name = e.path().filename().string();
    if (!std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    auto cmd = ReadFileToString(e.path().string() + "/cmdline");
    if (!cmd.ok()) continue;
    std::replace(cmd->begin(), cmd->end(), '\0', ' ');
    if (absl::StrContains(*cmd, "runtime-shim") && absl::StrContains(*cmd, state_dir)) {
      total += RssKib(std::stoi(name));
      ++*count;
    }
  }
  return total;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size()))) ;
  return v[std::min(v.size() - 1, i == 0 ? 0 : i - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  int pods = 30;
  bool smoke = false;
  std::string parallel_starts;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--smoke") smoke = true;
    if (a == "--pods" && i + 1 < argc) pods = std::atoi(argv[++i]);
    if (a == "--max-parallel-pod-starts" && i + 1 < argc) parallel_starts = argv[++i];
  }
  if (smoke) pods = 5;
  if (!kelpie::testing::IsPrivileged()) {
    std::printf("pod_startup_bench: needs root (runc, CNI, cgroups); skipped\n");
    return kelpie::testing::PrivilegedRequired() ? 1 : 77;
  }
  kelpie::testing::TempDir dir;
  std::random_device rd;
  std::string suffix = absl::StrCat(rd() % 100000);
  std::string bridge = absl::StrCat("kb", suffix);
  std::string node = absl::StrCat("bench-node-", suffix);
  std::string cgroup_parent = absl::StrCat("/kelpie-bench-", suffix, ".slice");
  // A pod range of its own, away from the 10.42/16 the other tests draw from.
  std::string cluster_cidr = absl::StrCat("10.", 100 + rd() % 100, ".0.0/16");
  std::string agent_dir = dir.File("agent");

  auto server = kelpie::testing::KelpieServer::Start(dir.File("server"), kelpie::testing::FreeTcpPort(), dir.File("server.log"),
                                             {"--cluster-cidr", cluster_cidr});
  if (!server.ok()) {
    std::fprintf(stderr, "server: %s\n", std::string(server.status().message()).c_str());
    return 1;
  }
  {
    auto images = image::ImageStore::Open(agent_dir);
    auto archive = kelpie::testing::BuildBusyboxImage(dir.path());
    if (!images.ok() || !archive.ok() || !(*images)->Import(*archive).ok()) {
      std::fprintf(stderr, "could not import the busybox image\n");
      return 1;
    }
  }
  std::vector<std::string> agent_argv = {
      kelpie::testing::KelpieBinary(), "agent", "--kubeconfig", (*server)->kubeconfig(), "--data-dir", agent_dir,
      "--node-name", node, "--service-routing=false", "--dns=false", "--network-observability=false",
      "--kubelet-port=0", "--image-pulls=false", "--cni-bridge", bridge, "--pod-cgroup-parent", cgroup_parent,
      "--pod-log-dir", dir.File("logs")};
  if (!parallel_starts.empty()) {
    agent_argv.push_back("--max-parallel-pod-starts");
    agent_argv.push_back(parallel_starts);
  }
  auto agent = ChildProcess::Start(agent_argv, {.stdout_path = dir.File("agent.log")});
  if (!agent.ok()) {
    std::fprintf(stderr, "agent: %s\n", std::string(agent.status().message()).c_str());
    return 1;
  }
  auto http = (*server)->AdminClient();
  client::RestClient client(std::move(*http));
  int rc = 0;
  std::vector<double> latencies;
  std::map<std::string, std::vector<double>> step_ms;
  std::vector<std::string> step_order;
  int traced = 0;
  int64_t agent_rss = 0, shim_rss = 0;
  int shims = 0;
  {
    // The node is registered and its kubelet runs pods once the node has a pod CIDR.
    bool ready = false;
    for (int i = 0; i < 300 && !ready; ++i) {
      auto n = client.Get(client::resources::kNodes, "", node);
      ready = n.ok() && !(*n)["spec"].value("podCIDR", "").empty();
      if (!ready) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
    std::mutex mu;
    std::map<std::string, Clock::time_point> created, running;
    std::map<std::string, int64_t> created_unix, running_unix;
    auto list = client.List(client::resources::kPods, "default");
    std::string rv = list.ok() ? (*list)["metadata"].value("resourceVersion", "") : "";
    http::StreamCanceller canceller;
    std::thread watcher([&] {
      client::WatchOptions wo;
      wo.resource_version = rv;
      (void)client.Watch(client::resources::kPods, "default", wo, [&](const client::WatchEvent& e) {
        if (e.object.contains("status") && e.object["status"].value("phase", "") == "Running") {
          std::lock_guard<std::mutex> lock(mu);
          std::string name = e.object["metadata"].value("name", "");
          if (!running.count(name)) {
            running[name] = Clock::now();
            running_unix[name] = UnixNanos();
          }
          if (static_cast<int>(running.size()) == pods) return false;
        }
        return true;
      }, &canceller);
    });
    for (int i = 0; i < pods; ++i) {
      std::string name = absl::StrCat("burst-", i);
      json pod = {{"apiVersion", "v1"}, {"kind", "Pod"}, {"metadata", {{"name", name}}},
                  {"spec", {{"nodeName", node}, {"terminationGracePeriodSeconds", 1},
                            {"containers", {{{"name", "c"}, {"image", "busybox"},
                                             {"command", {"sleep", "3600"}}}}}}}};
      {
        std::lock_guard<std::mutex> lock(mu);
        created[name] = Clock::now();
        created_unix[name] = UnixNanos();
      }
      auto r = client.Create(client::resources::kPods, "default", pod);
      if (!r.ok()) std::fprintf(stderr, "create %s: %s\n", name.c_str(), std::string(r.status().message()).c_str());
    }
    auto deadline = Clock::now() + std::chrono::seconds(120);
    while (Clock::now() < deadline) {
      {
        std::lock_guard<std::mutex> lock(mu);
        if (static_cast<int>(running.size()) == pods) break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    canceller.Cancel();
    watcher.join();
    for (const auto& [name, t] : running) {
      latencies.push_back(std::chrono::duration<double>(t - created[name]).count());
    }
    // The agent's per-pod step durations, plus both watch legs measured here.
    // A watch may show Running before the agent has its patch's answer (and
    // logged its trace): give it a moment.
    std::this_thread::sleep_for(std::chrono::seconds(2));
    auto log = ReadFileToString(dir.File("agent.log"));
    std::vector<std::string> lines;
    if (log.ok()) lines = absl::StrSplit(*log, '\n');
    for (const std::string& line : lines) {
      auto at = line.find("pod-startup {");
      if (at == std::string::npos) continue;
      json trace = json::parse(line.substr(at + std::strlen("pod-startup ")), nullptr, false);
      if (!trace.is_object()) continue;
      std::string pod = trace.value("pod", "");
      std::string name = pod.substr(pod.find('/') + 1);
      if (!created_unix.count(name)) continue;
      ++traced;
      auto add = [&](const std::string& step, double ms) {
        if (!step_ms.count(step)) step_order.push_back(step);
        step_ms[step].push_back(ms);
      };
      add("watch delivery (create call -> kubelet)",
          static_cast<double>(trace.value("seenAtUnixNs", int64_t{0}) - created_unix[name]) / 1e6);
      for (const json& step : trace.value("stepsMs", json::array())) {
        if (step.is_array() && step.size() == 2) add(step[0].get<std::string>(), step[1].get<double>());
      }
      if (running_unix.count(name)) {
        add("status patch sent -> seen Running by a watch",
            static_cast<double>(running_unix[name] - trace.value("patchSentAtUnixNs", int64_t{0})) / 1e6);
      }
      add("kubelet total (seen -> status posted)", trace.value("totalMs", 0.0));
    }
    if (static_cast<int>(latencies.size()) != pods) {
      std::fprintf(stderr, "only %zu of %d pods reached Running\n", latencies.size(), pods);
      rc = 1;
    }
    agent_rss = RssKib(agent->pid());
    shim_rss = ShimRssKib(agent_dir, &shims);

    // Teardown through the kubelet itself: graceful deletes, the agent removes the objects.
    for (int i = 0; i < pods; ++i) {
      (void)client.Delete(client::resources::kPods, "default", absl::StrCat("burst-", i));
    }
    for (int i = 0; i < 600; ++i) {
      auto left = client.List(client::resources::kPods, "default");
      if (left.ok() && (*left)["items"].empty()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  agent->Signal(SIGTERM);
  if (!agent->Wait(std::chrono::seconds(20))) {
    agent->Signal(SIGKILL);
    agent->Wait(std::chrono::seconds(5));
  }
  // Whatever the agent left (it should be nothing) is removed here.
  {
    auto images = image::ImageStore::Open(agent_dir);
    runtime::RuncRuntimeOptions ro;
    ro.state_dir = agent_dir + "/runtime";
    ro.log_dir = dir.File("logs");
    ro.cgroup_parent = cgroup_parent;
    ro.cni.bridge = bridge;
    ro.cni.pod_cidr = "10.255.255.0/24";
    ro.shim_command = {kelpie::testing::KelpieBinary(), "runtime-shim"};
    if (images.ok()) {
      auto rt = runtime::RuncPodRuntime::Create(ro, **images);
      if (rt.ok()) {
        auto sandboxes = (*rt)->ListPodSandboxes();
        if (sandboxes.ok() && !sandboxes->empty()) {
          std::fprintf(stderr, "%zu sandboxes were left behind\n", sandboxes->size());
          rc = 1;
          for (const auto& s : *sandboxes) (void)(*rt)->RemovePodSandbox(s.id);
        }
        (void)(*rt)->cgroups().RemoveParentIfEmpty();
      }
    }
  }
  (void)RunSubprocess({"ip", "link", "del", bridge});
  if (const char* copy = std::getenv("POD_BENCH_AGENT_LOG")) {
    std::filesystem::copy_file(dir.File("agent.log"), copy, std::filesystem::copy_options::overwrite_existing);
  }

  std::printf("\nPod startup, burst of %d pods on one node (create -> Running seen through a watch, image present)\n\n",
              pods);
  std::printf("| measure | kelpie | anchor | kelpie / anchor |\n|---|---|---|---|\n");
  double p50 = Percentile(latencies, 50), p99 = Percentile(latencies, 99);
  std::printf("| startup p50 | %.3f s | | |\n", p50);
  std::printf("| startup p99 | %.3f s | 5 s (Kubernetes SLO) | %.2f |\n", p99, p99 / 5.0);
  std::printf("| startup max | %.3f s | | |\n", latencies.empty() ? 0 : *std::max_element(latencies.begin(), latencies.end()));
  std::printf("| agent RSS with %d pods | %.1f MB | 275 MB (k3s agent) | %.2f |\n", pods, agent_rss / 1024.0,
              agent_rss / 1024.0 / 275.0);
  std::printf("| container shims (%d processes, not in the agent) | %.1f MB total | | |\n", shims,
              shim_rss / 1024.0);
  std::printf("| startup p99 vs goal | %.3f s | 1 s (goal) | %.2f |\n", p99, p99);

  std::printf("\nWhere the time goes (%d of %d pods traced by the agent; ms per pod; steps of one pod run one "
              "after the other unless marked)\n\n",
              traced, pods);
  std::printf("| step | p50 ms | p99 ms | max ms |\n|---|---|---|---|\n");
  for (const std::string& step : step_order) {
    const auto& v = step_ms[step];
    std::printf("| %s | %.1f | %.1f | %.1f |\n", step.c_str(), Percentile(v, 50), Percentile(v, 99),
                *std::max_element(v.begin(), v.end()));
  }
  if (traced != pods) {
    std::fprintf(stderr, "only %d of %d pods logged a startup trace\n", traced, pods);
    rc = 1;
  }
  return rc;
}
