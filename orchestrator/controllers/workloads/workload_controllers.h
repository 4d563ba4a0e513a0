// The workload controllers (ReplicaSet, Deployment, Job, DaemonSet, CronJob)
// built from one ControllerContext, for the controller manager to run.
#pragma once

#include <memory>
#include <vector>

#include "orchestrator/controllers/controller.h"

namespace kelpie::controllers::workloads {

std::vector<std::unique_ptr<Controller>> NewWorkloadControllers(ControllerContext& ctx);

}  // namespace kelpie::controllers::workloads
