#include "orchestrator/controllers/core/garbage_collector.h"

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "orchestrator/client/api_errors.h"

namespace kelpie::controllers {

using nlohmann::json;
using namespace std::chrono_literals;

namespace {
constexpr char kOrphan[] = "orphan";
constexpr char kForeground[] = "foregroundDeletion";

std::string UidOf(const json& obj) { return obj.value("metadata", json::object()).value("uid", ""); }
}  // namespace

bool GarbageCollector::Node::HasFinalizer(const std::string& f) const {
  return std::find(finalizers.begin(), finalizers.end(), f) != finalizers.end();
}

absl::StatusOr<std::unique_ptr<GarbageCollector>> GarbageCollector::Create(ControllerContext& ctx) {
  auto all = DiscoverResources(ctx.client);
  if (!all.ok()) return all.status();
  std::vector<DiscoveredResource> watched;
  for (auto& r : *all) {
    // Events never own anything and are many.
    if (r.ref.resource == "events") continue;
    if (!r.Has("list") || !r.Has("watch") || !r.Has("delete")) continue;
    watched.push_back(std::move(r));
  }
  return std::unique_ptr<GarbageCollector>(new GarbageCollector(ctx, std::move(watched)));
}

GarbageCollector::GarbageCollector(ControllerContext& ctx, std::vector<DiscoveredResource> resources)
    : QueueController("garbagecollector", ctx), resources_(std::move(resources)) {
  for (const auto& r : resources_) {
    const DiscoveredResource* resource = &r;
    EventHandlers h;
    h.on_add = [this, resource](const json& o) { OnUpsert(resource, o); };
    h.on_update = [this, resource](const json&, const json& o) { OnUpsert(resource, o); };
    h.on_delete = [this](const json& o, bool) { OnDelete(o); };
    ctx.informers.For(r.ref).AddEventHandler(std::move(h));
  }
}

const DiscoveredResource* GarbageCollector::ResourceFor(const std::string& api_version, const std::string& kind) const {
  for (const auto& r : resources_) {
    if (r.kind == kind && r.ref.ApiVersion() == api_version) return &r;
  }
  // Another version of the same group and kind.
  std::string group = api_version.find('/') == std::string::npos ? "" : api_version.substr(0, api_version.find('/'));
  for (const auto& r : resources_) {
    if (r.kind == kind && r.ref.group == group) return &r;
  }
  return nullptr;
}

void GarbageCollector::OnUpsert(const DiscoveredResource* resource, const json& obj) {
  const json meta = obj.value("metadata", json::object());
  Node n;
  n.resource = resource;
  n.ns = meta.value("namespace", "");
  n.name = meta.value("name", "");
  n.uid = meta.value("uid", "");
  if (n.uid.empty()) return;
  n.owners = meta.value("ownerReferences", json::array());
  if (!n.owners.is_array()) n.owners = json::array();
  for (const auto& f : meta.value("finalizers", json::array())) {
    if (f.is_string()) n.finalizers.push_back(f);
  }
  n.deleting = meta.contains("deletionTimestamp") && !meta["deletionTimestamp"].is_null();
  bool owners_changed = true;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = nodes_.find(n.uid);
    if (it != nodes_.end()) {
      owners_changed = it->second.owners != n.owners;
      for (const auto& o : it->second.owners) dependents_[o.value("uid", "")].erase(n.uid);
    }
    for (const auto& o : n.owners) dependents_[o.value("uid", "")].insert(n.uid);
    nodes_[n.uid] = n;
  }
  if (!n.owners.empty() && owners_changed) queue().Add("d:" + n.uid);
  if (n.deleting && n.HasFinalizer(kOrphan)) queue().Add("o:" + n.uid);
  if (n.deleting && n.HasFinalizer(kForeground)) queue().Add("f:" + n.uid);
}

void GarbageCollector::OnDelete(const json& obj) {
  const std::string uid = UidOf(obj);
  std::vector<std::string> wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = nodes_.find(uid);
    if (it == nodes_.end()) return;
    for (const auto& o : it->second.owners) {
      const std::string owner = o.value("uid", "");
      dependents_[owner].erase(uid);
      if (dependents_[owner].empty()) dependents_.erase(owner);
      // An owner waiting for its dependents may be done now.
      auto on = nodes_.find(owner);
      if (on != nodes_.end() && on->second.deleting && on->second.HasFinalizer(kForeground)) wake.push_back("f:" + owner);
    }
    nodes_.erase(it);
    auto deps = dependents_.find(uid);
    if (deps != dependents_.end()) {
      for (const auto& d : deps->second) wake.push_back("d:" + d);
    }
  }
  for (const auto& k : wake) queue().Add(k);
}

std::optional<GarbageCollector::Node> GarbageCollector::NodeByUid(const std::string& uid) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = nodes_.find(uid);
  if (it == nodes_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> GarbageCollector::DependentsOf(const std::string& uid) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = dependents_.find(uid);
  if (it == dependents_.end()) return {};
  return {it->second.begin(), it->second.end()};
}

absl::Status GarbageCollector::Sync(const std::string& key) {
  const std::string uid = key.substr(2);
  switch (key[0]) {
    case 'd':
      return AttemptToDelete(uid);
    case 'o':
      return OrphanDependents(uid);
    case 'f':
      return DeleteDependentsFirst(uid);
  }
  return absl::OkStatus();
}

absl::Status GarbageCollector::AttemptToDelete(const std::string& uid) {
  auto node = NodeByUid(uid);
  if (!node || node->owners.empty()) return absl::OkStatus();
  if (node->deleting && !node->HasFinalizer(kForeground)) return absl::OkStatus();
  std::set<std::string> dangling, waiting;
  int solid = 0;
  for (const auto& ref : node->owners) {
    const std::string owner_uid = ref.value("uid", "");
    const DiscoveredResource* resource = ResourceFor(ref.value("apiVersion", ""), ref.value("kind", ""));
    std::optional<Node> owner = NodeByUid(owner_uid);
    bool exists = owner.has_value();
    bool owner_waiting = exists && owner->deleting && owner->HasFinalizer(kForeground);
    if (!exists) {
      if (resource == nullptr) {
        // An owner kind this server does not serve: leave it be.
        ++solid;
        continue;
      }
      // The cache may lag: ask the API server.
      auto live = ctx_.client.Get(resource->ref, resource->ref.namespaced ? node->ns : "", ref.value("name", ""));
      if (live.ok() && UidOf(*live) == owner_uid) {
        exists = true;
        const json meta = (*live)["metadata"];
        bool fg = false;
        for (const auto& f : meta.value("finalizers", json::array())) fg = fg || f == kForeground;
        owner_waiting = meta.contains("deletionTimestamp") && fg;
      } else if (!live.ok() && !client::IsNotFound(live.status())) {
        return live.status();
      }
    }
    if (!exists) {
      dangling.insert(owner_uid);
    } else if (owner_waiting && ref.value("blockOwnerDeletion", false)) {
      waiting.insert(owner_uid);
    } else {
      ++solid;
    }
  }
  if (solid > 0) {
    if (dangling.empty() && waiting.empty()) return absl::OkStatus();
    std::set<std::string> remove = dangling;
    remove.insert(waiting.begin(), waiting.end());
    return RemoveOwnerRefs(*node, remove);
  }
  if (node->deleting) return absl::OkStatus();
  client::DeleteOptions options;
  options.precondition_uid = uid;
  // Owners waiting in the foreground wait for this one's dependents too.
  bool has_dependents = !DependentsOf(uid).empty();
  if (!waiting.empty() && has_dependents) {
    options.propagation_policy = "Foreground";
  } else if (node->HasFinalizer(kOrphan)) {
    options.propagation_policy = "Orphan";
  } else {
    options.propagation_policy = "Background";
  }
  auto r = ctx_.client.Delete(node->resource->ref, node->ns, node->name, options);
  if (!r.ok() && !client::IsNotFound(r.status()) && !client::IsConflict(r.status())) return r.status();
  spdlog::info("garbagecollector: deleted {} {}/{} (owners gone)", node->resource->kind, node->ns, node->name);
  return absl::OkStatus();
}

absl::Status GarbageCollector::RemoveOwnerRefs(const Node& dependent, const std::set<std::string>& owner_uids) {
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto live = ctx_.client.Get(dependent.resource->ref, dependent.ns, dependent.name);
    if (!live.ok()) return client::IsNotFound(live.status()) ? absl::OkStatus() : live.status();
    if (UidOf(*live) != dependent.uid) return absl::OkStatus();
    json refs = (*live)["metadata"].value("ownerReferences", json::array());
    json kept = json::array();
    for (const auto& r : refs) {
      if (!owner_uids.count(r.value("uid", ""))) kept.push_back(r);
    }
    if (kept.size() == refs.size()) return absl::OkStatus();
    json next = *live;
    if (kept.empty()) {
      next["metadata"].erase("ownerReferences");
    } else {
      next["metadata"]["ownerReferences"] = kept;
    }
    auto r = ctx_.client.Update(dependent.resource->ref, dependent.ns, next);
    if (r.ok() || client::IsNotFound(r.status())) return absl::OkStatus();
    if (!client::IsConflict(r.status())) return r.status();
  }
  return absl::AbortedError("ownerReferences kept changing");
}

absl::Status GarbageCollector::RemoveFinalizer(const Node& owner, const std::string& finalizer) {
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto live = ctx_.client.Get(owner.resource->ref, owner.ns, owner.name);
    if (!live.ok()) return client::IsNotFound(live.status()) ? absl::OkStatus() : live.status();
    if (UidOf(*live) != owner.uid) return absl::OkStatus();
    json finalizers = (*live)["metadata"].value("finalizers", json::array());
    json kept = json::array();
    for (const auto& f : finalizers) {
      if (f != finalizer) kept.push_back(f);
    }
    if (kept.size() == finalizers.size()) return absl::OkStatus();
    json next = *live;
    next["metadata"]["finalizers"] = kept;
    auto r = ctx_.client.Update(owner.resource->ref, owner.ns, next);
    if (r.ok() || client::IsNotFound(r.status())) return absl::OkStatus();
    if (!client::IsConflict(r.status())) return r.status();
  }
  return absl::AbortedError("finalizers kept changing");
}

absl::Status GarbageCollector::OrphanDependents(const std::string& uid) {
  auto owner = NodeByUid(uid);
  if (!owner || !owner->deleting || !owner->HasFinalizer(kOrphan)) return absl::OkStatus();
  for (const auto& dep_uid : DependentsOf(uid)) {
    auto dep = NodeByUid(dep_uid);
    if (!dep) continue;
    if (absl::Status st = RemoveOwnerRefs(*dep, {uid}); !st.ok()) return st;
  }
  spdlog::info("garbagecollector: orphaned the dependents of {} {}/{}", owner->resource->kind, owner->ns, owner->name);
  return RemoveFinalizer(*owner, kOrphan);
}

absl::Status GarbageCollector::DeleteDependentsFirst(const std::string& uid) {
  auto owner = NodeByUid(uid);
  if (!owner || !owner->deleting || !owner->HasFinalizer(kForeground)) return absl::OkStatus();
  bool blocking = false;
  for (const auto& dep_uid : DependentsOf(uid)) {
    auto dep = NodeByUid(dep_uid);
    if (!dep) continue;
    bool blocks = false;
    for (const auto& ref : dep->owners) {
      if (ref.value("uid", "") == uid) blocks = ref.value("blockOwnerDeletion", false);
    }
    blocking = blocking || blocks;
    if (dep->deleting) continue;
    // A dependent with other live owners only loses this reference.
    if (dep->owners.size() > 1) {
      queue().Add("d:" + dep_uid);
      continue;
    }
    client::DeleteOptions options;
    options.precondition_uid = dep_uid;
    options.propagation_policy = DependentsOf(dep_uid).empty() ? "Background" : "Foreground";
    auto r = ctx_.client.Delete(dep->resource->ref, dep->ns, dep->name, options);
    if (!r.ok() && !client::IsNotFound(r.status()) && !client::IsConflict(r.status())) return r.status();
  }
  if (blocking) {
    // Deletes of the dependents wake this owner again; the delay is a backstop.
    queue().AddAfter("f:" + uid, 2s);
    return absl::OkStatus();
  }
  spdlog::info("garbagecollector: dependents of {} {}/{} gone, finishing its foreground deletion",
               owner->resource->kind, owner->ns, owner->name);
  return RemoveFinalizer(*owner, kForeground);
}

}  // namespace kelpie::controllers
