// Events per second the default ruleset evaluates on one core, over a mix
// shaped like a busy node: mostly file opens and execs of ordinary programs,
// some connects, a few rarer syscalls, and a small share of events that match.
#include <cstdio>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "control/detect/engine.h"

namespace kelpie::detect {
namespace {

const PodLabel kLabels[] = {{"app", "web"}, {"tier", "frontend"}};

Event Base(EventType type) {
  Event e;
  e.type = type;
  e.proc.pid = 4242;
  e.proc.uid = 1000;
  e.proc.name = "python3";
  e.proc.exepath = "/usr/bin/python3";
  e.proc.cmdline = "python3 app.py";
  e.proc.args = "app.py";
  e.proc.ancestors = {"gunicorn", "containerd-shim"};
  e.proc.ancestor_count = 2;
  e.container.id = "3f2a9c1d";
  e.container.name = "web";
  e.container.image_repository = "registry.local/shop/web";
  e.container.k8s_namespace = "shop";
  e.container.k8s_pod_name = "web-7d9f";
  e.container.k8s_pod_labels = kLabels;
  return e;
}

std::vector<Event> RealisticMix() {
  std::vector<Event> events;
  const char* read_paths[] = {"/app/static/index.html", "/usr/lib/python3.11/json/__init__.py",
                              "/etc/hosts", "/proc/self/status", "/etc/ld.so.cache",
                              "/usr/share/zoneinfo/UTC", "/app/templates/cart.html"};
  const char* write_paths[] = {"/tmp/cache/a", "/var/log/nginx/access.log", "/app/uploads/x.png"};
  for (int round = 0; round < 10; ++round) {
    for (const char* path : read_paths) {  // 50% reads
      Event e = Base(EventType::kOpen);
      e.fd.name = path;
      e.fd.type = "file";
      events.push_back(e);
    }
    for (const char* path : write_paths) {  // writes
      Event e = Base(EventType::kOpen);
      e.fd.name = path;
      e.fd.type = "file";
      e.arg.flags = 01 | 0100 | 02000;
      events.push_back(e);
    }
    for (const char* name : {"ls", "python3"}) {  // execs
      Event e = Base(EventType::kExecve);
      e.proc.name = name;
      events.push_back(e);
    }
    Event connect = Base(EventType::kConnect);  // connects
    connect.fd.type = "ipv4";
    connect.fd.dip = "10.1.2.3";
    connect.fd.dport = 5432;
    events.push_back(connect);
    events.push_back(connect);
    Event accept = Base(EventType::kAccept);
    events.push_back(accept);
  }
  // A few events that match (about 2%): a shell from a server, a shadow read.
  Event shell = Base(EventType::kExecve);
  shell.proc.name = "sh";
  shell.proc.ancestors = {"nginx", "containerd-shim"};
  events.push_back(shell);
  Event shadow = Base(EventType::kOpen);
  shadow.fd.name = "/etc/shadow";
  events.push_back(shadow);
  Event mine = Base(EventType::kConnect);
  mine.fd.type = "ipv4";
  mine.fd.dport = 3333;
  events.push_back(mine);
  return events;
}

std::unique_ptr<Engine> DefaultEngine() {
  auto rules = RuleSet::LoadFiles({std::string(KELPIE_DETECT_RULES_DIR) + "/default.yaml"});
  if (!rules.ok()) {
    std::fprintf(stderr, "%s\n", std::string(rules.status().message()).c_str());
    std::abort();
  }
  auto engine = Engine::Compile(*rules);
  if (!engine.ok()) {
    std::fprintf(stderr, "%s\n", std::string(engine.status().message()).c_str());
    std::abort();
  }
  return std::move(*engine);
}

void BM_EvaluateDefaultRuleset(benchmark::State& state) {
  std::unique_ptr<Engine> engine = DefaultEngine();
  std::vector<Event> events = RealisticMix();
  size_t matches = 0;
  size_t i = 0;
  for (auto _ : state) {
    matches += engine->Evaluate(events[i], [](const CompiledRule&) {});
    if (++i == events.size()) i = 0;
  }
  benchmark::DoNotOptimize(matches);
  state.SetItemsProcessed(state.iterations());
  state.counters["events_per_s"] = benchmark::Counter(static_cast<double>(state.iterations()),
                                                      benchmark::Counter::kIsRate);
  state.counters["match_share"] = static_cast<double>(matches) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_EvaluateDefaultRuleset);

// Matching events also render their output: the cost of an alert.
void BM_EvaluateAndRenderMatches(benchmark::State& state) {
  std::unique_ptr<Engine> engine = DefaultEngine();
  std::vector<Event> events = RealisticMix();
  size_t i = 0;
  size_t bytes = 0;
  for (auto _ : state) {
    const Event& event = events[i];
    engine->Evaluate(event, [&](const CompiledRule& rule) { bytes += rule.RenderOutput(event).size(); });
    if (++i == events.size()) i = 0;
  }
  benchmark::DoNotOptimize(bytes);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EvaluateAndRenderMatches);

void BM_CompileDefaultRuleset(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(DefaultEngine());
}
BENCHMARK(BM_CompileDefaultRuleset)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace kelpie::detect

BENCHMARK_MAIN();
