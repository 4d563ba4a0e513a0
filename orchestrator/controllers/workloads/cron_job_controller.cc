#include "orchestrator/controllers/workloads/cron_job_controller.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "orchestrator/client/api_errors.h"
#include "orchestrator/controllers/workloads/cron_schedule.h"
#include "orchestrator/controllers/workloads/replica_set_controller.h"
#include "orchestrator/controllers/workloads/workload_util.h"

namespace kelpie::controllers::workloads {

using nlohmann::json;
namespace res = client::resources;

namespace {

// "Complete" or "Failed" when the Job finished, else "".
std::string FinishedAs(const json& job) {
  const json::json_pointer p("/status/conditions");
  if (!job.contains(p) || !job.at(p).is_array()) return "";
  for (const json& c : job.at(p)) {
    const std::string type = c.value("type", "");
    if ((type == "Complete" || type == "Failed") && c.value("status", "") == "True") return type;
  }
  return "";
}

json JobRef(const json& job) {
  return {{"apiVersion", "batch/v1"},
          {"kind", "Job"},
          {"name", StringAt(job, "/metadata/name")},
          {"namespace", StringAt(job, "/metadata/namespace")},
          {"uid", StringAt(job, "/metadata/uid")},
          {"resourceVersion", StringAt(job, "/metadata/resourceVersion")}};
}

}  // namespace

CronJobController::CronJobController(ControllerContext& ctx)
    : ctx_(ctx),
      cron_jobs_(ctx.informers.For(res::kCronJobs)),
      jobs_(ctx.informers.For(res::kJobs)),
      worker_("cronjob", ctx.metrics, ctx.clock, [this](const std::string& key) { return Sync(key); }) {
  jobs_.AddIndexer(kControllerUidIndex, ControllerUidIndex);
  cron_jobs_.AddEventHandler({
      .on_add = [this](const json& cj) { worker_.queue().Add(ObjectKey(cj)); },
      .on_update = [this](const json&, const json& cj) { worker_.queue().Add(ObjectKey(cj)); },
      .on_delete = [this](const json& cj, bool) { worker_.queue().Add(ObjectKey(cj)); },
  });
  auto on_job = [this](const json& job) {
    std::string key = KeyOf(job);
    if (!key.empty()) worker_.queue().Add(key);
  };
  jobs_.AddEventHandler({
      .on_add = on_job,
      .on_update = [on_job](const json&, const json& job) { on_job(job); },
      .on_delete = [on_job](const json& job, bool) { on_job(job); },
  });
}

std::string CronJobController::KeyOf(const json& job) const {
  json ref = ControllerRefOf(job);
  if (!ref.is_object() || ref.value("kind", "") != "CronJob") return "";
  std::string key = ObjectKey(StringAt(job, "/metadata/namespace"), ref.value("name", ""));
  auto cj = cron_jobs_.store().Get(key);
  if (!cj || StringAt(*cj, "/metadata/uid") != ref.value("uid", "")) return "";
  return key;
}

absl::Status CronJobController::Sync(const std::string& key) {
  auto cached = cron_jobs_.store().Get(key);
  if (!cached) return absl::OkStatus();
  const json& cj = *cached;
  if (IsDeleting(cj)) return absl::OkStatus();
  const std::string ns = StringAt(cj, "/metadata/namespace");
  const std::string name = StringAt(cj, "/metadata/name");
  const auto now = std::chrono::system_clock::now();

  std::vector<json> jobs = jobs_.store().ByIndex(kControllerUidIndex, StringAt(cj, "/metadata/uid"));
  std::erase_if(jobs, [&](const json& j) { return StringAt(j, "/metadata/namespace") != ns || IsDeleting(j); });
  std::vector<json> active, succeeded, failed;
  for (json& j : jobs) {
    const std::string f = FinishedAs(j);
    if (f.empty()) {
      active.push_back(j);
    } else {
      (f == "Complete" ? succeeded : failed).push_back(j);
    }
  }
  json status = cj.value("status", json::object());
  absl::Status result;

  // History limits: oldest finished Jobs beyond the limit go.
  auto by_start = [](const json& a, const json& b) {
    std::string sa = StringAt(a, "/status/startTime", StringAt(a, "/metadata/creationTimestamp"));
    std::string sb = StringAt(b, "/status/startTime", StringAt(b, "/metadata/creationTimestamp"));
    return sa != sb ? sa < sb : StringAt(a, "/metadata/name") < StringAt(b, "/metadata/name");
  };
  auto prune = [&](std::vector<json>& finished, int64_t limit) {
    std::sort(finished.begin(), finished.end(), by_start);
    const int64_t extra = static_cast<int64_t>(finished.size()) - std::max<int64_t>(limit, 0);
    for (int64_t i = 0; i < extra; ++i) {
      const std::string job_name = StringAt(finished[i], "/metadata/name");
      auto d = ctx_.client.Delete(res::kJobs, ns, job_name, {.propagation_policy = "Background"});
      if (d.ok()) {
        ctx_.recorder.Event(cj, EventType::kNormal, "SuccessfulDelete", absl::StrCat("Deleted job ", job_name));
      } else if (!client::IsNotFound(d.status()) && result.ok()) {
        result = d.status();
      }
    }
  };
  std::string last_success;
  for (const json& j : succeeded) last_success = std::max(last_success, StringAt(j, "/status/completionTime"));
  if (!last_success.empty()) status["lastSuccessfulTime"] = last_success;
  prune(succeeded, IntAt(cj, "/spec/successfulJobsHistoryLimit", 3));
  prune(failed, IntAt(cj, "/spec/failedJobsHistoryLimit", 1));

  auto schedule = CronSchedule::Parse(StringAt(cj, "/spec/schedule"));
  if (!schedule.ok()) {
    ctx_.recorder.Event(cj, EventType::kWarning, "UnparseableSchedule",
                        absl::StrCat("unparseable schedule: \"", StringAt(cj, "/spec/schedule"), "\" : ",
                                     schedule.status().message()));
    return absl::OkStatus();
  }
  const std::string tz = StringAt(cj, "/spec/timeZone");
  if (!tz.empty() && tz != "UTC" && tz != "Etc/UTC") {
    ctx_.recorder.Event(cj, EventType::kWarning, "UnknownTimeZone",
                        absl::StrCat("invalid timeZone: \"", tz, "\": only UTC is supported"));
    return absl::OkStatus();
  }

  // The most recent activation since the last one handled (or creation).
  auto since = ParseTime(StringAt(cj, "/status/lastScheduleTime"));
  if (!since) since = ParseTime(StringAt(cj, "/metadata/creationTimestamp"));
  if (!since) since = now;
  std::optional<WallTime> due;
  int missed = 0;
  for (auto t = schedule->Next(*since); t && *t <= now; t = schedule->Next(*t)) {
    due = t;
    if (++missed > 100) {
      // Kubernetes gives up counting too; the latest one still runs.
      ctx_.recorder.Event(cj, EventType::kWarning, "TooManyMissedTimes",
                          "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew");
      auto latest_before_now = *t;
      for (auto u = schedule->Next(now - std::chrono::hours(24 * 7)); u && *u <= now; u = schedule->Next(*u)) {
        latest_before_now = *u;
      }
      due = latest_before_now;
      break;
    }
  }
  const bool suspended = cj["spec"].value("suspend", false);
  if (due && !suspended) {
    const json::json_pointer deadline_ptr("/spec/startingDeadlineSeconds");
    const bool too_late = cj.contains(deadline_ptr) && cj.at(deadline_ptr).is_number() &&
                          *due + std::chrono::seconds(cj.at(deadline_ptr).get<int64_t>()) < now;
    const std::string policy = StringAt(cj, "/spec/concurrencyPolicy", "Allow");
    if (too_late) {
      ctx_.recorder.Event(cj, EventType::kWarning, "MissSchedule",
                          absl::StrCat("Missed scheduled time to start a job: ", FormatTime(*due)));
      status["lastScheduleTime"] = FormatTime(*due);
    } else if (policy == "Forbid" && !active.empty()) {
      ctx_.recorder.Event(cj, EventType::kNormal, "JobAlreadyActive",
                          "Not starting job because prior execution is running and concurrency policy is Forbid");
      // lastScheduleTime stays: the activation is retried when the Job ends.
    } else {
      if (policy == "Replace") {
        for (const json& j : active) {
          const std::string job_name = StringAt(j, "/metadata/name");
          auto d = ctx_.client.Delete(res::kJobs, ns, job_name, {.propagation_policy = "Background"});
          if (!d.ok() && !client::IsNotFound(d.status())) return d.status();
          ctx_.recorder.Event(cj, EventType::kNormal, "SuccessfulDelete", absl::StrCat("Deleted job ", job_name));
        }
        active.clear();
      }
      const int64_t minutes =
          std::chrono::duration_cast<std::chrono::minutes>(due->time_since_epoch()).count();
      const json tmpl = cj["spec"].value("jobTemplate", json::object());
      json meta = tmpl.value("metadata", json::object());
      meta["name"] = absl::StrCat(name, "-", minutes);
      meta["namespace"] = ns;
      meta["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"] = FormatTime(*due);
      meta["ownerReferences"] = json::array({MakeControllerRef(cj, "batch/v1", "CronJob")});
      json job = {{"apiVersion", "batch/v1"}, {"kind", "Job"}, {"metadata", meta}, {"spec", tmpl.value("spec", json::object())}};
      auto created = ctx_.client.Create(res::kJobs, ns, job);
      if (created.ok()) {
        ctx_.recorder.Event(cj, EventType::kNormal, "SuccessfulCreate",
                            absl::StrCat("Created job ", StringAt(*created, "/metadata/name")));
        active.push_back(*created);
      } else if (!client::IsAlreadyExists(created.status())) {
        ctx_.recorder.Event(cj, EventType::kWarning, "FailedCreate",
                            absl::StrCat("Error creating job: ", created.status().message()));
        return created.status();
      }
      status["lastScheduleTime"] = FormatTime(*due);
    }
  }
  json refs = json::array();
  for (const json& j : active) refs.push_back(JobRef(j));
  if (refs.empty()) {
    status.erase("active");
  } else {
    status["active"] = refs;
  }
  if (status != cj.value("status", json::object())) {
    json next = cj;
    next["status"] = status;
    auto w = ctx_.client.UpdateStatus(res::kCronJobs, ns, next);
    if (!w.ok() && !client::IsNotFound(w.status())) return w.status();
  }
  if (auto next = schedule->Next(now)) {
    worker_.queue().AddAfter(key, std::chrono::duration_cast<Duration>(*next - now) + std::chrono::milliseconds(100));
  }
  return result;
}

}  // namespace kelpie::controllers::workloads
