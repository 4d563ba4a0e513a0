#include "orchestrator/controllers/leader_elector.h"

#include <spdlog/spdlog.h>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "orchestrator/client/api_errors.h"

namespace kelpie::controllers {

using nlohmann::json;

std::string MicroTimeNow() { return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", absl::Now(), absl::UTCTimeZone()); }

LeaderElector::LeaderElector(client::RestClient& client, LeaderElectionConfig config)
    : client_(client), config_(std::move(config)) {}

LeaderElector::~LeaderElector() { Stop(); }

void LeaderElector::Start() {
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] { Run(); });
}

void LeaderElector::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::string LeaderElector::ObservedHolder() const {
  std::lock_guard<std::mutex> lock(mu_);
  return observed_holder_;
}

bool LeaderElector::SleepUnlessStopped(std::chrono::milliseconds d) {
  std::unique_lock<std::mutex> lock(mu_);
  return !cv_.wait_for(lock, d, [this] { return stop_.load(); });
}

void LeaderElector::Run() {
  while (!stop_) {
    bool held = TryAcquireOrRenew();
    auto now = std::chrono::steady_clock::now();
    if (held) {
      last_renew_ = now;
      if (!leader_) {
        leader_ = true;
        spdlog::info("leader election {}: {} became leader", config_.lease_name, config_.identity);
        if (config_.on_started_leading) config_.on_started_leading();
      }
    } else if (leader_ && now - last_renew_ > config_.renew_deadline) {
      leader_ = false;
      spdlog::warn("leader election {}: {} lost the lease", config_.lease_name, config_.identity);
      if (config_.on_stopped_leading) config_.on_stopped_leading();
    }
    if (!SleepUnlessStopped(config_.retry_period)) break;
  }
  if (leader_) {
    Release();
    leader_ = false;
    if (config_.on_stopped_leading) config_.on_stopped_leading();
  }
}

bool LeaderElector::TryAcquireOrRenew() {
  const auto& ref = client::resources::kLeases;
  int duration_s = static_cast<int>(std::chrono::duration_cast<std::chrono::seconds>(config_.lease_duration).count());
  std::string now = MicroTimeNow();
  auto lease = client_.Get(ref, config_.lease_namespace, config_.lease_name);
  if (!lease.ok()) {
    if (!client::IsNotFound(lease.status())) return false;
    json obj = {{"apiVersion", "coordination.k8s.io/v1"},
                {"kind", "Lease"},
                {"metadata", {{"name", config_.lease_name}, {"namespace", config_.lease_namespace}}},
                {"spec",
                 {{"holderIdentity", config_.identity},
                  {"leaseDurationSeconds", duration_s},
                  {"acquireTime", now},
                  {"renewTime", now},
                  {"leaseTransitions", 0}}}};
    auto created = client_.Create(ref, config_.lease_namespace, obj);
    if (!created.ok()) return false;
    std::lock_guard<std::mutex> lock(mu_);
    observed_holder_ = config_.identity;
    return true;
  }
  json spec = lease->value("spec", json::object());
  std::string holder = spec.value("holderIdentity", "");
  std::string record = holder + "|" + spec.value("renewTime", "");
  auto local_now = std::chrono::steady_clock::now();
  std::chrono::milliseconds held_for = config_.lease_duration;
  if (spec.contains("leaseDurationSeconds") && spec["leaseDurationSeconds"].is_number_integer()) {
    held_for = std::chrono::seconds(spec["leaseDurationSeconds"].get<int>());
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (record != observed_record_) {
      observed_record_ = record;
      observed_at_ = local_now;
      if (holder != observed_holder_) {
        observed_holder_ = holder;
        if (config_.on_new_leader && !holder.empty()) config_.on_new_leader(holder);
      }
    }
    // Someone else holds a lease that has not expired by our clock.
    if (!holder.empty() && holder != config_.identity && local_now - observed_at_ < held_for) return false;
  }
  json updated = *lease;
  bool transition = holder != config_.identity;
  updated["spec"]["holderIdentity"] = config_.identity;
  updated["spec"]["leaseDurationSeconds"] = duration_s;
  updated["spec"]["renewTime"] = now;
  if (transition) {
    updated["spec"]["acquireTime"] = now;
    updated["spec"]["leaseTransitions"] = spec.value("leaseTransitions", 0) + (holder.empty() ? 0 : 1);
  }
  // The PUT carries the read resourceVersion: a concurrent taker makes it Conflict.
  auto put = client_.Update(ref, config_.lease_namespace, updated);
  if (!put.ok()) return false;
  std::lock_guard<std::mutex> lock(mu_);
  observed_holder_ = config_.identity;
  observed_record_ = config_.identity + "|" + now;
  observed_at_ = local_now;
  return true;
}

void LeaderElector::Release() {
  const auto& ref = client::resources::kLeases;
  auto lease = client_.Get(ref, config_.lease_namespace, config_.lease_name);
  if (!lease.ok()) return;
  if ((*lease)["spec"].value("holderIdentity", "") != config_.identity) return;
  json updated = *lease;
  updated["spec"]["holderIdentity"] = "";
  updated["spec"]["leaseDurationSeconds"] = 1;
  updated["spec"]["renewTime"] = MicroTimeNow();
  auto put = client_.Update(ref, config_.lease_namespace, updated);
  if (!put.ok()) spdlog::warn("leader election {}: release failed: {}", config_.lease_name, put.status().ToString());
}

}  // namespace kelpie::controllers
