#include "orchestrator/controllers/workloads/job_controller.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "orchestrator/api/selector.h"
#include "orchestrator/client/api_errors.h"
#include "orchestrator/controllers/workloads/replica_set_controller.h"
#include "orchestrator/controllers/workloads/workload_util.h"

namespace kelpie::controllers::workloads {

using nlohmann::json;
namespace res = client::resources;

std::chrono::seconds JobBackoff(int64_t failures) {
  if (failures <= 0) return std::chrono::seconds(0);
  int64_t s = 10;
  for (int64_t i = 1; i < failures && s < 360; ++i) s *= 2;
  return std::chrono::seconds(std::min<int64_t>(s, 360));
}

JobController::JobController(ControllerContext& ctx)
    : ctx_(ctx),
      jobs_(ctx.informers.For(res::kJobs)),
      pods_(ctx.informers.For(res::kPods)),
      pod_refs_(ctx.client, res::kPods, pods_),
      worker_("job", ctx.metrics, ctx.clock, [this](const std::string& key) { return Sync(key); }) {
  jobs_.AddEventHandler({
      .on_add = [this](const json& j) { worker_.queue().Add(ObjectKey(j)); },
      .on_update = [this](const json&, const json& j) { worker_.queue().Add(ObjectKey(j)); },
      .on_delete =
          [this](const json& j, bool) {
            expectations_.Delete(ObjectKey(j));
            worker_.queue().Add(ObjectKey(j));
          },
  });
  pods_.AddEventHandler({
      .on_add = [this](const json& pod) { OnPod(pod, IsPodDeleting(pod), true); },
      .on_update =
          [this](const json& old_pod, const json& pod) {
            if (StringAt(old_pod, "/metadata/resourceVersion") == StringAt(pod, "/metadata/resourceVersion")) return;
            // A graceful deletion counts as the deletion for expectations.
            OnPod(pod, IsPodDeleting(pod) && !IsPodDeleting(old_pod), false);
          },
      .on_delete = [this](const json& pod, bool) { OnPod(pod, true, false); },
  });
}

std::string JobController::JobKeyOf(const json& pod) const {
  json ref = ControllerRefOf(pod);
  if (!ref.is_object() || ref.value("kind", "") != "Job") return "";
  std::string key = ObjectKey(StringAt(pod, "/metadata/namespace"), ref.value("name", ""));
  auto job = jobs_.store().Get(key);
  if (!job || StringAt(*job, "/metadata/uid") != ref.value("uid", "")) return "";
  return key;
}

void JobController::OnPod(const json& pod, bool deleted, bool added) {
  std::string key = JobKeyOf(pod);
  if (key.empty()) return;
  if (added) expectations_.CreationObserved(key);
  if (deleted) expectations_.DeletionObserved(key, ObjectKey(pod));
  worker_.queue().Add(key);
}

namespace {

const json* FindCondition(const json& job, const std::string& type) {
  const json::json_pointer p("/status/conditions");
  if (!job.contains(p) || !job.at(p).is_array()) return nullptr;
  for (const json& c : job.at(p)) {
    if (c.value("type", "") == type) return &c;
  }
  return nullptr;
}

bool IsFinished(const json& job) {
  for (const char* type : {"Complete", "Failed"}) {
    const json* c = FindCondition(job, type);
    if (c != nullptr && c->value("status", "") == "True") return true;
  }
  return false;
}

json Condition(const std::string& type, const std::string& reason, const std::string& message, const std::string& now) {
  return {{"type", type}, {"status", "True"}, {"lastProbeTime", now}, {"lastTransitionTime", now},
          {"reason", reason}, {"message", message}};
}

json PodFromJob(const json& job) {
  const json tmpl = job["spec"].value("template", json::object());
  const json tmeta = tmpl.value("metadata", json::object());
  json labels = tmeta.value("labels", json::object());
  const std::string name = StringAt(job, "/metadata/name");
  const std::string uid = StringAt(job, "/metadata/uid");
  labels["batch.kubernetes.io/job-name"] = name;
  labels["job-name"] = name;
  labels["batch.kubernetes.io/controller-uid"] = uid;
  labels["controller-uid"] = uid;
  json meta = {{"generateName", name + "-"},
               {"namespace", StringAt(job, "/metadata/namespace")},
               {"labels", labels},
               {"ownerReferences", json::array({MakeControllerRef(job, "batch/v1", "Job")})}};
  if (tmeta.contains("annotations")) meta["annotations"] = tmeta["annotations"];
  json spec = tmpl.value("spec", json::object());
  if (!spec.contains("restartPolicy")) spec["restartPolicy"] = "Never";
  return {{"apiVersion", "v1"}, {"kind", "Pod"}, {"metadata", meta}, {"spec", spec}};
}

}  // namespace

absl::Status JobController::DeletePods(const std::string& key, const json& job, const std::vector<json>& pods) {
  if (pods.empty()) return absl::OkStatus();
  std::vector<std::string> keys;
  for (const json& p : pods) keys.push_back(ObjectKey(p));
  expectations_.ExpectDeletions(key, keys);
  absl::Status first;
  for (size_t i = 0; i < pods.size(); ++i) {
    const std::string name = StringAt(pods[i], "/metadata/name");
    auto d = ctx_.client.Delete(res::kPods, StringAt(job, "/metadata/namespace"), name,
                                {.precondition_uid = StringAt(pods[i], "/metadata/uid")});
    if (d.ok()) {
      ctx_.recorder.Event(job, EventType::kNormal, "SuccessfulDelete", absl::StrCat("Deleted pod: ", name));
      continue;
    }
    expectations_.DeletionObserved(key, keys[i]);
    if (!client::IsNotFound(d.status()) && first.ok()) first = d.status();
  }
  return first;
}

absl::Status JobController::SyncFinished(const std::string& key, const json& job) {
  if (!job["spec"].contains("ttlSecondsAfterFinished") || !job["spec"]["ttlSecondsAfterFinished"].is_number()) {
    return absl::OkStatus();
  }
  const int64_t ttl = job["spec"]["ttlSecondsAfterFinished"].get<int64_t>();
  std::optional<WallTime> finished = ParseTime(StringAt(job, "/status/completionTime"));
  if (!finished) {
    for (const char* type : {"Complete", "Failed"}) {
      const json* c = FindCondition(job, type);
      if (c != nullptr && c->value("status", "") == "True") finished = ParseTime(c->value("lastTransitionTime", ""));
    }
  }
  if (!finished) return absl::OkStatus();
  const auto expire = *finished + std::chrono::seconds(ttl);
  const auto now = std::chrono::system_clock::now();
  if (now < expire) {
    worker_.queue().AddAfter(key, std::chrono::duration_cast<Duration>(expire - now) + std::chrono::seconds(1));
    return absl::OkStatus();
  }
  // Foreground: the Job stays until its pods are gone (as the
  // TTL-after-finished controller deletes).
  auto d = ctx_.client.Delete(res::kJobs, StringAt(job, "/metadata/namespace"), StringAt(job, "/metadata/name"),
                              {.propagation_policy = "Foreground", .precondition_uid = StringAt(job, "/metadata/uid")});
  if (!d.ok() && !client::IsNotFound(d.status())) return d.status();
  return absl::OkStatus();
}

absl::StatusOr<std::vector<json>> JobController::ClaimPods(const json& job) {
  // Without spec.selector the Job selects what Kubernetes generates for it
  // (manualSelector unset): its controller-uid label, which its pods carry.
  json selector_json = job["spec"].value("selector", json());
  if (!selector_json.is_object() || selector_json.empty()) {
    selector_json = {{"matchLabels", {{"batch.kubernetes.io/controller-uid", StringAt(job, "/metadata/uid")}}}};
  }
  auto selector = api::LabelSelector::FromJson(selector_json);
  if (!selector.ok()) return selector.status();
  return pod_refs_.Claim({job, "batch/v1", "Job"}, *selector);
}

absl::Status JobController::Sync(const std::string& key) {
  auto cached = jobs_.store().Get(key);
  if (!cached) {
    expectations_.Delete(key);
    return absl::OkStatus();
  }
  const json& job = *cached;
  if (IsDeleting(job)) return absl::OkStatus();
  if (IsFinished(job)) return SyncFinished(key, job);
  const std::string ns = StringAt(job, "/metadata/namespace");
  const auto now = std::chrono::system_clock::now();
  const std::string now_text = FormatTime(now);

  std::vector<json> active;
  int64_t succeeded = 0, failed = 0, ready = 0;
  std::string last_failure;
  KELPIE_ASSIGN_OR_RETURN(std::vector<json> pods, ClaimPods(job));
  for (json& p : pods) {
    const std::string phase = StringAt(p, "/status/phase");
    if (phase == "Succeeded") {
      ++succeeded;
    } else if (phase == "Failed") {
      ++failed;
      last_failure = std::max(last_failure, StringAt(p, "/metadata/creationTimestamp"));
    } else if (!IsPodDeleting(p)) {
      if (IsPodReady(p)) ++ready;
      active.push_back(std::move(p));
    }
  }
  // Counts never go down even if finished pods are removed.
  succeeded = std::max(succeeded, IntAt(job, "/status/succeeded"));
  failed = std::max(failed, IntAt(job, "/status/failed"));

  json status = job.value("status", json::object());
  if (!status.contains("startTime")) status["startTime"] = now_text;
  const auto start = ParseTime(status["startTime"].get<std::string>()).value_or(now);
  const int64_t parallelism = IntAt(job, "/spec/parallelism", 1);
  const bool has_completions = job["spec"].contains("completions") && job["spec"]["completions"].is_number();
  const int64_t completions = has_completions ? job["spec"]["completions"].get<int64_t>() : 0;
  const int64_t backoff_limit = IntAt(job, "/spec/backoffLimit", 6);
  const bool has_deadline = job["spec"].contains("activeDeadlineSeconds") && job["spec"]["activeDeadlineSeconds"].is_number();

  std::string fail_reason, fail_message;
  if (failed > backoff_limit) {
    fail_reason = "BackoffLimitExceeded";
    fail_message = "Job has reached the specified backoff limit";
  } else if (has_deadline &&
             start + std::chrono::seconds(job["spec"]["activeDeadlineSeconds"].get<int64_t>()) <= now) {
    fail_reason = "DeadlineExceeded";
    fail_message = "Job was active longer than specified deadline";
  }
  const bool complete = fail_reason.empty() && (has_completions ? succeeded >= completions
                                                                 : succeeded > 0 && active.empty());
  absl::Status manage;
  if (!fail_reason.empty()) {
    manage = DeletePods(key, job, active);
    status["conditions"] = json::array({Condition("Failed", fail_reason, fail_message, now_text)});
    ctx_.recorder.Event(job, EventType::kWarning, fail_reason, fail_message);
    active.clear();
    ready = 0;
  } else if (complete) {
    // Extra pods of a Job with completions are no longer needed.
    manage = DeletePods(key, job, active);
    status["conditions"] = json::array({Condition("Complete", "", "", now_text)});
    status["conditions"][0].erase("reason");
    status["conditions"][0].erase("message");
    status["completionTime"] = now_text;
    ctx_.recorder.Event(job, EventType::kNormal, "Completed", "Job completed");
    active.clear();
    ready = 0;
  } else if (expectations_.Satisfied(key)) {
    int64_t want = has_completions ? std::min(parallelism, completions - succeeded)
                                   : (succeeded > 0 ? 0 : parallelism);
    want = std::max<int64_t>(want, 0);
    const int64_t have = static_cast<int64_t>(active.size());
    if (have > want) {
      std::vector<size_t> order = RankPodsForDeletion(active);
      std::vector<json> extra;
      for (int64_t i = 0; i < have - want; ++i) extra.push_back(active[order[i]]);
      manage = DeletePods(key, job, extra);
    } else if (have < want) {
      // Back off after failures, counted from the newest failed pod.
      std::chrono::seconds backoff = JobBackoff(failed);
      auto last = ParseTime(last_failure);
      if (failed > 0 && last && *last + backoff > now) {
        worker_.queue().AddAfter(key, std::chrono::duration_cast<Duration>(*last + backoff - now));
      } else {
        const int n = static_cast<int>(std::min<int64_t>(want - have, kBurstReplicas));
        expectations_.ExpectCreations(key, n);
        const json pod = PodFromJob(job);
        BatchResult r = SlowStartBatch(n, 1, 16, [&]() -> absl::Status {
          auto created = ctx_.client.Create(res::kPods, ns, pod);
          if (!created.ok()) {
            ctx_.recorder.Event(job, EventType::kWarning, "FailedCreate",
                                absl::StrCat("Error creating: ", created.status().message()));
            return created.status();
          }
          ctx_.recorder.Event(job, EventType::kNormal, "SuccessfulCreate",
                              absl::StrCat("Created pod: ", StringAt(*created, "/metadata/name")));
          return absl::OkStatus();
        });
        for (int i = r.succeeded; i < n; ++i) expectations_.CreationSkipped(key);
        manage = r.first_error;
        for (int i = 0; i < r.succeeded; ++i) active.push_back(json::object());
      }
    }
  }
  status["active"] = static_cast<int64_t>(active.size());
  status["ready"] = ready;
  status["succeeded"] = succeeded;
  status["failed"] = failed;
  if (has_deadline && fail_reason.empty() && !complete) {
    auto end = start + std::chrono::seconds(job["spec"]["activeDeadlineSeconds"].get<int64_t>());
    worker_.queue().AddAfter(key, std::chrono::duration_cast<Duration>(end - now) + std::chrono::seconds(1));
  }
  if (status != job.value("status", json::object())) {
    json next = job;
    next["status"] = status;
    auto w = ctx_.client.UpdateStatus(res::kJobs, ns, next);
    if (!w.ok() && !client::IsNotFound(w.status())) return w.status();
  }
  return manage;
}

}  // namespace kelpie::controllers::workloads
