#include "orchestrator/scheduler/scheduler.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "orchestrator/client/api_errors.h"
#include "orchestrator/scheduler/plugins.h"
#include "orchestrator/scheduler/preemptor.h"

namespace kelpie::scheduler {

using nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

namespace {

const client::ResourceRef kPriorityClasses{"scheduling.k8s.io", "v1", "priorityclasses", false};

// Priorities of the built-in classes kube-apiserver creates.
constexpr int32_t kSystemClusterCritical = 2000000000;
constexpr int32_t kSystemNodeCritical = 2000001000;

double Seconds(SteadyClock::duration d) { return std::chrono::duration<double>(d).count(); }

// The fields of a Node whose change can make a pending pod fit; status
// heartbeats change none of them.
std::string NodeSchedulingFields(const json& node) {
  auto field = [](const json& obj, const char* a, const char* b) -> std::string {
    if (!obj.is_object() || !obj.contains(a) || !obj[a].is_object() || !obj[a].contains(b)) return "";
    return obj[a][b].dump();
  };
  return absl::StrCat(field(node, "metadata", "labels"), "|", field(node, "spec", "taints"), "|",
                      field(node, "spec", "unschedulable"), "|", field(node, "status", "allocatable"));
}

}  // namespace

// The metrics the issue names, with kube-scheduler's names and labels.
class SchedulerMetrics {
 public:
  explicit SchedulerMetrics(prometheus::Registry& r, const std::string& profile) {
    auto& attempts = prometheus::BuildCounter()
                         .Name("scheduler_schedule_attempts_total")
                         .Help("Number of attempts to schedule pods, by the result.")
                         .Register(r);
    auto& duration = prometheus::BuildHistogram()
                         .Name("scheduler_scheduling_attempt_duration_seconds")
                         .Help("Scheduling attempt latency in seconds (scheduling algorithm + binding).")
                         .Register(r);
    const prometheus::Histogram::BucketBoundaries buckets = {0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01,
                                                             0.02,   0.05,   0.1,   0.2,   0.5,   1,     2, 5, 10};
    for (const char* result : {"scheduled", "unschedulable", "error"}) {
      attempts_[result] = &attempts.Add({{"result", result}, {"profile", profile}});
      durations_[result] = &duration.Add({{"result", result}, {"profile", profile}}, buckets);
    }
    auto& pending = prometheus::BuildGauge()
                        .Name("scheduler_pending_pods")
                        .Help("Number of pending pods, by the queue type.")
                        .Register(r);
    active_ = &pending.Add({{"queue", "active"}});
    backoff_ = &pending.Add({{"queue", "backoff"}});
    unschedulable_ = &pending.Add({{"queue", "unschedulable"}});
    gated_ = &pending.Add({{"queue", "gated"}});
    sli_ = &prometheus::BuildHistogram()
                .Name("scheduler_pod_scheduling_sli_duration_seconds")
                .Help("E2e latency for a pod being scheduled, from the time the pod enters the scheduling queue.")
                .Register(r);
    preemption_ = &prometheus::BuildCounter()
                       .Name("scheduler_preemption_attempts_total")
                       .Help("Total preemption attempts in the cluster till now")
                       .Register(r)
                       .Add({});
  }

  void Attempt(const std::string& result, double seconds) {
    attempts_.at(result)->Increment();
    durations_.at(result)->Observe(seconds);
  }
  void Pending(const SchedulingQueue::Counts& c, size_t gated) {
    active_->Set(static_cast<double>(c.active));
    backoff_->Set(static_cast<double>(c.backoff));
    unschedulable_->Set(static_cast<double>(c.unschedulable));
    gated_->Set(static_cast<double>(gated));
  }
  void Sli(int attempts, double seconds) {
    static const prometheus::Histogram::BucketBoundaries buckets = {0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1,  2,
                                                                    5,    10,   20,   50,  100, 200, 500};
    std::lock_guard lock(mu_);
    // attempts label bounded: 1..15, then "16+"
    std::string label = attempts >= 16 ? "16+" : std::to_string(attempts);
    auto& h = sli_by_attempts_[label];
    if (!h) h = &sli_->Add({{"attempts", label}}, buckets);
    h->Observe(seconds);
  }
  void Preemption() { preemption_->Increment(); }

 private:
  std::map<std::string, prometheus::Counter*> attempts_;
  std::map<std::string, prometheus::Histogram*> durations_;
  prometheus::Gauge* active_;
  prometheus::Gauge* backoff_;
  prometheus::Gauge* unschedulable_;
  prometheus::Gauge* gated_;
  prometheus::Family<prometheus::Histogram>* sli_;
  std::mutex mu_;
  std::map<std::string, prometheus::Histogram*> sli_by_attempts_;
  prometheus::Counter* preemption_;
};

json PodReference(const PodInfo& pod) {
  return json{{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata",
               {{"name", pod.name},
                {"namespace", pod.namespace_name},
                {"uid", pod.uid},
                {"resourceVersion", pod.resource_version}}}};
}

absl::StatusOr<std::unique_ptr<Scheduler>> Scheduler::Create(SchedulerConfig config, SchedulerDeps deps) {
  if (absl::Status s = config.Validate(); !s.ok()) return s;
  std::unique_ptr<Scheduler> s(new Scheduler(std::move(config), std::move(deps)));
  for (int i = 0; i < s->config_.bind_workers; ++i) {
    if (!s->deps_.new_client) break;
    auto c = s->deps_.new_client();
    if (!c.ok()) return c.status();
    s->worker_clients_.push_back(std::move(*c));
  }
  s->RegisterHandlers();
  return s;
}

Scheduler::Scheduler(SchedulerConfig config, SchedulerDeps deps)
    : config_(std::move(config)),
      deps_(std::move(deps)),
      cache_(SteadyClock::now, config_.assumed_pod_ttl),
      queue_(config_.queue),
      algorithm_(std::make_unique<ScheduleAlgorithm>(config_, BuildPlugins(config_))) {
  if (deps_.metrics) metrics_ = std::make_unique<SchedulerMetrics>(*deps_.metrics, config_.scheduler_name);
  if (config_.preemption) preemptor_ = std::make_unique<Preemptor>(*algorithm_);
}

Scheduler::~Scheduler() { Stop(); }

void Scheduler::RegisterHandlers() {
  controllers::EventHandlers pods;
  pods.on_add = [this](const json& p) { OnPod(p); };
  pods.on_update = [this](const json&, const json& p) { OnPod(p); };
  pods.on_delete = [this](const json& p, bool) { OnPodDelete(p); };
  deps_.informers.For(client::resources::kPods).AddEventHandler(std::move(pods));

  controllers::EventHandlers nodes;
  nodes.on_add = [this](const json& n) { OnNode(nullptr, n); };
  nodes.on_update = [this](const json& old_node, const json& n) { OnNode(&old_node, n); };
  nodes.on_delete = [this](const json& n, bool) { OnNodeDelete(n); };
  deps_.informers.For(client::resources::kNodes).AddEventHandler(std::move(nodes));

  controllers::EventHandlers classes;
  classes.on_add = [this](const json& pc) { OnPriorityClass(pc, false); };
  classes.on_update = [this](const json&, const json& pc) { OnPriorityClass(pc, false); };
  classes.on_delete = [this](const json& pc, bool) { OnPriorityClass(pc, true); };
  deps_.informers.For(kPriorityClasses).AddEventHandler(std::move(classes));

  // Namespace labels, for pod affinity terms with a namespaceSelector.
  controllers::EventHandlers namespaces;
  auto set_namespace = [this](const json& ns) {
    Labels labels;
    const json& l = ns["metadata"].value("labels", json::object());
    for (const auto& [k, v] : l.items()) {
      if (v.is_string()) labels[k] = v.get<std::string>();
    }
    cache_.SetNamespaceLabels(ns["metadata"].value("name", ""), std::move(labels));
  };
  namespaces.on_add = set_namespace;
  namespaces.on_update = [set_namespace](const json&, const json& ns) { set_namespace(ns); };
  namespaces.on_delete = [this](const json& ns, bool) { cache_.RemoveNamespace(ns["metadata"].value("name", "")); };
  deps_.informers.For(client::resources::kNamespaces).AddEventHandler(std::move(namespaces));

  // Selectors of Services, ReplicaSets and StatefulSets: the default
  // topology spreading of the pods they select.
  for (const client::ResourceRef* ref :
       {&client::resources::kServices, &client::resources::kReplicaSets, &client::resources::kStatefulSets}) {
    std::string kind = ref->resource;
    controllers::EventHandlers workloads;
    auto set = [this, kind](const json& obj) {
      const json& meta = obj.value("metadata", json::object());
      std::string ns = meta.value("namespace", "default");
      std::string id = kind + "/" + meta.value("name", "");
      LabelSelector selector;
      const json spec = obj.value("spec", json::object());
      const json sel = spec.value("selector", json());
      if (sel.is_object()) {
        // Services carry a plain label map; workloads a LabelSelector.
        bool label_selector = sel.contains("matchLabels") || sel.contains("matchExpressions");
        const json labels = label_selector ? sel.value("matchLabels", json::object()) : sel;
        for (const auto& [k, v] : labels.items()) {
          if (v.is_string()) selector.requirements.push_back({k, SelectorRequirement::Op::kIn, {v.get<std::string>()}});
        }
      }
      if (selector.requirements.empty()) {
        cache_.RemoveWorkloadSelector(ns, id);
      } else {
        cache_.SetWorkloadSelector(ns, id, std::move(selector));
      }
    };
    workloads.on_add = set;
    workloads.on_update = [set](const json&, const json& obj) { set(obj); };
    workloads.on_delete = [this, kind](const json& obj, bool) {
      const json& meta = obj.value("metadata", json::object());
      cache_.RemoveWorkloadSelector(meta.value("namespace", "default"), kind + "/" + meta.value("name", ""));
    };
    deps_.informers.For(*ref).AddEventHandler(std::move(workloads));
  }
}

void Scheduler::ResolvePriority(PodInfo& pod) const {
  if (pod.priority) return;
  std::lock_guard lock(priority_mu_);
  std::string name = pod.priority_class_name;
  if (name.empty()) name = global_default_class_;
  if (name.empty()) return;
  if (auto it = priority_classes_.find(name); it != priority_classes_.end()) {
    pod.priority = it->second;
  } else if (name == "system-cluster-critical") {
    pod.priority = kSystemClusterCritical;
  } else if (name == "system-node-critical") {
    pod.priority = kSystemNodeCritical;
  }
}

void Scheduler::OnPriorityClass(const json& pc, bool deleted) {
  std::lock_guard lock(priority_mu_);
  std::string name = pc["metadata"].value("name", "");
  if (deleted) {
    priority_classes_.erase(name);
    if (global_default_class_ == name) global_default_class_.clear();
    return;
  }
  const json& value = pc.contains("value") ? pc["value"] : json();
  priority_classes_[name] = value.is_number_integer() ? value.get<int32_t>() : 0;
  if (pc.value("globalDefault", false)) {
    global_default_class_ = name;
  } else if (global_default_class_ == name) {
    global_default_class_.clear();
  }
}

void Scheduler::OnPod(const json& obj) {
  auto decoded = DecodePod(obj);
  if (!decoded.ok()) {
    spdlog::warn("scheduler: skipping pod: {}", decoded.status().message());
    return;
  }
  PodInfo pod = std::move(*decoded);
  ResolvePriority(pod);
  std::string key = pod.Key();
  bool finished = pod.phase == "Succeeded" || pod.phase == "Failed";
  if (!pod.node_name.empty()) {
    // Bound (by us or anyone): it holds resources on its node until it
    // finishes or is deleted.
    queue_.Delete(key);
    {
      std::lock_guard lock(gated_mu_);
      gated_.erase(key);
    }
    if (finished) {
      cache_.RemovePod(key);
      queue_.MoveAllToActiveOrBackoff();
    } else {
      cache_.AddOrUpdatePod(std::move(pod));
    }
    return;
  }
  bool ours = pod.scheduler_name == config_.scheduler_name && !finished && !pod.terminating;
  {
    std::lock_guard lock(gated_mu_);
    if (ours && pod.scheduling_gated) {
      gated_.insert(key);
    } else {
      gated_.erase(key);
    }
  }
  if (!ours || pod.scheduling_gated) {
    queue_.Delete(key);
    return;
  }
  queue_.Update(std::make_shared<const PodInfo>(std::move(pod)));
}

void Scheduler::OnPodDelete(const json& obj) {
  std::string key = controllers::ObjectKey(obj);
  queue_.Delete(key);
  {
    std::lock_guard lock(gated_mu_);
    gated_.erase(key);
  }
  if (cache_.IsAssumed(key) || (obj.contains("spec") && !obj["spec"].value("nodeName", "").empty())) {
    cache_.RemovePod(key);
    // Freed resources, ports and spread/affinity domains may let pending pods fit.
    queue_.MoveAllToActiveOrBackoff();
  }
}

void Scheduler::OnNode(const json* old_node, const json& obj) {
  if (old_node && NodeSchedulingFields(*old_node) == NodeSchedulingFields(obj)) {
    // Heartbeats: keep the cache's copy current (images) without waking pods.
    auto decoded = DecodeNode(obj);
    if (decoded.ok()) cache_.AddOrUpdateNode(std::move(*decoded));
    return;
  }
  auto decoded = DecodeNode(obj);
  if (!decoded.ok()) {
    spdlog::warn("scheduler: skipping node: {}", decoded.status().message());
    return;
  }
  cache_.AddOrUpdateNode(std::move(*decoded));
  queue_.MoveAllToActiveOrBackoff();
}

void Scheduler::OnNodeDelete(const json& obj) { cache_.RemoveNode(obj["metadata"].value("name", "")); }

void Scheduler::Run() {
  if (running_) return;
  running_ = true;
  if (worker_clients_.empty()) {
    for (int i = 0; i < config_.bind_workers; ++i) workers_.emplace_back([this] { AsyncWorker(&deps_.client); });
  } else {
    for (auto& c : worker_clients_) workers_.emplace_back([this, cl = c.get()] { AsyncWorker(cl); });
  }
  schedule_thread_ = std::thread([this] { ScheduleLoop(); });
  housekeeping_thread_ = std::thread([this] { Housekeeping(); });
}

void Scheduler::Stop() {
  if (stopped_.exchange(true)) return;
  queue_.Close();
  housekeeping_cv_.notify_all();
  jobs_cv_.notify_all();
  if (schedule_thread_.joinable()) schedule_thread_.join();
  if (housekeeping_thread_.joinable()) housekeeping_thread_.join();
  for (auto& t : workers_) t.join();
  workers_.clear();
}

void Scheduler::EnqueueAsync(std::function<void(client::RestClient&)> job) {
  {
    std::lock_guard lock(jobs_mu_);
    jobs_.push_back(std::move(job));
  }
  jobs_cv_.notify_one();
}

void Scheduler::AsyncWorker(client::RestClient* client) {
  for (;;) {
    std::function<void(client::RestClient&)> job;
    {
      std::unique_lock lock(jobs_mu_);
      jobs_cv_.wait(lock, [&] { return stopped_.load() || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopped and drained
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job(*client);
  }
}

void Scheduler::Housekeeping() {
  while (!stopped_.load()) {
    {
      std::unique_lock lock(housekeeping_mu_);
      housekeeping_cv_.wait_for(lock, std::chrono::milliseconds(200), [&] { return stopped_.load(); });
    }
    if (stopped_.load()) return;
    queue_.FlushBackoffCompleted();
    queue_.FlushUnschedulableLeftover();
    cache_.CleanupExpiredAssumedPods();
    if (metrics_) {
      size_t gated = 0;
      {
        std::lock_guard lock(gated_mu_);
        gated = gated_.size();
      }
      metrics_->Pending(queue_.Pending(), gated);
    }
  }
}

void Scheduler::ScheduleLoop() {
  while (!stopped_.load()) {
    auto queued = queue_.Pop(std::chrono::milliseconds(500));
    if (!queued) continue;
    ScheduleOne(std::move(*queued));
  }
}

void Scheduler::ScheduleOne(QueuedPod queued) {
  const auto start = SteadyClock::now();
  const PodInfo& pod = *queued.pod;
  const std::string key = pod.Key();
  // Already assumed or bound (an update queued it again meanwhile).
  if (cache_.Contains(key)) {
    queue_.Done(key);
    return;
  }
  ScheduleOutcome outcome = algorithm_->Schedule(pod, cache_);
  if (outcome.kind != ScheduleOutcome::Kind::kScheduled) {
    HandleUnschedulable(std::move(queued), outcome, start);
    return;
  }
  PodInfo assumed = pod;
  assumed.node_name = outcome.node;
  if (absl::Status s = cache_.AssumePod(std::move(assumed)); !s.ok()) {
    spdlog::warn("scheduler: assuming {} on {}: {}", key, outcome.node, s.message());
    if (metrics_) metrics_->Attempt("error", Seconds(SteadyClock::now() - start));
    queue_.AddBackoff(std::move(queued));
    return;
  }
  queue_.Done(key);
  EnqueueAsync([this, queued = std::move(queued), node = outcome.node, start](client::RestClient& c) mutable {
    Bind(c, std::move(queued), std::move(node), start);
  });
}

void Scheduler::Bind(client::RestClient& client, QueuedPod queued, std::string node, SteadyClock::time_point start) {
  const PodInfo& pod = *queued.pod;
  const std::string key = pod.Key();
  json binding = {{"apiVersion", "v1"},
                  {"kind", "Binding"},
                  {"metadata", {{"name", pod.name}, {"namespace", pod.namespace_name}, {"uid", pod.uid}}},
                  {"target", {{"apiVersion", "v1"}, {"kind", "Node"}, {"name", node}}}};
  auto result = client.Request("POST", client::resources::kPods.Path(pod.namespace_name, pod.name, "binding"),
                               "application/json", binding.dump());
  if (!result.ok()) {
    cache_.ForgetPod(key);
    if (metrics_) metrics_->Attempt("error", Seconds(SteadyClock::now() - start));
    if (client::IsNotFound(result.status()) || client::IsConflict(result.status())) {
      // Deleted, being deleted, or bound by someone else: nothing to retry;
      // the informer brings the final state.
      spdlog::debug("scheduler: binding {} to {}: {}", key, node, result.status().message());
      return;
    }
    spdlog::warn("scheduler: binding {} to {}: {}", key, node, result.status().message());
    deps_.recorder.Event(PodReference(pod), controllers::EventType::kWarning, "FailedScheduling",
                         absl::StrCat("Binding rejected: ", result.status().message()));
    queue_.AddBackoff(std::move(queued));
    return;
  }
  cache_.FinishBinding(key);
  bound_.fetch_add(1);
  auto now = SteadyClock::now();
  if (metrics_) {
    metrics_->Attempt("scheduled", Seconds(now - start));
    metrics_->Sli(queued.attempts, Seconds(now - queued.initial_attempt));
  }
  deps_.recorder.Event(PodReference(pod), controllers::EventType::kNormal, "Scheduled",
                       absl::StrCat("Successfully assigned ", key, " to ", node));
}

void Scheduler::HandleUnschedulable(QueuedPod queued, const ScheduleOutcome& outcome, SteadyClock::time_point start) {
  const PodInfo& pod = *queued.pod;
  Diagnosis diagnosis = outcome.diagnosis;
  std::string nominate;
  std::vector<std::shared_ptr<const PodInfo>> victims;
  if (preemptor_ && outcome.kind == ScheduleOutcome::Kind::kUnschedulable) {
    if (metrics_) metrics_->Preemption();
    PreemptionResult pr = preemptor_->Preempt(pod, cache_, diagnosis);
    if (pr.node.empty()) {
      diagnosis.post_filter_message = pr.message;
    } else {
      nominate = pr.node;
      victims = std::move(pr.victims);
    }
  }
  std::string message = outcome.kind == ScheduleOutcome::Kind::kNoNodes
                            ? "no nodes available to schedule pods"
                            : FitErrorMessage(outcome.num_all_nodes, diagnosis);
  if (metrics_) metrics_->Attempt("unschedulable", Seconds(SteadyClock::now() - start));
  auto pod_ptr = queued.pod;
  queue_.AddUnschedulable(std::move(queued));
  EnqueueAsync([this, pod_ptr, message, nominate, victims](client::RestClient& c) {
    const PodInfo& p = *pod_ptr;
    for (const auto& v : victims) {
      client::DeleteOptions opts;
      opts.precondition_uid = v->uid;  // graceful: the victim's own grace period
      auto d = c.Delete(client::resources::kPods, v->namespace_name, v->name, opts);
      if (!d.ok() && !client::IsNotFound(d.status())) {
        spdlog::warn("scheduler: preempting {}: {}", v->Key(), d.status().message());
        continue;
      }
      deps_.recorder.Event(PodReference(*v), controllers::EventType::kNormal, "Preempted",
                           absl::StrCat("Preempted by pod ", p.uid, " on node ", nominate));
    }
    json status = json::object();
    if (!nominate.empty() || !p.nominated_node_name.empty()) {
      status["nominatedNodeName"] = nominate.empty() ? json() : json(nominate);
    }
    if (p.unschedulable_message != message) {
      status["conditions"] = json::array({json{{"type", "PodScheduled"},
                                               {"status", "False"},
                                               {"reason", "Unschedulable"},
                                               {"message", message},
                                               {"lastProbeTime", nullptr}}});
    }
    if (!status.empty()) {
      auto r = c.Patch(client::resources::kPods, p.namespace_name, p.name, client::PatchType::kStrategicMerge,
                       json{{"status", status}}, "status");
      if (!r.ok() && !client::IsNotFound(r.status())) {
        spdlog::warn("scheduler: updating the status of {}: {}", p.Key(), r.status().message());
      }
    }
    deps_.recorder.Event(PodReference(p), controllers::EventType::kWarning, "FailedScheduling", message);
  });
}

}  // namespace kelpie::scheduler
