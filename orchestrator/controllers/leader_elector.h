// Leader election over a coordination.k8s.io/v1 Lease, as client-go's
// leaderelection: the holder renews spec.renewTime every retry period; others
// take the lease over once it has not changed for leaseDurationSeconds (by
// their own clock, since they saw it change); a leader that cannot renew
// within renew_deadline stops leading. Stop() releases a held lease.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "orchestrator/client/rest_client.h"

namespace kelpie::controllers {

struct LeaderElectionConfig {
  std::string lease_namespace = "kube-system";
  std::string lease_name;
  std::string identity;
  std::chrono::milliseconds lease_duration{15000};
  std::chrono::milliseconds renew_deadline{10000};
  std::chrono::milliseconds retry_period{2000};
  // Called on the elector's thread.
  std::function<void()> on_started_leading;
  std::function<void()> on_stopped_leading;
  std::function<void(const std::string& holder)> on_new_leader;
};

class LeaderElector {
 public:
  LeaderElector(client::RestClient& client, LeaderElectionConfig config);
  ~LeaderElector();
  LeaderElector(const LeaderElector&) = delete;
  LeaderElector& operator=(const LeaderElector&) = delete;

  void Start();
  // Stops; a leader releases the lease (empty holder) so another can take
  // over at once, and on_stopped_leading runs.
  void Stop();
  bool IsLeader() const { return leader_.load(); }
  std::string ObservedHolder() const;

 private:
  void Run();
  // One acquire-or-renew attempt: true when we hold the lease afterwards.
  bool TryAcquireOrRenew();
  void Release();
  bool SleepUnlessStopped(std::chrono::milliseconds d);

  client::RestClient& client_;
  const LeaderElectionConfig config_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> leader_{false};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string observed_holder_;
  std::string observed_record_;  // holder + renewTime, to notice changes
  std::chrono::steady_clock::time_point observed_at_;
  std::chrono::steady_clock::time_point last_renew_;
};

// The Lease time format: RFC 3339 with microseconds.
std::string MicroTimeNow();

}  // namespace kelpie::controllers
