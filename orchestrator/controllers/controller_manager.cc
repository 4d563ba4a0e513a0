#include "orchestrator/controllers/controller_manager.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <random>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "common/log.h"

namespace kelpie::controllers {

absl::StatusOr<std::set<std::string>> SelectControllers(const std::vector<std::string>& flag,
                                                        const std::vector<ControllerDescriptor>& known) {
  std::set<std::string> names;
  for (const auto& d : known) names.insert(d.name);
  bool star = false;
  std::set<std::string> on, off;
  std::vector<std::string> unknown;
  for (const auto& raw : flag) {
    if (raw.empty()) continue;
    if (raw == "*") {
      star = true;
      continue;
    }
    bool disable = raw[0] == '-';
    std::string name = disable ? raw.substr(1) : raw;
    if (!names.count(name)) {
      unknown.push_back(raw);
      continue;
    }
    (disable ? off : on).insert(name);
  }
  if (!unknown.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("--controllers: unknown controller(s) ", absl::StrJoin(unknown, ", "),
                                                   "; known: ", absl::StrJoin(names, ", ")));
  }
  std::set<std::string> selected;
  for (const auto& d : known) {
    if (off.count(d.name)) continue;
    if (on.count(d.name) || (star && d.enabled_by_default)) selected.insert(d.name);
  }
  return selected;
}

namespace {
std::string DefaultIdentity() {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0) std::snprintf(host, sizeof(host), "kelpie");
  std::random_device rd;
  return absl::StrCat(host, "_", absl::Hex(rd() & 0xffffffu, absl::kZeroPad6));
}
}  // namespace

ControllerManager::ControllerManager(client::RestClient& client, ControllerManagerOptions options,
                                     std::vector<ControllerDescriptor> controllers, prometheus::Registry* metrics)
    : client_(client), options_(std::move(options)), descriptors_(std::move(controllers)), metrics_(metrics) {}

ControllerManager::~ControllerManager() { Stop(); }

absl::Status ControllerManager::Start() {
  auto selected = SelectControllers(options_.controllers, descriptors_);
  if (!selected.ok()) return selected.status();
  enabled_ = std::move(*selected);
  spdlog::info("controller manager: controllers {}", absl::StrJoin(enabled_, ","));
  loop_ = std::thread([this] { Loop(); });
  if (options_.leader_elect) {
    LeaderElectionConfig lc;
    lc.lease_namespace = options_.lease_namespace;
    lc.lease_name = options_.lease_name;
    lc.identity = options_.identity.empty() ? DefaultIdentity() : options_.identity;
    lc.lease_duration = options_.lease_duration;
    lc.renew_deadline = options_.renew_deadline;
    lc.retry_period = options_.retry_period;
    // The elector's thread must keep renewing: starting controllers (which
    // waits for informers) happens on the manager's own thread.
    lc.on_started_leading = [this] {
      std::lock_guard<std::mutex> lock(mu_);
      want_running_ = true;
      cv_.notify_all();
    };
    lc.on_stopped_leading = [this] {
      std::lock_guard<std::mutex> lock(mu_);
      want_running_ = false;
      cv_.notify_all();
    };
    elector_ = std::make_unique<LeaderElector>(client_, lc);
    elector_->Start();
  } else {
    std::lock_guard<std::mutex> lock(mu_);
    want_running_ = true;
    cv_.notify_all();
  }
  return absl::OkStatus();
}

void ControllerManager::Stop() {
  // The elector releases the lease after the controllers stopped writing
  // would be ideal; stopping it first makes the hand-over prompt, and the
  // controllers stop right after.
  if (elector_) elector_->Stop();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    want_running_ = false;
  }
  cv_.notify_all();
  if (loop_.joinable()) loop_.join();
  elector_.reset();
}

std::vector<std::string> ControllerManager::Running() const {
  std::lock_guard<std::mutex> lock(mu_);
  return running_names_;
}

bool ControllerManager::WaitUntilRunning(std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [this] { return running_; });
}

void ControllerManager::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || want_running_ != running_; });
    if (want_running_ && !running_ && !stop_) {
      lock.unlock();
      StartControllers();
      lock.lock();
      continue;
    }
    if (running_ && (!want_running_ || stop_)) {
      lock.unlock();
      StopControllers();
      lock.lock();
      continue;
    }
    if (stop_) return;
  }
}

void ControllerManager::StartControllers() {
  leading_ = true;
  informers_ = std::make_unique<SharedInformerFactory>(client_);
  EventRecorderOptions ro;
  ro.component = "kube-controller-manager";
  ro.host = options_.event_host;
  recorder_ = std::make_unique<RestEventRecorder>(client_, ro, metrics_);
  std::vector<std::pair<const ControllerDescriptor*, std::unique_ptr<Controller>>> built;
  // One context per controller: events name the controller as their source,
  // as Kubernetes' controllers do ("endpointslice-controller", ...).
  for (const auto& d : descriptors_) {
    if (!enabled_.count(d.name)) continue;
    contexts_.push_back(std::make_unique<ControllerContext>(ControllerContext{
        client_, *informers_, recorder_->ForComponent(d.name + "-controller"), RealClock::Get(), metrics_}));
    auto c = d.factory(*contexts_.back());
    if (!c.ok()) {
      spdlog::error("controller manager: {}: {}", d.name, c.status().message());
      continue;
    }
    built.emplace_back(&d, std::move(*c));
  }
  informers_->Start();
  // Wait for the informers unless told to stop meanwhile.
  const auto deadline = std::chrono::steady_clock::now() + options_.sync_timeout;
  bool synced = false;
  while (!synced) {
    synced = informers_->WaitForSync(std::chrono::milliseconds(200));
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_ || !want_running_) break;
    if (!synced && std::chrono::steady_clock::now() > deadline) {
      spdlog::warn("controller manager: informers did not sync within {} ms; starting anyway",
                   options_.sync_timeout.count());
      break;
    }
  }
  std::vector<std::string> names;
  for (auto& [d, c] : built) {
    c->Run(options_.workers > 0 ? options_.workers : d->workers);
    names.push_back(d->name);
    controllers_.push_back(std::move(c));
  }
  spdlog::info("controller manager: running {}", absl::StrJoin(names, ","));
  std::lock_guard<std::mutex> lock(mu_);
  running_names_ = std::move(names);
  running_ = true;
  cv_.notify_all();
}

void ControllerManager::StopControllers() {
  for (auto& c : controllers_) c->Stop();
  if (informers_) informers_->Stop();
  controllers_.clear();
  contexts_.clear();
  if (recorder_) recorder_->Stop();
  recorder_.reset();
  informers_.reset();
  leading_ = false;
  spdlog::info("controller manager: controllers stopped");
  std::lock_guard<std::mutex> lock(mu_);
  running_names_.clear();
  running_ = false;
  cv_.notify_all();
}

absl::StatusOr<std::chrono::milliseconds> ParseFlagDuration(const std::string& flag, const std::string& text) {
  absl::Duration d;
  if (!absl::ParseDuration(text, &d) || d < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": \"", text, "\" is not a duration such as 40s, 500ms or 5m"));
  }
  return std::chrono::milliseconds(absl::ToInt64Milliseconds(d));
}

void AddControllerManagerFlags(CLI::App& app, ControllerManagerFlags& flags) {
  app.add_option("--controller-manager", flags.enabled,
                 "Run the controller manager (endpoints, namespaces, garbage collection, service accounts, "
                 "node lifecycle, ...) in this server")
      ->capture_default_str();
  app.add_option("--controllers", flags.controllers,
                 "Controllers to run: '*' runs those enabled by default, 'foo' enables foo, '-foo' disables "
                 "it (comma-separated, as kube-controller-manager)")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--leader-elect", flags.leader_elect,
                 "Elect one active controller manager among servers through the Lease "
                 "kube-system/kube-controller-manager")
      ->capture_default_str();
  app.add_option("--leader-elect-lease-duration", flags.lease_duration,
                 "How long others wait after the last renewal before taking the lease over")
      ->capture_default_str();
  app.add_option("--leader-elect-renew-deadline", flags.renew_deadline,
                 "How long the leader keeps trying to renew before it stops leading")
      ->capture_default_str();
  app.add_option("--leader-elect-retry-period", flags.retry_period, "Interval between acquire/renew attempts")
      ->capture_default_str();
  app.add_option("--concurrent-syncs", flags.workers, "Worker threads per controller")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
}

absl::Status ApplyControllerManagerFlags(const ControllerManagerFlags& flags, ControllerManagerOptions* options) {
  options->controllers = flags.controllers;
  options->leader_elect = flags.leader_elect;
  options->workers = flags.workers;
  auto ld = ParseFlagDuration("--leader-elect-lease-duration", flags.lease_duration);
  if (!ld.ok()) return ld.status();
  auto rd = ParseFlagDuration("--leader-elect-renew-deadline", flags.renew_deadline);
  if (!rd.ok()) return rd.status();
  auto rp = ParseFlagDuration("--leader-elect-retry-period", flags.retry_period);
  if (!rp.ok()) return rp.status();
  if (*rd >= *ld || rp->count() <= 0) {
    return absl::InvalidArgumentError(
        "--leader-elect-renew-deadline must be shorter than --leader-elect-lease-duration, and the retry period "
        "positive");
  }
  options->lease_duration = *ld;
  options->renew_deadline = *rd;
  options->retry_period = *rp;
  return absl::OkStatus();
}

}  // namespace kelpie::controllers
