#include "orchestrator/controllers/core/service_account_controller.h"

#include "orchestrator/client/api_errors.h"

namespace kelpie::controllers {

using nlohmann::json;

namespace {
constexpr char kDefault[] = "default";
}

ServiceAccountController::ServiceAccountController(ControllerContext& ctx)
    : QueueController("serviceaccount", ctx),
      namespaces_(ctx.informers.For(client::resources::kNamespaces)),
      accounts_(ctx.informers.For(client::resources::kServiceAccounts)) {
  EventHandlers ns;
  ns.on_add = [this](const json& n) { queue().Add(ObjectKey(n)); };
  ns.on_update = [this](const json&, const json& n) { queue().Add(ObjectKey(n)); };
  namespaces_.AddEventHandler(std::move(ns));
  EventHandlers sa;
  sa.on_delete = [this](const json& a, bool) {
    const json meta = a.value("metadata", json::object());
    if (meta.value("name", "") == kDefault) queue().Add(meta.value("namespace", ""));
  };
  accounts_.AddEventHandler(std::move(sa));
}

absl::Status ServiceAccountController::Sync(const std::string& ns_name) {
  auto ns = namespaces_.store().Get(ns_name);
  if (!ns) return absl::OkStatus();
  const json meta = ns->value("metadata", json::object());
  if (meta.contains("deletionTimestamp") ||
      ns->value("status", json::object()).value("phase", "") == "Terminating") {
    return absl::OkStatus();
  }
  if (accounts_.store().Get(ObjectKey(ns_name, kDefault))) return absl::OkStatus();
  json account = {{"apiVersion", "v1"},
                  {"kind", "ServiceAccount"},
                  {"metadata", {{"name", kDefault}, {"namespace", ns_name}}}};
  auto created = ctx_.client.Create(client::resources::kServiceAccounts, ns_name, account);
  if (created.ok() || client::IsAlreadyExists(created.status())) return absl::OkStatus();
  // A namespace that started terminating meanwhile refuses new objects.
  if (client::IsForbidden(created.status()) || client::IsNotFound(created.status())) return absl::OkStatus();
  return created.status();
}

}  // namespace kelpie::controllers
