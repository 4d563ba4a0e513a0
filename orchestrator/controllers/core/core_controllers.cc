#include "orchestrator/controllers/core/core_controllers.h"

#include <CLI/CLI.hpp>

#include "orchestrator/controllers/core/endpoint_slice_controller.h"
#include "orchestrator/controllers/core/endpoints_controller.h"
#include "orchestrator/controllers/core/garbage_collector.h"
#include "orchestrator/controllers/core/namespace_controller.h"
#include "orchestrator/controllers/core/node_lifecycle_controller.h"
#include "orchestrator/controllers/core/service_account_controller.h"

namespace kelpie::controllers {

std::vector<ControllerDescriptor> CoreControllers(const CoreControllerOptions& options) {
  std::vector<ControllerDescriptor> out;
  out.push_back({"endpoint",
                 [options](ControllerContext& ctx) -> absl::StatusOr<std::unique_ptr<Controller>> {
                   return std::make_unique<EndpointsController>(ctx, 1000, options.endpoint_updates_batch_period);
                 }});
  out.push_back({"endpointslice",
                 [options](ControllerContext& ctx) -> absl::StatusOr<std::unique_ptr<Controller>> {
                   return std::make_unique<EndpointSliceController>(ctx, options.max_endpoints_per_slice);
                 }});
  out.push_back({"namespace",
                 [](ControllerContext& ctx) -> absl::StatusOr<std::unique_ptr<Controller>> {
                   return std::make_unique<NamespaceController>(ctx);
                 }});
  out.push_back({"garbagecollector",
                 [](ControllerContext& ctx) -> absl::StatusOr<std::unique_ptr<Controller>> {
                   auto gc = GarbageCollector::Create(ctx);
                   if (!gc.ok()) return gc.status();
                   return std::unique_ptr<Controller>(std::move(*gc));
                 },
                 true, 10});
  out.push_back({"serviceaccount",
                 [](ControllerContext& ctx) -> absl::StatusOr<std::unique_ptr<Controller>> {
                   return std::make_unique<ServiceAccountController>(ctx);
                 }});
  out.push_back({"nodelifecycle",
                 [options](ControllerContext& ctx) -> absl::StatusOr<std::unique_ptr<Controller>> {
                   NodeLifecycleOptions o;
                   o.monitor_period = options.node_monitor_period;
                   o.grace_period = options.node_monitor_grace_period;
                   o.default_not_ready_toleration_seconds = options.default_not_ready_toleration_seconds;
                   o.default_unreachable_toleration_seconds = options.default_unreachable_toleration_seconds;
                   return std::make_unique<NodeLifecycleController>(ctx, o);
                 }});
  return out;
}

void AddCoreControllerFlags(CLI::App& app, CoreControllerFlags& flags) {
  app.add_option("--max-endpoints-per-slice", flags.max_endpoints_per_slice,
                 "Most endpoints in one EndpointSlice")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_option("--endpoint-updates-batch-period", flags.endpoint_updates_batch_period,
                 "How long the Endpoints controller collects pod changes before rewriting a Service's Endpoints")
      ->capture_default_str();
  app.add_option("--node-monitor-period", flags.node_monitor_period,
                 "How often the node lifecycle controller checks node heartbeats")
      ->capture_default_str();
  app.add_option("--node-monitor-grace-period", flags.node_monitor_grace_period,
                 "How long a node's Lease and status may go unrenewed before it is marked Ready=Unknown and "
                 "tainted unreachable")
      ->capture_default_str();
  app.add_option("--default-not-ready-toleration-seconds", flags.default_not_ready_toleration_seconds,
                 "Seconds a pod without its own toleration stays on a node tainted not-ready:NoExecute")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--default-unreachable-toleration-seconds", flags.default_unreachable_toleration_seconds,
                 "Seconds a pod without its own toleration stays on a node tainted unreachable:NoExecute")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
}

absl::Status ApplyCoreControllerFlags(const CoreControllerFlags& flags, CoreControllerOptions* options) {
  options->max_endpoints_per_slice = flags.max_endpoints_per_slice;
  auto batch = ParseFlagDuration("--endpoint-updates-batch-period", flags.endpoint_updates_batch_period);
  if (!batch.ok()) return batch.status();
  if (batch->count() < 0) return absl::InvalidArgumentError("--endpoint-updates-batch-period must not be negative");
  options->endpoint_updates_batch_period = *batch;
  auto period = ParseFlagDuration("--node-monitor-period", flags.node_monitor_period);
  if (!period.ok()) return period.status();
  auto grace = ParseFlagDuration("--node-monitor-grace-period", flags.node_monitor_grace_period);
  if (!grace.ok()) return grace.status();
  if (period->count() <= 0 || grace->count() <= 0) {
    return absl::InvalidArgumentError("--node-monitor-period and --node-monitor-grace-period must be positive");
  }
  options->node_monitor_period = *period;
  options->node_monitor_grace_period = *grace;
  options->default_not_ready_toleration_seconds = flags.default_not_ready_toleration_seconds;
  options->default_unreachable_toleration_seconds = flags.default_unreachable_toleration_seconds;
  return absl::OkStatus();
}

}  // namespace kelpie::controllers
