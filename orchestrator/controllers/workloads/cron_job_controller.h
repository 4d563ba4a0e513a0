// CronJobController creates Jobs from a batch/v1 CronJob on its schedule
// (cron_schedule.h, UTC), as Kubernetes' cronjob controller (v2) does:
// - the Job for the most recent missed activation is created, named
//   <cronjob>-<activation in minutes since the epoch>, with the
//   batch.kubernetes.io/cronjob-scheduled-timestamp annotation and a
//   controller ownerReference; an activation older than
//   startingDeadlineSeconds is skipped (MissSchedule);
// - concurrencyPolicy Allow, Forbid (skip while a Job is active) or Replace
//   (delete active Jobs first); suspend stops new Jobs;
// - finished Jobs beyond successfulJobsHistoryLimit (default 3) and
//   failedJobsHistoryLimit (default 1) are deleted, oldest first;
// - status: active (references), lastScheduleTime, lastSuccessfulTime;
//   a re-check is queued for the next activation.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "orchestrator/controllers/controller.h"
#include "orchestrator/controllers/workloads/queue_worker.h"

namespace kelpie::controllers::workloads {

class CronJobController : public Controller {
 public:
  explicit CronJobController(ControllerContext& ctx);
  ~CronJobController() override { Stop(); }

  std::string Name() const override { return "cronjob"; }
  void Run(int workers) override { worker_.Run(workers); }
  void Stop() override { worker_.Stop(); }

  absl::Status Sync(const std::string& key);

 private:
  std::string KeyOf(const nlohmann::json& job) const;

  ControllerContext& ctx_;
  SharedInformer& cron_jobs_;
  SharedInformer& jobs_;
  QueueWorker worker_;
};

}  // namespace kelpie::controllers::workloads
