// API server benchmark: concurrent clients creating, getting, listing and
// watching 2 KiB pods through a real `kelpie server` (HTTPS, client
// certificates), once with the embedded store and once with etcd, printed
// beside the Kubernetes SLOs (mutating calls p99 <= 1 s, list p99 <= 5 s per
// namespace) and this project's goals (>= 5,000 creates/s on 2 cores, LIST of
// 10k pods p99 <= 150 ms, 1,000 watchers all receiving every change).
//
//   apiserver_bench [--pods N] [--clients N] [--seconds S] [--watchers N]
//                   [--changes N] [--no-etcd] [--smoke]
#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/http/http_client.h"
#include "tests/testing/kelpie_server.h"
#include "tests/testing/test_env.h"
#include "tests/unit/store/etcd_process.h"

namespace kelpie::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct Settings {
  int list_pods = 10000;
  int clients = 32;
  double seconds = 5;
  int watchers = 1000;
  int changes = 50;
  bool etcd = true;
};

struct Percentiles {
  double p50_ms = 0;
  double p99_ms = 0;
};

Percentiles Summarize(std::vector<double> ms) {
  if (ms.empty()) return {};
  std::sort(ms.begin(), ms.end());
  auto at = [&](double q) { return ms[std::min(ms.size() - 1, static_cast<size_t>(q * ms.size()))]; };
  return {at(0.50), at(0.99)};
}

double MsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// A pod of about 2 KiB, as the Kubernetes density tests use.
std::string PodBody(const std::string& name) {
  static const std::string padding(1500, 'x');
  return absl::StrCat(R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":")", name,
                      R"(","labels":{"app":"bench","tier":"backend"},"annotations":{"bench/padding":")", padding,
                      R"("}},"spec":{"containers":[{"name":"app","image":"registry.example/app:1.0",)",
                      R"("resources":{"requests":{"cpu":"100m","memory":"64Mi"}},)",
                      R"("ports":[{"containerPort":8080,"protocol":"TCP"}]}]}})");
}

struct Results {
  double creates_per_s = 0;
  Percentiles create;
  double gets_per_s = 0;
  Percentiles get;
  Percentiles list;
  size_t list_items = 0;
  int watchers = 0;
  int watchers_complete = 0;
  Percentiles watch;
  std::string error;
};

class Bench {
 public:
  Bench(testing::KelpieServer& server, const Settings& settings) : server_(server), settings_(settings) {}

  absl::Status CreateNamespace(const std::string& name) {
    auto client = server_.AdminClient();
    if (!client.ok()) return client.status();
    auto r = (*client)->Do({"POST", "/api/v1/namespaces", {{"Content-Type", "application/json"}},
                            absl::StrCat(R"({"apiVersion":"v1","kind":"Namespace","metadata":{"name":")", name,
                                         R"("}})")});
    if (!r.ok()) return r.status();
    if (r->status != 201) return absl::InternalError(absl::StrCat("create namespace: ", r->status, " ", r->body));
    return absl::OkStatus();
  }

  // `clients` threads POST pods until `seconds` pass or `limit` pods exist.
  // Returns the creation latencies; `created` counts successes.
  std::vector<double> CreatePods(const std::string& ns, const std::string& prefix, double seconds, int limit,
                                 int* created, std::string* error) {
    std::atomic<int> next{0};
    std::atomic<int> ok{0};
    std::mutex mu;
    std::vector<double> latencies;
    auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
    std::vector<std::thread> threads;
    for (int c = 0; c < settings_.clients; ++c) {
      threads.emplace_back([&] {
        auto client = server_.AdminClient();
        if (!client.ok()) {
          std::lock_guard lock(mu);
          *error = std::string(client.status().message());
          return;
        }
        std::vector<double> mine;
        while (Clock::now() < deadline) {
          int i = next.fetch_add(1);
          if (i >= limit) break;
          auto start = Clock::now();
          auto r = (*client)->Do({"POST", absl::StrCat("/api/v1/namespaces/", ns, "/pods"),
                                  {{"Content-Type", "application/json"}}, PodBody(absl::StrCat(prefix, i))});
          if (!r.ok() || r->status != 201) {
            std::lock_guard lock(mu);
            *error = r.ok() ? absl::StrCat("create: ", r->status, " ", r->body.substr(0, 200))
                            : std::string(r.status().message());
            break;
          }
          mine.push_back(MsSince(start));
          ok.fetch_add(1);
        }
        std::lock_guard lock(mu);
        latencies.insert(latencies.end(), mine.begin(), mine.end());
      });
    }
    for (auto& t : threads) t.join();
    *created = ok.load();
    return latencies;
  }

  void MeasureCreatesAndGets(Results* out) {
    if (auto st = CreateNamespace("bench-create"); !st.ok()) {
      out->error = std::string(st.message());
      return;
    }
    int created = 0;
    auto start = Clock::now();
    auto latencies = CreatePods("bench-create", "pod-", settings_.seconds, 1 << 30, &created, &out->error);
    double elapsed = MsSince(start) / 1000;
    out->creates_per_s = created / elapsed;
    out->create = Summarize(std::move(latencies));
    if (created == 0) return;

    std::atomic<int> gets{0};
    std::mutex mu;
    std::vector<double> get_latencies;
    auto deadline = Clock::now() + std::chrono::duration<double>(settings_.seconds);
    std::vector<std::thread> threads;
    start = Clock::now();
    for (int c = 0; c < settings_.clients; ++c) {
      threads.emplace_back([&, c] {
        auto client = server_.AdminClient();
        if (!client.ok()) return;
        std::vector<double> mine;
        uint64_t i = static_cast<uint64_t>(c) * 7919;
        while (Clock::now() < deadline) {
          i = i * 6364136223846793005ULL + 1442695040888963407ULL;
          auto t0 = Clock::now();
          auto r = (*client)->Do({"GET", absl::StrCat("/api/v1/namespaces/bench-create/pods/pod-", (i >> 33) % created),
                                  {}, ""});
          if (!r.ok() || r->status != 200) break;
          mine.push_back(MsSince(t0));
          gets.fetch_add(1);
        }
        std::lock_guard lock(mu);
        get_latencies.insert(get_latencies.end(), mine.begin(), mine.end());
      });
    }
    for (auto& t : threads) t.join();
    out->gets_per_s = gets.load() / (MsSince(start) / 1000);
    out->get = Summarize(std::move(get_latencies));
  }

  void MeasureList(Results* out) {
    if (auto st = CreateNamespace("bench-list"); !st.ok()) {
      out->error = std::string(st.message());
      return;
    }
    int created = 0;
    CreatePods("bench-list", "pod-", 600, settings_.list_pods, &created, &out->error);
    if (created != settings_.list_pods) {
      if (out->error.empty()) out->error = "could not fill the list namespace";
      return;
    }
    auto client = server_.AdminClient();
    if (!client.ok()) return;
    std::vector<double> latencies;
    for (int i = 0; i < 20; ++i) {
      auto start = Clock::now();
      auto r = (*client)->Do({"GET", "/api/v1/namespaces/bench-list/pods", {}, ""});
      if (!r.ok() || r->status != 200) {
        out->error = "list failed";
        return;
      }
      latencies.push_back(MsSince(start));
      if (i == 0) {
        size_t items = 0;
        for (size_t pos = r->body.find("\"kind\":\"Pod\""); pos != std::string::npos;
             pos = r->body.find("\"kind\":\"Pod\"", pos + 1)) {
          ++items;
        }
        out->list_items = items;
      }
    }
    out->list = Summarize(std::move(latencies));
  }

  // `watchers` streams on the namespace; `changes` pods created one after
  // another; every watcher must see every one. Latency: from just before
  // the create request to the watcher reading the event.
  void MeasureWatch(Results* out) {
    if (auto st = CreateNamespace("bench-watch"); !st.ok()) {
      out->error = std::string(st.message());
      return;
    }
    // Watches start just before a sentinel pod, so each one's first event
    // proves it is connected.
    auto setup = server_.AdminClient();
    if (!setup.ok()) {
      out->error = std::string(setup.status().message());
      return;
    }
    auto listed = (*setup)->Do({"GET", "/api/v1/namespaces/bench-watch/pods?limit=1", {}, ""});
    size_t rv_at = listed.ok() ? listed->body.find("\"resourceVersion\":\"") : std::string::npos;
    if (rv_at == std::string::npos) {
      out->error = "cannot read the list resourceVersion";
      return;
    }
    rv_at += 19;
    std::string start_rv = listed->body.substr(rv_at, listed->body.find('"', rv_at) - rv_at);
    auto sentinel = (*setup)->Do({"POST", "/api/v1/namespaces/bench-watch/pods",
                                  {{"Content-Type", "application/json"}}, PodBody("sentinel")});
    if (!sentinel.ok() || sentinel->status != 201) {
      out->error = "cannot create the sentinel pod";
      return;
    }
    const int n = settings_.watchers;
    const int changes = settings_.changes;
    std::vector<std::atomic<int64_t>> sent_ns(changes);
    for (auto& s : sent_ns) s.store(0);
    std::mutex mu;
    std::vector<double> latencies;
    std::atomic<int> connected{0};
    std::atomic<int> complete{0};
    std::vector<std::thread> threads;
    threads.reserve(n);
    for (int w = 0; w < n; ++w) {
      threads.emplace_back([&] {
        auto client = server_.AdminClient();
        if (!client.ok()) return;
        std::vector<double> mine;
        std::string pending;
        int seen = 0;
        bool counted = false;
        auto r = (*client)->Stream(
            {"GET",
             absl::StrCat("/api/v1/namespaces/bench-watch/pods?watch=1&timeoutSeconds=300&resourceVersion=", start_rv),
             {},
             ""},
            [&](std::string_view data) {
              pending.append(data);
              if (!counted && pending.find("\"name\":\"sentinel\"") != std::string::npos) {
                counted = true;
                connected.fetch_add(1);
              }
              size_t line_end;
              while ((line_end = pending.find('\n')) != std::string::npos) {
                std::string line = pending.substr(0, line_end);
                pending.erase(0, line_end + 1);
                size_t at = line.find("\"name\":\"w-");
                if (at == std::string::npos) continue;
                int index = 0;
                size_t digits = at + 10;
                size_t end = line.find('"', digits);
                if (!absl::SimpleAtoi(line.substr(digits, end - digits), &index) || index < 0 || index >= changes) {
                  continue;
                }
                int64_t t_sent = sent_ns[index].load();
                int64_t now = Clock::now().time_since_epoch().count();
                mine.push_back(static_cast<double>(now - t_sent) / 1e6);
                if (++seen == changes) return false;
              }
              return true;
            });
        if (!r.ok()) { std::lock_guard lock(mu); std::fprintf(stderr, "watch: %s\n", std::string(r.status().message()).c_str()); }
        if (seen == changes) complete.fetch_add(1);
        std::lock_guard lock(mu);
        latencies.insert(latencies.end(), mine.begin(), mine.end());
      });
    }
    // The server sends response headers (and so the first bytes) at once;
    // wait until every watcher is connected before changing anything.
    auto wait_until = Clock::now() + std::chrono::seconds(120);
    while (connected.load() < n && Clock::now() < wait_until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    auto client = server_.AdminClient();
    if (client.ok()) {
      for (int i = 0; i < changes; ++i) {
        sent_ns[i].store(Clock::now().time_since_epoch().count());
        auto r = (*client)->Do({"POST", "/api/v1/namespaces/bench-watch/pods", {{"Content-Type", "application/json"}},
                                PodBody(absl::StrCat("w-", i))});
        if (!r.ok() || r->status != 201) {
          out->error = "watch writer failed";
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
    for (auto& t : threads) t.join();
    out->watchers = n;
    out->watchers_complete = complete.load();
    out->watch = Summarize(std::move(latencies));
  }

 private:
  testing::KelpieServer& server_;
  const Settings& settings_;
};

Results Run(const std::string& dir, const Settings& settings, std::vector<std::string> extra_args) {
  Results results;
  if (auto made = MakeDirectories(dir, 0755); !made.ok()) {
    results.error = std::string(made.message());
    return results;
  }
  auto server = testing::KelpieServer::Start(dir + "/data", testing::FreeTcpPort(), dir + "/server.log",
                                             std::move(extra_args));
  if (!server.ok()) {
    results.error = std::string(server.status().message());
    return results;
  }
  Bench bench(**server, settings);
  bench.MeasureCreatesAndGets(&results);
  if (results.error.empty()) bench.MeasureList(&results);
  if (results.error.empty()) bench.MeasureWatch(&results);
  return results;
}

std::string Cell(double v, const char* fmt = "%.0f") {
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, v);
  return buf;
}

int Main(int argc, char** argv) {
  // The measuring clients receive 20 MB lists: keep freed memory in the heap
  // rather than faulting it back in for every list (the server does the same).
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  Settings settings;
  bool smoke = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--pods") {
      settings.list_pods = std::stoi(next());
    } else if (a == "--clients") {
      settings.clients = std::stoi(next());
    } else if (a == "--seconds") {
      settings.seconds = std::stod(next());
    } else if (a == "--watchers") {
      settings.watchers = std::stoi(next());
    } else if (a == "--changes") {
      settings.changes = std::stoi(next());
    } else if (a == "--no-etcd") {
      settings.etcd = false;
    } else if (a == "--smoke") {
      smoke = true;
    } else {
      std::cerr << "usage: apiserver_bench [--pods N] [--clients N] [--seconds S] [--watchers N] [--changes N] "
                   "[--no-etcd] [--smoke]\n";
      return 2;
    }
  }
  if (smoke) {
    settings.list_pods = 200;
    settings.clients = 4;
    settings.seconds = 0.5;
    settings.watchers = 10;
    settings.changes = 5;
  }
  testing::TempDir dir;
  std::printf("API server benchmark: %d clients, %.1f s per phase, LIST of %d pods, %d watchers x %d changes, "
              "2 KiB pods, %u cores\n",
              settings.clients, settings.seconds, settings.list_pods, settings.watchers, settings.changes,
              std::thread::hardware_concurrency());
  std::fflush(stdout);

  Results embedded = Run(dir.File("embedded"), settings, {});
  std::optional<Results> etcd;
  std::unique_ptr<store::testing::EtcdProcess> etcd_process;
  if (settings.etcd) {
    auto started = store::testing::EtcdProcess::Start(dir.File("etcd"));
    if (!started.ok()) {
      std::cerr << "cannot start etcd: " << started.status() << "\n";
      return 1;
    }
    etcd_process = std::move(*started);
    etcd = Run(dir.File("with-etcd"), settings, {"--store=etcd", "--etcd-endpoints=" + etcd_process->endpoint()});
  }

  auto row = [&](const char* name, auto get, const char* goal) {
    std::printf("| %-32s | %14s | %14s | %-34s |\n", name, get(embedded).c_str(),
                etcd ? get(*etcd).c_str() : "-", goal);
  };
  std::printf("\n| %-32s | %14s | %14s | %-34s |\n", "measure", "embedded store", "etcd", "Kubernetes SLO / goal");
  std::printf("|%s|%s|%s|%s|\n", std::string(34, '-').c_str(), std::string(16, '-').c_str(),
              std::string(16, '-').c_str(), std::string(36, '-').c_str());
  row("creates/s", [](const Results& r) { return Cell(r.creates_per_s); }, "goal >= 5,000 (embedded)");
  row("create p50 / p99 (ms)",
      [](const Results& r) { return Cell(r.create.p50_ms, "%.1f") + " / " + Cell(r.create.p99_ms, "%.1f"); },
      "SLO: mutating p99 <= 1,000 ms");
  row("gets/s", [](const Results& r) { return Cell(r.gets_per_s); }, "");
  row("get p50 / p99 (ms)",
      [](const Results& r) { return Cell(r.get.p50_ms, "%.1f") + " / " + Cell(r.get.p99_ms, "%.1f"); },
      "SLO: read p99 <= 1,000 ms");
  std::string list_name = absl::StrCat("LIST ", settings.list_pods, " pods p50 / p99 (ms)");
  row(list_name.c_str(),
      [](const Results& r) { return Cell(r.list.p50_ms, "%.1f") + " / " + Cell(r.list.p99_ms, "%.1f"); },
      "goal p99 <= 150 ms; SLO <= 5,000 ms");
  row("watchers receiving every change",
      [](const Results& r) { return absl::StrCat(r.watchers_complete, " / ", r.watchers); },
      "goal: all of 1,000");
  row("watch delivery p50 / p99 (ms)",
      [](const Results& r) { return Cell(r.watch.p50_ms, "%.1f") + " / " + Cell(r.watch.p99_ms, "%.1f"); }, "");
  bool failed = false;
  for (const Results* r : {&embedded, etcd ? &*etcd : nullptr}) {
    if (r != nullptr && !r->error.empty()) {
      std::printf("error: %s\n", r->error.c_str());
      failed = true;
    }
  }
  if (embedded.list_items != static_cast<size_t>(settings.list_pods)) {
    std::printf("error: LIST returned %zu pods, expected %d\n", embedded.list_items, settings.list_pods);
    failed = true;
  }
  if (embedded.watchers_complete != embedded.watchers) {
    std::printf("error: %d of %d watchers missed changes\n", embedded.watchers - embedded.watchers_complete,
                embedded.watchers);
    failed = true;
  }
  return failed ? 1 : 0;
}

}  // namespace
}  // namespace kelpie::bench

int main(int argc, char** argv) { return kelpie::bench::Main(argc, argv); }
