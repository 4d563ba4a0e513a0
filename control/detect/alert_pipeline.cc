#include "control/detect/alert_pipeline.h"

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "nlohmann/json.hpp"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/registry.h"

namespace kelpie::detect {
namespace {

std::string Str(std::string_view v) { return std::string(v); }

std::string NowRfc3339() {
  struct timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm{};
  gmtime_r(&ts.tv_sec, &tm);
  char buf[64];
  size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, sizeof(buf) - n, ".%06ldZ", ts.tv_nsec / 1000);
  return buf;
}

// SIGKILL through a pidfd: once opened, the pidfd names this process even
// if the pid is reused afterwards.
absl::Status KillByPidfd(int64_t pid) {
  int fd = static_cast<int>(syscall(SYS_pidfd_open, static_cast<pid_t>(pid), 0));
  if (fd < 0) return absl::NotFoundError(std::string("pidfd_open: ") + strerror(errno));
  long rc = syscall(SYS_pidfd_send_signal, fd, SIGKILL, nullptr, 0);
  int err = errno;
  close(fd);
  if (rc != 0) return absl::InternalError(std::string("pidfd_send_signal: ") + strerror(err));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<JsonLinesFileSink>> JsonLinesFileSink::Open(std::string path, uint64_t max_bytes,
                                                                          int keep) {
  RotatingFileOptions o;
  o.path = std::move(path);
  o.max_bytes = max_bytes;
  o.max_backups = keep < 1 ? 1 : keep;
  auto file = RotatingFile::Open(std::move(o));
  if (!file.ok()) return absl::PermissionDeniedError("cannot open alert file " + std::string(file.status().message()));
  return std::unique_ptr<JsonLinesFileSink>(new JsonLinesFileSink(std::move(*file)));
}

absl::Status JsonLinesFileSink::Write(const std::string& line) { return file_->Append(line + "\n"); }

absl::Status StreamSink::Write(const std::string& line) {
  out_ << line << '\n' << std::flush;
  return absl::OkStatus();
}

AlertPipeline::AlertPipeline(AlertPipelineOptions options, std::vector<AlertSink*> sinks,
                             prometheus::Registry* registry)
    : options_(std::move(options)), sinks_(std::move(sinks)) {
  if (registry != nullptr) {
    alerts_total_ = &prometheus::BuildCounter()
                         .Name("kelpie_alerts_total")
                         .Help("Runtime security alerts raised, by rule, priority and pod namespace")
                         .Register(*registry);
    suppressed_total_ = &prometheus::BuildCounter()
                             .Name("kelpie_alerts_suppressed_total")
                             .Help("Rule matches folded into an earlier alert by de-duplication")
                             .Register(*registry);
  }
}

AlertPipeline::~AlertPipeline() = default;

std::string AlertPipeline::OnMatch(const CompiledRule& rule, const Event& e,
                                   const std::vector<int64_t>& ancestor_pids, bool killed_in_kernel,
                                   std::chrono::steady_clock::time_point now) {
  Window& w = windows_[{rule.name(), Str(e.container.id), e.proc.pid}];
  bool open = w.matches > 0 && now - w.opened < options_.dedup_window;
  // A kill is never folded away: the process must die even if it was
  // alerted on a moment ago.
  bool must_kill = rule.action() == Action::kKill && !killed_in_kernel && options_.enforce;
  if (open && !must_kill) {
    ++w.matches;
    ++stats_.suppressed;
    if (suppressed_total_ != nullptr) suppressed_total_->Add({{"rule", rule.name()}}).Increment();
    return "";
  }
  uint64_t count = w.matches > 0 && !open ? w.matches : 1;
  w.opened = now;
  w.matches = 1;

  nlohmann::json j;
  j["time"] = NowRfc3339();
  j["rule"] = rule.name();
  j["priority"] = Str(PriorityName(rule.priority()));
  j["output"] = rule.RenderOutput(e);
  j["tags"] = rule.tags();
  j["count"] = count;
  j["node"] = options_.node_name;
  j["event"] = {{"type", Str(EventTypeName(e.type))}, {"timestamp_ns", e.timestamp_ns}};
  bool host = e.container.id == "host";
  j["host"] = host;
  if (!host) {
    nlohmann::json labels = nlohmann::json::object();
    for (const PodLabel& l : e.container.k8s_pod_labels) labels[Str(l.key)] = Str(l.value);
    j["pod"] = {{"namespace", Str(e.container.k8s_namespace)},
                {"name", Str(e.container.k8s_pod_name)},
                {"uid", Str(e.container.k8s_pod_uid)},
                {"labels", labels}};
    std::string image = Str(e.container.image_repository);
    if (!e.container.image_tag.empty()) image += ":" + Str(e.container.image_tag);
    j["container"] = {{"id", Str(e.container.id)}, {"name", Str(e.container.name)}, {"image", image}};
  }
  nlohmann::json ancestors = nlohmann::json::array();
  for (size_t i = 0; i < e.proc.ancestor_count; ++i) {
    nlohmann::json a = {{"name", Str(e.proc.ancestors[i])}};
    if (i < ancestor_pids.size()) a["pid"] = ancestor_pids[i];
    ancestors.push_back(a);
  }
  j["process"] = {{"pid", e.proc.pid},           {"ppid", e.proc.ppid},
                  {"uid", e.proc.uid},           {"gid", e.proc.gid},
                  {"name", Str(e.proc.name)},    {"exepath", Str(e.proc.exepath)},
                  {"cmdline", Str(e.proc.cmdline)}, {"ancestors", ancestors}};
  if (!e.fd.name.empty()) j["fd"] = {{"name", Str(e.fd.name)}, {"type", Str(e.fd.type)}};

  std::string action = Str(ActionName(rule.action()));
  nlohmann::json response = {{"action", action}};
  if (rule.action() == Action::kKill) {
    if (killed_in_kernel) {
      response["result"] = "killed in kernel";
      ++stats_.killed;
    } else if (!options_.enforce) {
      response["result"] = "not enforced";
    } else if (absl::Status s = KillByPidfd(e.proc.pid); s.ok()) {
      response["result"] = "killed from user space";
      ++stats_.killed;
    } else {
      response["result"] = "kill failed: " + std::string(s.message());
    }
  } else if (rule.action() == Action::kQuarantine) {
    response["result"] = "quarantine not available: alert only";
  }
  j["response"] = response;

  std::string line = j.dump();
  for (AlertSink* sink : sinks_) (void)sink->Write(line);
  ++stats_.raised;
  if (alerts_total_ != nullptr) {
    alerts_total_
        ->Add({{"rule", rule.name()},
               {"priority", Str(PriorityName(rule.priority()))},
               {"namespace", host ? "host" : Str(e.container.k8s_namespace)}})
        .Increment();
  }
  return line;
}

}  // namespace kelpie::detect
