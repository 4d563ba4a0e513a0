// The scheduler: watches pods, nodes, namespaces and PriorityClasses through
// shared informers, keeps the node cache and the scheduling queue current,
// and places each pending pod of its schedulerName: one scheduling thread
// decides (filters and scores run on a small worker pool) and assumes the pod
// onto the node, binding workers post pods/binding concurrently. Pods that do
// not fit get PodScheduled=False/Unschedulable with kube-scheduler's message
// and a FailedScheduling event; bound pods a Scheduled event. With preemption
// on, a pod that fits nowhere evicts the fewest lower-priority pods of one
// node (graceful deletion) and records status.nominatedNodeName.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "absl/status/statusor.h"
#include "orchestrator/client/rest_client.h"
#include "orchestrator/controllers/event_recorder.h"
#include "orchestrator/controllers/informer_factory.h"
#include "orchestrator/scheduler/schedule_algorithm.h"
#include "orchestrator/scheduler/scheduler_cache.h"
#include "orchestrator/scheduler/scheduler_config.h"
#include "orchestrator/scheduler/scheduling_queue.h"

namespace prometheus {
class Registry;
}

namespace kelpie::scheduler {

struct SchedulerDeps {
  client::RestClient& client;  // informers' client; status patches and deletions
  controllers::SharedInformerFactory& informers;
  controllers::EventRecorder& recorder;
  prometheus::Registry* metrics = nullptr;  // null: no metrics
  // One client per binding worker, so bindings travel on parallel
  // connections (one client serializes its requests). Null: bind with `client`.
  std::function<absl::StatusOr<std::unique_ptr<client::RestClient>>()> new_client;
};

class SchedulerMetrics;
class Preemptor;

class Scheduler {
 public:
  // Registers the informer handlers; start the factory afterwards, wait for
  // it to sync, then Run().
  static absl::StatusOr<std::unique_ptr<Scheduler>> Create(SchedulerConfig config, SchedulerDeps deps);
  ~Scheduler();

  void Run();
  // Stops the threads; idempotent.
  void Stop();

  const SchedulerCache& cache() const { return cache_; }
  const SchedulingQueue& queue() const { return queue_; }
  const SchedulerConfig& config() const { return config_; }
  // Bindings the API server accepted since Run().
  uint64_t bound_count() const { return bound_.load(); }

 private:
  Scheduler(SchedulerConfig config, SchedulerDeps deps);
  void RegisterHandlers();

  // Informer events.
  void OnPod(const nlohmann::json& pod);
  void OnPodDelete(const nlohmann::json& pod);
  void OnNode(const nlohmann::json* old_node, const nlohmann::json& node);
  void OnNodeDelete(const nlohmann::json& node);
  void OnPriorityClass(const nlohmann::json& pc, bool deleted);
  // spec.priority, or the value of its PriorityClass (or of the global default).
  void ResolvePriority(PodInfo& pod) const;

  void ScheduleLoop();
  void ScheduleOne(QueuedPod queued);
  void HandleUnschedulable(QueuedPod queued, const ScheduleOutcome& outcome, std::chrono::steady_clock::time_point start);
  void Bind(client::RestClient& client, QueuedPod queued, std::string node, std::chrono::steady_clock::time_point start);
  void Housekeeping();

  void EnqueueAsync(std::function<void(client::RestClient&)> job);
  void AsyncWorker(client::RestClient* client);

  SchedulerConfig config_;
  SchedulerDeps deps_;
  SchedulerCache cache_;
  SchedulingQueue queue_;
  std::unique_ptr<ScheduleAlgorithm> algorithm_;
  std::unique_ptr<SchedulerMetrics> metrics_;
  std::unique_ptr<Preemptor> preemptor_;

  // Pending pods of ours held back by spec.schedulingGates (for the metric).
  std::mutex gated_mu_;
  std::set<std::string> gated_;

  mutable std::mutex priority_mu_;
  std::map<std::string, int32_t> priority_classes_;
  std::string global_default_class_;

  std::atomic<bool> stopped_{false};
  std::atomic<uint64_t> bound_{0};
  bool running_ = false;
  std::thread schedule_thread_;
  std::thread housekeeping_thread_;
  std::mutex housekeeping_mu_;
  std::condition_variable housekeeping_cv_;

  // Bindings, status patches, events and evictions run here, off the
  // scheduling thread.
  std::vector<std::unique_ptr<client::RestClient>> worker_clients_;
  std::vector<std::thread> workers_;
  std::mutex jobs_mu_;
  std::condition_variable jobs_cv_;
  std::deque<std::function<void(client::RestClient&)>> jobs_;
};

// Builds the Event's involvedObject document for a pod.
nlohmann::json PodReference(const PodInfo& pod);

}  // namespace kelpie::scheduler
