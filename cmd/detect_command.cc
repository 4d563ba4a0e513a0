// `kelpie detect`: the runtime security sensor on this node. Loads the
// default rules and any --rules files, attaches the tracepoint programs with
// the prefilter derived from them, and writes alerts (stdout as JSON lines
// or a table, and/or a rotating JSON-lines file) until interrupted.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cmd/commands.h"
#include "common/log.h"
#include "control/detect/alert_pipeline.h"
#include "control/detect/container_resolver.h"
#include "control/detect/kernel_event_decoder.h"
#include "control/detect/kernel_filter.h"
#include "control/detect/rule_set.h"
#include "dataplane/detect_sensor.h"
#include "dataplane/kernel_filesystems.h"

namespace kelpie::cmd {
namespace {

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

struct DetectFlags {
  std::vector<std::string> rules;
  bool no_default_rules = false;
  std::string output = "json";
  std::string alert_file;
  uint64_t alert_file_max_bytes = 64ull << 20;
  int alert_file_keep = 5;
  std::string pods_cgroup;  // below the v2 root, e.g. kelpie.slice/pods
  bool no_host = false;
  uint32_t ring_buffer_bytes = 1u << 22;
  size_t ancestors = 4;
  int64_t dedup_window_ms = 10000;
  double duration_s = 0;
  std::string node_name;
  bool enforce = true;
};

// Prints alerts as a table row (the JSON line stays the canonical form).
class TableSink final : public detect::AlertSink {
 public:
  TableSink() {
    std::printf("%-27s %-9s %-44s %-24s %-8s %s\n", "TIME", "PRIORITY", "RULE", "POD/CONTAINER", "PID",
                "PROCESS");
    std::fflush(stdout);
  }
  absl::Status Write(const std::string& line) override {
    auto j = nlohmann::json::parse(line);
    std::string where = j.value("host", true) ? "host"
                                              : j["pod"].value("namespace", "") + "/" + j["pod"].value("name", "") +
                                                    "/" + j["container"].value("id", "").substr(0, 12);
    std::printf("%-27s %-9s %-44s %-24s %-8lld %s\n", j.value("time", "").c_str(), j.value("priority", "").c_str(),
                j.value("rule", "").c_str(), where.c_str(),
                static_cast<long long>(j["process"].value("pid", 0)), j["process"].value("cmdline", "").c_str());
    std::fflush(stdout);
    return absl::OkStatus();
  }
};

int RunDetect(const DetectFlags& f) {
  std::vector<std::string> files;
  if (!f.no_default_rules) files.push_back(KELPIE_DEFAULT_DETECT_RULES);
  files.insert(files.end(), f.rules.begin(), f.rules.end());
  if (files.empty()) {
    std::cerr << "kelpie detect: no rules (give --rules FILE or drop --no-default-rules)\n";
    return 2;
  }
  auto rules = detect::RuleSet::LoadFiles(files);
  if (!rules.ok()) {
    // Messages carry file:line:col and what was expected.
    std::cerr << "kelpie detect: " << rules.status().message() << "\n";
    return 2;
  }
  auto engine = detect::Engine::Compile(*rules);
  if (!engine.ok()) {
    std::cerr << "kelpie detect: " << engine.status().message() << "\n";
    return 2;
  }

  dataplane::CgroupV2Root v2 = dataplane::DetectCgroupV2Root();
  if (v2.layout == dataplane::CgroupLayout::kNone) {
    std::cerr << "kelpie detect: no cgroup v2 hierarchy (mount cgroup2 at /sys/fs/cgroup or "
                 "/sys/fs/cgroup/unified)\n";
    return 1;
  }
  std::string pods_root = f.pods_cgroup.empty() ? v2.path : v2.path + "/" + f.pods_cgroup;

  detect::KernelFilter filter = detect::DeriveKernelFilter((*engine)->DerivePrefilter(), KELPIE_DETECT_MAX_PREFIXES,
                                                           KELPIE_DETECT_PREFIX_LEN);
  dataplane::DetectSensorOptions options;
  options.ring_buffer_bytes = f.ring_buffer_bytes;
  options.kind_mask = filter.kind_mask;
  options.path_filter_mask = filter.path_filter_mask;
  for (const std::string& p : filter.prefixes) options.prefixes.push_back({p, false});
  options.ignore_tgid = static_cast<uint32_t>(getpid());
  options.include_host = !f.no_host;
  if (!f.pods_cgroup.empty()) {
    struct stat st{};
    if (::stat(pods_root.c_str(), &st) != 0) {
      std::cerr << "kelpie detect: pods cgroup " << pods_root << " does not exist\n";
      return 1;
    }
    options.watch_cgroup_id = st.st_ino;
    uint32_t level = 0;
    for (char c : "/" + f.pods_cgroup) level += c == '/' ? 1 : 0;
    options.watch_cgroup_level = level;
  }

  std::vector<detect::AlertSink*> sinks;
  std::unique_ptr<detect::AlertSink> stdout_sink;
  if (f.output == "table") stdout_sink = std::make_unique<TableSink>();
  else if (f.output == "json") stdout_sink = std::make_unique<detect::StreamSink>(std::cout);
  if (stdout_sink) sinks.push_back(stdout_sink.get());
  std::unique_ptr<detect::JsonLinesFileSink> file_sink;
  if (!f.alert_file.empty()) {
    auto s = detect::JsonLinesFileSink::Open(f.alert_file, f.alert_file_max_bytes, f.alert_file_keep);
    if (!s.ok()) {
      std::cerr << "kelpie detect: " << s.status().message() << "\n";
      return 1;
    }
    file_sink = std::move(*s);
    sinks.push_back(file_sink.get());
  }

  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  std::string node = f.node_name.empty() ? host : f.node_name;
  detect::CgroupDirectoryResolver resolver(pods_root);
  detect::KernelEventDecoder decoder(resolver, nullptr, {f.ancestors, node});
  detect::AlertPipeline pipeline({node, std::chrono::milliseconds(f.dedup_window_ms), f.enforce}, sinks, nullptr);

  uint64_t records = 0;
  auto sensor = dataplane::DetectSensor::Start(options, [&](const kelpie_detect_event& r) {
    ++records;
    const detect::Event* e = decoder.Decode(r);
    if (e == nullptr) return;
    (*engine)->Evaluate(*e, [&](const detect::CompiledRule& rule) {
      pipeline.OnMatch(rule, *e, decoder.ancestor_pids(), r.killed != 0, std::chrono::steady_clock::now());
    });
  });
  if (!sensor.ok()) {
    std::cerr << "kelpie detect: " << sensor.status().message()
              << "\n(needs root, a kernel with BTF and raw tracepoints; `kelpie check` tells what is missing)\n";
    return 1;
  }
  spdlog::info("detect: {} rules loaded, watching {}", (*engine)->rules().size(),
                  f.pods_cgroup.empty() ? std::string("every cgroup") : pods_root);

  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::milliseconds(static_cast<int64_t>(f.duration_s * 1000));
  while (!g_stop && (f.duration_s <= 0 || std::chrono::steady_clock::now() < deadline)) {
    auto n = (*sensor)->Poll(std::chrono::milliseconds(100));
    if (!n.ok()) {
      std::cerr << "kelpie detect: " << n.status().message() << "\n";
      return 1;
    }
  }
  auto counters = (*sensor)->Counters();
  if (counters.ok()) {
    std::string summary;
    for (int i = 0; i < KELPIE_DETECT_REASON_MAX; ++i) {
      summary += std::string(" ") + dataplane::DetectReasonName(i) + "=" + std::to_string((*counters)[i]);
    }
    std::cerr << "kelpie detect: " << records << " records, " << pipeline.stats().raised << " alerts ("
              << pipeline.stats().suppressed << " folded), filtered/dropped:" << summary << "\n";
  }
  return 0;
}

}  // namespace

CommandRunner RegisterDetectCommand(CLI::App& root) {
  CLI::App* app = root.add_subcommand("detect", "Run the runtime security sensor on this node and print alerts");
  auto f = std::make_shared<DetectFlags>();
  app->add_option("--rules", f->rules, "Extra rule files, applied after the default rules (append/override)");
  app->add_flag("--no-default-rules", f->no_default_rules, "Do not load the shipped default rules");
  app->add_option("-o,--output", f->output, "Alerts on stdout: json (one line each), table, or none")
      ->check(CLI::IsMember({"json", "table", "none"}));
  app->add_option("--alert-file", f->alert_file, "Also append alerts as JSON lines to this file");
  app->add_option("--alert-file-max-bytes", f->alert_file_max_bytes, "Rotate the alert file past this size");
  app->add_option("--alert-file-keep", f->alert_file_keep, "Rotated alert files kept");
  app->add_option("--pods-cgroup", f->pods_cgroup,
                  "Cgroup (below the v2 root) holding pod<uid>/<container-id> directories; only processes "
                  "below it are watched, plus the host unless --no-host");
  app->add_flag("--no-host", f->no_host, "With --pods-cgroup: ignore processes outside it");
  app->add_option("--ring-buffer-bytes", f->ring_buffer_bytes, "Kernel ring buffer size per program (power of 2)");
  app->add_option("--ancestors", f->ancestors, "Ancestors reported per alert (max 8)");
  app->add_option("--dedup-window-ms", f->dedup_window_ms, "Same rule+process+container within it: one alert");
  app->add_option("--duration", f->duration_s, "Stop after this many seconds (0: until SIGINT/SIGTERM)");
  app->add_option("--node-name", f->node_name, "Node name in alerts (default: hostname)");
  app->add_flag("!--no-enforce", f->enforce, "Report `action: kill` rules without killing");
  return [f]() { return RunDetect(*f); };
}

}  // namespace kelpie::cmd
