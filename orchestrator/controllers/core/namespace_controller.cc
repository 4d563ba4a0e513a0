#include "orchestrator/controllers/core/namespace_controller.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "orchestrator/client/api_errors.h"
#include "orchestrator/controllers/core/api_discovery.h"

namespace kelpie::controllers {

using nlohmann::json;
using namespace std::chrono_literals;

namespace {
constexpr char kFinalizer[] = "kubernetes";

bool Deleting(const json& ns) {
  return ns.contains("metadata") && ns["metadata"].contains("deletionTimestamp") &&
         !ns["metadata"]["deletionTimestamp"].is_null();
}
}  // namespace

NamespaceController::NamespaceController(ControllerContext& ctx)
    : QueueController("namespace", ctx), namespaces_(ctx.informers.For(client::resources::kNamespaces)) {
  EventHandlers h;
  h.on_add = [this](const json& ns) {
    if (Deleting(ns)) queue().Add(ObjectKey(ns));
  };
  h.on_update = [this](const json&, const json& ns) {
    if (Deleting(ns)) queue().Add(ObjectKey(ns));
  };
  namespaces_.AddEventHandler(std::move(h));
}

absl::Status NamespaceController::Sync(const std::string& name) {
  auto ns = namespaces_.store().Get(name);
  if (!ns || !Deleting(*ns)) return absl::OkStatus();
  json finalizers = ns->value("spec", json::object()).value("finalizers", json::array());
  bool ours = false;
  for (const auto& f : finalizers) ours = ours || f == kFinalizer;
  if (!ours) return absl::OkStatus();

  auto resources = DiscoverResources(ctx_.client);
  if (!resources.ok()) return resources.status();
  std::vector<std::string> remaining;
  for (const auto& r : *resources) {
    if (!r.ref.namespaced || !r.Has("list")) continue;
    if (r.Has("deletecollection")) {
      auto deleted = ctx_.client.Request("DELETE", r.ref.Path(name), "application/json", "{}");
      if (!deleted.ok() && !client::IsNotFound(deleted.status())) {
        spdlog::debug("namespace {}: deleting {}: {}", name, r.ref.resource, deleted.status().message());
      }
    }
    auto left = ctx_.client.List(r.ref, name, client::ListOptions{});
    if (!left.ok()) {
      if (client::IsNotFound(left.status()) || client::IsForbidden(left.status())) continue;
      return left.status();
    }
    size_t n = left->value("items", json::array()).size();
    if (n == 0) continue;
    // Without deletecollection, one by one.
    if (!r.Has("deletecollection") && r.Has("delete")) {
      for (const auto& item : (*left)["items"]) {
        auto d = ctx_.client.Delete(r.ref, name, item["metadata"].value("name", ""));
        if (!d.ok() && !client::IsNotFound(d.status())) return d.status();
      }
    }
    remaining.push_back(absl::StrCat(r.ref.resource, " (", n, ")"));
  }
  if (!remaining.empty()) {
    // Finalizers or graceful deletions are still running: look again soon.
    spdlog::debug("namespace {}: waiting for {}", name, absl::StrJoin(remaining, ", "));
    queue().AddAfter(name, 500ms);
    return absl::OkStatus();
  }
  // Everything is gone: drop our finalizer (the API server then deletes the
  // namespace). A fresh read avoids writing over concurrent changes.
  auto fresh = ctx_.client.Get(client::resources::kNamespaces, "", name);
  if (!fresh.ok()) return client::IsNotFound(fresh.status()) ? absl::OkStatus() : fresh.status();
  json next = *fresh;
  json kept = json::array();
  for (const auto& f : next["spec"].value("finalizers", json::array())) {
    if (f != kFinalizer) kept.push_back(f);
  }
  next["spec"]["finalizers"] = kept;
  auto updated = ctx_.client.Update(client::resources::kNamespaces, "", next);
  if (!updated.ok() && !client::IsNotFound(updated.status())) return updated.status();
  spdlog::info("namespace {}: content deleted, finalized", name);
  return absl::OkStatus();
}

}  // namespace kelpie::controllers
