#include "orchestrator/controllers/workloads/workload_controllers.h"

#include "orchestrator/controllers/workloads/cron_job_controller.h"
#include "orchestrator/controllers/workloads/daemon_set_controller.h"
#include "orchestrator/controllers/workloads/deployment_controller.h"
#include "orchestrator/controllers/workloads/job_controller.h"
#include "orchestrator/controllers/workloads/replica_set_controller.h"
#include "orchestrator/controllers/workloads/stateful_set_controller.h"

namespace kelpie::controllers::workloads {

std::vector<std::unique_ptr<Controller>> NewWorkloadControllers(ControllerContext& ctx) {
  std::vector<std::unique_ptr<Controller>> controllers;
  controllers.push_back(std::make_unique<ReplicaSetController>(ctx));
  controllers.push_back(std::make_unique<DeploymentController>(ctx));
  controllers.push_back(std::make_unique<JobController>(ctx));
  controllers.push_back(std::make_unique<DaemonSetController>(ctx));
  controllers.push_back(std::make_unique<CronJobController>(ctx));
  controllers.push_back(std::make_unique<StatefulSetController>(ctx));
  return controllers;
}

namespace {

template <typename T>
ControllerDescriptor Describe(const char* name) {
  return {name, [](ControllerContext& ctx) -> absl::StatusOr<std::unique_ptr<Controller>> {
            return std::unique_ptr<Controller>(std::make_unique<T>(ctx));
          }};
}

}  // namespace

std::vector<ControllerDescriptor> WorkloadControllerDescriptors() {
  return {Describe<ReplicaSetController>("replicaset"), Describe<DeploymentController>("deployment"),
          Describe<JobController>("job"), Describe<DaemonSetController>("daemonset"),
          Describe<CronJobController>("cronjob"), Describe<StatefulSetController>("statefulset")};
}

}  // namespace kelpie::controllers::workloads
