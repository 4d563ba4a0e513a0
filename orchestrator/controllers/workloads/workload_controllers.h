// The workload controllers (ReplicaSet, Deployment, Job, DaemonSet, CronJob,
// StatefulSet)
// built from one ControllerContext, for the controller manager to run.
#pragma once

#include <memory>
#include <vector>

#include "orchestrator/controllers/controller.h"
#include "orchestrator/controllers/controller_manager.h"

namespace kelpie::controllers::workloads {

std::vector<std::unique_ptr<Controller>> NewWorkloadControllers(ControllerContext& ctx);

// The same controllers one by one for the ControllerManager, under
// kube-controller-manager's names: replicaset, deployment, job, daemonset,
// cronjob, statefulset.
std::vector<ControllerDescriptor> WorkloadControllerDescriptors();

}  // namespace kelpie::controllers::workloads
