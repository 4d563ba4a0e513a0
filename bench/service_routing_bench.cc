// Service routing benchmark: the rate of TCP connect + small request +
// close to a ClusterIP through Kelpie's socket-level balancing, to the
// backend directly (no translation: the limit), through kube-proxy's
// iptables layout (KUBE-SERVICES -> KUBE-SVC-* -> KUBE-SEP-*, statistic
// random DNAT) and through kube-proxy's nftables layout (verdict map ->
// per-service chain -> numgen -> DNAT), at several service counts; plus the
// time to program every service and to apply one endpoint change.
//
//   service_routing_bench [--smoke] [--sizes 100,1000,10000] [--seconds 4] [--backends 4]
//
// Needs root. Everything is local: the client runs in a private network
// namespace (where the iptables/nftables rules live, so the host's tables
// are untouched), backends in a second one behind a veth; the sock_lb
// programs attach to a private cgroup the process moves into. All of it is
// removed at exit.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <prometheus/registry.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/subprocess.h"
#include "control/service_proxy/service_proxy.h"
#include "dataplane/socket_lb_program.h"
#include "tests/integration/service_routing/service_routing_env.h"

namespace kelpie {
namespace {

using namespace service_routing_testing;
using Clock = std::chrono::steady_clock;

struct Settings {
  std::vector<int> sizes = {100, 1000, 10000};
  double seconds = 4.0;
  int backends = 4;
  int change_repeats = 20;
};

constexpr uint16_t kServicePort = 80;
constexpr uint16_t kBackendPort = 8080;

std::string Vip(int i) {
  int n = i + 1;  // 10.43.0.1, 10.43.0.2, ...
  return absl::StrCat("10.43.", (n >> 8) & 255, ".", n & 255);
}

// connect + "hi" + read reply until EOF + close. True on success.
bool Request(const sockaddr_in& to) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  timeval tv{.tv_sec = 2, .tv_usec = 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  bool ok = ::connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof(to)) == 0 &&
            ::send(fd, "hi\n", 3, MSG_NOSIGNAL) == 3;
  // The reply (the backend's address) is one small segment; the client
  // closes first, as HTTP clients do, so TIME_WAIT stays here.
  char buf[64];
  ok = ok && ::recv(fd, buf, sizeof(buf), 0) > 0;
  ::close(fd);
  return ok;
}

struct Rate {
  double per_second = 0;
  long errors = 0;
};

// Connects round-robin over `targets` for `seconds` (bounded by count too).
Rate Measure(const std::vector<sockaddr_in>& targets, double seconds) {
  long done = 0, errors = 0;
  auto start = Clock::now();
  auto end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  for (long i = 0; i < 10'000'000 && Clock::now() < end; ++i) {
    if (Request(targets[static_cast<size_t>(i) % targets.size()])) {
      ++done;
    } else {
      ++errors;
    }
  }
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  return {done / elapsed, errors};
}

// Alternates short chunks of `a` and `b` so that both see the same machine
// load (this machine is shared; consecutive runs differ by 20 %).
std::pair<Rate, Rate> MeasureInterleaved(const std::vector<sockaddr_in>& a, const std::vector<sockaddr_in>& b,
                                         double seconds, int chunks = 8) {
  Rate ra, rb;
  // Warm-up, not counted: neighbour entries, caches, the servers' threads.
  (void)Measure(a, std::min(0.25, seconds / chunks));
  (void)Measure(b, std::min(0.25, seconds / chunks));
  for (int c = 0; c < chunks; ++c) {
    Rate x = Measure(a, seconds / chunks);
    Rate y = Measure(b, seconds / chunks);
    ra.per_second += x.per_second / chunks;
    ra.errors += x.errors;
    rb.per_second += y.per_second / chunks;
    rb.errors += y.errors;
  }
  return {ra, rb};
}

std::vector<sockaddr_in> Targets(const std::vector<std::string>& ips, uint16_t port) {
  std::vector<sockaddr_in> out;
  for (const auto& ip : ips) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
    out.push_back(a);
  }
  return out;
}

// Service VIPs in a spread order so that iptables' linear walk is sampled
// evenly (a client does not only reach the first rules).
std::vector<std::string> ServiceSample(int services) {
  std::vector<std::string> out;
  int step = std::max(1, services / 997);
  for (int i = 0; i < services; i += step) out.push_back(Vip(i));
  return out;
}

double Time(const std::function<bool()>& fn, bool* ok) {
  auto start = Clock::now();
  *ok = fn();
  return std::chrono::duration<double>(Clock::now() - start).count();
}

bool Run(const std::vector<std::string>& argv, const std::string& stdin_text = "") {
  SubprocessOptions o;
  o.timeout = std::chrono::minutes(5);
  if (!stdin_text.empty()) o.stdin_text = stdin_text;
  auto r = RunSubprocess(argv, o);
  if (!r.ok() || !r->Succeeded()) {
    std::cerr << argv[0] << " failed: " << (r.ok() ? r->stderr_text.substr(0, 400) : std::string(r.status().message()))
              << "\n";
    return false;
  }
  return true;
}

// kube-proxy's iptables mode, nat table only (what a ClusterIP connect
// walks). `skip_endpoint` leaves out one endpoint of service 0.
std::string IptablesRuleset(int services, const std::vector<std::string>& backends, bool skip_endpoint) {
  std::string out = "*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n";
  std::string rules;
  for (int s = 0; s < services; ++s) {
    std::string svc = absl::StrFormat("KUBE-SVC-%016X", s);
    absl::StrAppend(&out, ":", svc, " - [0:0]\n");
    absl::StrAppend(&rules, "-A KUBE-SERVICES -d ", Vip(s), "/32 -p tcp -m comment --comment \"default/svc-", s,
                    ":http cluster IP\" -m tcp --dport ", kServicePort, " -j ", svc, "\n");
    std::vector<std::string> eps = backends;
    if (skip_endpoint && s == 0) eps.pop_back();
    for (size_t e = 0; e < eps.size(); ++e) {
      std::string sep = absl::StrFormat("KUBE-SEP-%012X%04X", s, e);
      absl::StrAppend(&out, ":", sep, " - [0:0]\n");
      size_t left = eps.size() - e;
      if (left > 1) {
        absl::StrAppend(&rules, "-A ", svc, " -m comment --comment \"default/svc-", s,
                        ":http -> ", eps[e], "\" -m statistic --mode random --probability ",
                        absl::StrFormat("%.11f", 1.0 / static_cast<double>(left)), " -j ", sep, "\n");
      } else {
        absl::StrAppend(&rules, "-A ", svc, " -m comment --comment \"default/svc-", s, ":http -> ", eps[e],
                        "\" -j ", sep, "\n");
      }
      absl::StrAppend(&rules, "-A ", sep, " -s ", eps[e], "/32 -j KUBE-MARK-MASQ\n");
      absl::StrAppend(&rules, "-A ", sep, " -p tcp -m tcp -j DNAT --to-destination ", eps[e], ":", kBackendPort, "\n");
    }
  }
  absl::StrAppend(&out, rules, "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000\n",
                  "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n", "COMMIT\n");
  return out;
}

// kube-proxy's nftables mode: one verdict map keyed on address . protocol
// . port, a chain per service choosing an endpoint with numgen, a chain per
// endpoint doing the DNAT.
std::string NftRuleset(int services, const std::vector<std::string>& backends) {
  std::string out = "table ip kube-proxy {\n";
  std::string elements;
  for (int s = 0; s < services; ++s) {
    std::string svc = absl::StrFormat("service-%08X-default/svc-%d/tcp/http", s, s);
    absl::StrAppend(&elements, s ? ",\n" : "", "    ", Vip(s), " . tcp . ", kServicePort, " : goto ", svc);
    std::string vmap;
    for (size_t e = 0; e < backends.size(); ++e) {
      std::string ep = absl::StrFormat("endpoint-%08X%04X-default/svc-%d/tcp/http__%s/%d", s, e, s, backends[e],
                                       kBackendPort);
      absl::StrAppend(&out, "  chain ", ep, " {\n    ip saddr ", backends[e], " jump mark-for-masquerade\n",
                      "    meta l4proto tcp dnat to ", backends[e], ":", kBackendPort, "\n  }\n");
      absl::StrAppend(&vmap, e ? ", " : "", e, " : goto ", ep);
    }
    absl::StrAppend(&out, "  chain ", svc, " {\n    numgen random mod ", backends.size(), " vmap { ", vmap,
                    " }\n  }\n");
  }
  absl::StrAppend(&out, "  chain mark-for-masquerade {\n    mark set mark or 0x4000\n  }\n",
                  "  map service-ips {\n    type ipv4_addr . inet_proto . inet_service : verdict\n",
                  services ? "    elements = {\n" + elements + "\n    }\n" : "", "  }\n",
                  "  chain services {\n    ip daddr . meta l4proto . th dport vmap @service-ips\n  }\n",
                  "  chain nat-output {\n    type nat hook output priority -100; policy accept;\n",
                  "    jump services\n  }\n}\n");
  return out;
}

struct Row {
  int services = 0;
  Rate direct, kelpie, iptables, nft;
  double kelpie_program_s = 0, iptables_program_s = 0, nft_program_s = 0;
  double kelpie_change_ms = 0, iptables_change_s = 0;
};

service_proxy::EndpointSlice Slice(int s, const std::vector<std::string>& backends) {
  service_proxy::EndpointSlice slice;
  slice.namespace_name = "default";
  slice.name = absl::StrCat("svc-", s, "-1");
  slice.service_name = absl::StrCat("svc-", s);
  for (const auto& b : backends) {
    service_proxy::Endpoint e;
    e.addresses = {b};
    slice.endpoints.push_back(e);
  }
  slice.ports = {{.name = "http", .protocol = service_proxy::Protocol::kTcp, .port = kBackendPort}};
  return slice;
}

int Main(int argc, char** argv) {
  Settings settings;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--smoke") {
      settings.sizes = {10, 50};
      settings.seconds = 0.3;
      settings.change_repeats = 3;
    } else if (a == "--sizes") {
      settings.sizes.clear();
      for (auto part : absl::StrSplit(next(), ',')) {
        int n = 0;
        if (!absl::SimpleAtoi(part, &n) || n <= 0 || n > 60000) {
          std::cerr << "bad --sizes\n";
          return 2;
        }
        settings.sizes.push_back(n);
      }
    } else if (a == "--seconds") {
      if (!absl::SimpleAtod(next(), &settings.seconds) || settings.seconds <= 0 || settings.seconds > 60) return 2;
    } else if (a == "--backends") {
      if (!absl::SimpleAtoi(next(), &settings.backends) || settings.backends < 1 || settings.backends > 200) return 2;
    } else {
      std::cerr << "usage: service_routing_bench [--smoke] [--sizes 100,1000,10000] [--seconds S] [--backends N]\n";
      return 2;
    }
  }
  if (::geteuid() != 0) {
    std::cerr << "service_routing_bench needs root (eBPF, network namespaces, cgroups)\n";
    // 77: ctest reports a skip, unless privileged runs are required (CI).
    const char* required = std::getenv("KELPIE_REQUIRE_PRIVILEGED");
    return required != nullptr && std::string(required) == "1" ? 1 : 77;
  }
  for (const char* tool : {"iptables-restore", "nft", "ip"}) {
    if (!FindExecutable(tool)) {
      std::cerr << tool << " is missing (scripts/install-deps installs it)\n";
      return 1;
    }
  }

  std::string id = std::to_string(::getpid() % 100000);
  std::string client_ns = "kslbbc" + id;
  // The client namespace: all rules and the client live there.
  if (!Ip({"netns", "add", client_ns}).ok()) return 1;
  struct NetnsGuard {
    std::string name;
    ~NetnsGuard() { (void)Ip({"netns", "del", name}); }
  } client_guard{client_ns};

  int status = 1;
  // Everything runs on one thread inside the client namespace; programs it
  // starts (ip, iptables-restore, nft) inherit the namespace.
  std::thread worker([&] {
    NetnsThreadScope scope(client_ns);
    if (!scope.ok() || !Ip({"link", "set", "lo", "up"}).ok()) return;
    // Client-side TIME_WAIT reuse and a wide port range (namespace-local
    // settings): every mode makes tens of thousands of connections.
    if (!Run({"sysctl", "-q", "-w", "net.ipv4.tcp_tw_reuse=1"}) ||
        !Run({"sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=1024 65000"})) {
      return;
    }
    std::string prefix = absl::StrCat("10.42.", 150 + ::getpid() % 50);
    auto net = BackendNetns::Create("kslbbb" + id, prefix, settings.backends);
    if (!net.ok()) {
      std::cerr << net.status() << "\n";
      return;
    }
    // Service traffic leaves towards the backends (a node's default route).
    if (!Ip({"route", "add", "10.43.0.0/16", "dev", (*net)->host_veth()}).ok()) return;
    auto servers = EchoServers::Start((*net)->name(), (*net)->addresses(), kBackendPort, 5353,
                                      /*client_closes_first=*/true);
    auto bpffs = PrivateBpffs::Mount();
    auto cgroup = TestCgroup::Create("kelpie-service-routing-bench-" + id);
    if (!servers.ok() || !bpffs.ok() || !cgroup.ok() || !(*cgroup)->Enter().ok()) {
      std::cerr << "setup failed\n";
      return;
    }
    const std::vector<std::string>& backends = (*net)->addresses();
    std::vector<Row> rows;
    for (int n : settings.sizes) {
      Row row;
      row.services = n;
      std::vector<sockaddr_in> vips = Targets(ServiceSample(n), kServicePort);
      std::cerr << "== " << n << " services\n";

      // Kelpie.
      {
        dataplane::SocketLbOptions o;
        o.pin_dir = (*bpffs)->path() + "/kelpie/bench";
        o.cgroup_path = (*cgroup)->path();
        auto program = dataplane::SocketLbProgram::Install(o);
        if (!program.ok()) {
          std::cerr << program.status() << "\n";
          return;
        }
        prometheus::Registry registry;
        service_proxy::ServiceProxy proxy((*program)->maps(), registry, {.node_name = "bench"});
        bool ok = proxy.OnInitialSyncDone().ok();
        row.kelpie_program_s = Time(
            [&] {
              for (int s = 0; s < n; ++s) {
                service_proxy::Service svc;
                svc.namespace_name = "default";
                svc.name = absl::StrCat("svc-", s);
                svc.cluster_ips = {Vip(s)};
                svc.ports = {{.name = "http", .protocol = service_proxy::Protocol::kTcp, .port = kServicePort}};
                if (!proxy.OnServiceUpdate(svc).ok() || !proxy.OnEndpointSliceUpdate(Slice(s, backends)).ok()) {
                  return false;
                }
              }
              return true;
            },
            &ok);
        if (!ok) std::cerr << "kelpie programming failed\n";
        // Direct runs here too: with the programs attached a direct connect
        // costs one map miss, so this is the limit measured under the same
        // load as Kelpie.
        auto [kelpie, direct] = MeasureInterleaved(vips, Targets(backends, kBackendPort), settings.seconds);
        row.kelpie = kelpie;
        row.direct = direct;
        // One endpoint change (remove one backend of one service, then put
        // it back): the median of the map diffs.
        std::vector<double> changes;
        std::vector<std::string> fewer(backends.begin(), backends.end() - (backends.size() > 1 ? 1 : 0));
        for (int r = 0; r < settings.change_repeats; ++r) {
          int s = (r * 7919) % n;
          bool changed = false;
          changes.push_back(Time([&] { return proxy.OnEndpointSliceUpdate(Slice(s, fewer)).ok(); }, &changed));
          changes.push_back(Time([&] { return proxy.OnEndpointSliceUpdate(Slice(s, backends)).ok(); }, &changed));
        }
        std::sort(changes.begin(), changes.end());
        row.kelpie_change_ms = changes[changes.size() / 2] * 1000;
        (void)(*program)->Uninstall();
      }

      // kube-proxy iptables layout.
      {
        bool ok = false;
        std::string rules = IptablesRuleset(n, backends, false);
        row.iptables_program_s = Time([&] { return Run({"iptables-restore", "-w", "5"}, rules); }, &ok);
        if (ok) row.iptables = Measure(vips, settings.seconds);
        std::string changed = IptablesRuleset(n, backends, true);
        row.iptables_change_s = Time([&] { return Run({"iptables-restore", "-w", "5"}, changed); }, &ok);
        Run({"iptables-restore", "-w", "5"}, "*nat\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n");
        Run({"iptables", "-w", "5", "-t", "nat", "-F"});
        Run({"iptables", "-w", "5", "-t", "nat", "-X"});
      }

      // kube-proxy nftables layout.
      {
        bool ok = false;
        std::string rules = NftRuleset(n, backends);
        row.nft_program_s = Time([&] { return Run({"nft", "-f", "-"}, rules); }, &ok);
        if (ok) row.nft = Measure(vips, settings.seconds);
        Run({"nft", "delete", "table", "ip", "kube-proxy"});
      }
      rows.push_back(row);
    }

    auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
    std::printf("\nService routing: TCP connect + request + close, one client, %.1f s per cell, %d backends per service\n"
                "(direct and kelpie alternate in 8 chunks; iptables and nftables run after them)\n\n",
                settings.seconds, settings.backends);
    std::printf("%9s | %14s | %22s | %22s | %22s | %15s\n", "services", "direct conn/s", "kelpie conn/s (xdir)",
                "iptables conn/s (xdir)", "nftables conn/s (xdir)", "kelpie/iptables");
    std::printf("----------+----------------+------------------------+------------------------+------------------------+----------------\n");
    long errors = 0;
    for (const Row& r : rows) {
      std::printf("%9d | %14.0f | %12.0f (%5.2fx)  | %12.0f (%5.2fx)  | %12.0f (%5.2fx)  | %14.2fx\n", r.services,
                  r.direct.per_second, r.kelpie.per_second, ratio(r.kelpie.per_second, r.direct.per_second),
                  r.iptables.per_second, ratio(r.iptables.per_second, r.direct.per_second), r.nft.per_second,
                  ratio(r.nft.per_second, r.direct.per_second), ratio(r.kelpie.per_second, r.iptables.per_second));
      errors += r.direct.errors + r.kelpie.errors + r.iptables.errors + r.nft.errors;
    }
    std::printf("\nProgramming (from scratch) and one endpoint change\n\n");
    std::printf("%9s | %16s | %18s | %16s | %18s | %22s\n", "services", "kelpie all (s)", "iptables-restore (s)",
                "nft -f (s)", "kelpie change (ms)", "iptables change (s)");
    std::printf("----------+------------------+----------------------+------------------+--------------------+-----------------------\n");
    for (const Row& r : rows) {
      std::printf("%9d | %16.3f | %20.3f | %16.3f | %18.3f | %21.3f\n", r.services, r.kelpie_program_s,
                  r.iptables_program_s, r.nft_program_s, r.kelpie_change_ms, r.iptables_change_s);
    }
    std::printf("\nkelpie change: median map diff of one EndpointSlice update (one backend removed or added back)\n"
                "iptables change: iptables-restore of the full ruleset with one endpoint removed\n"
                "failed requests (all modes): %ld\n",
                errors);
    status = errors == 0 ? 0 : 1;
    // Scoped objects go here, in reverse: cgroup, bpffs, servers, netns.
  });
  worker.join();
  return status;
}

}  // namespace
}  // namespace kelpie

int main(int argc, char** argv) { return kelpie::Main(argc, argv); }
