#include "orchestrator/controllers/workloads/controller_ref_manager.h"

#include "orchestrator/client/api_errors.h"
#include "orchestrator/controllers/object_store.h"
#include "orchestrator/controllers/workloads/workload_util.h"

namespace kelpie::controllers::workloads {

using nlohmann::json;

std::vector<std::string> ControllerUidIndex(const json& obj) {
  json ref = ControllerRefOf(obj);
  if (!ref.is_object()) return {};
  std::string uid = ref.value("uid", "");
  return uid.empty() ? std::vector<std::string>{} : std::vector<std::string>{uid};
}

std::vector<std::string> OrphanNamespaceIndex(const json& obj) {
  if (ControllerRefOf(obj).is_object()) return {};
  return {StringAt(obj, "/metadata/namespace")};
}

ControllerRefManager::ControllerRefManager(client::RestClient& client, client::ResourceRef resource,
                                           SharedInformer& informer)
    : client_(client), resource_(std::move(resource)), informer_(informer) {
  informer_.AddIndexer(kControllerUidIndex, ControllerUidIndex);
  informer_.AddIndexer(kOrphanNamespaceIndex, OrphanNamespaceIndex);
}

absl::StatusOr<json> ControllerRefManager::WriteOwnerReferences(const json& obj, const json& refs) {
  json patch = {{"metadata",
                 {{"ownerReferences", refs.empty() ? json(nullptr) : refs},
                  {"resourceVersion", StringAt(obj, "/metadata/resourceVersion")}}}};
  return client_.Patch(resource_, StringAt(obj, "/metadata/namespace"), StringAt(obj, "/metadata/name"),
                       client::PatchType::kMerge, patch);
}

absl::StatusOr<std::vector<json>> ControllerRefManager::Claim(const Owner& owner, const api::LabelSelector& selector,
                                                              const Filter& filter) {
  const std::string ns = StringAt(owner.object, "/metadata/namespace");
  const std::string uid = StringAt(owner.object, "/metadata/uid");
  const bool owner_deleting = IsDeleting(owner.object);
  auto matches = [&](const json& obj) {
    return selector.Matches(obj["metadata"].value("labels", json::object())) && (!filter || filter(obj));
  };
  std::vector<json> claimed;
  absl::Status first_error;
  auto note = [&first_error](const absl::Status& s) {
    if (!s.ok() && !client::IsNotFound(s) && first_error.ok()) first_error = s;
  };
  for (json& obj : informer_.store().ByIndex(kControllerUidIndex, uid)) {
    if (StringAt(obj, "/metadata/namespace") != ns) continue;
    if (matches(obj) || owner_deleting) {
      claimed.push_back(std::move(obj));
      continue;
    }
    // Release: the object no longer matches, drop our ownerReference.
    json refs = json::array();
    for (const json& r : obj["metadata"]["ownerReferences"]) {
      if (r.value("uid", "") != uid) refs.push_back(r);
    }
    note(WriteOwnerReferences(obj, refs).status());
  }
  if (!owner_deleting && !selector.Empty()) {
    for (json& obj : informer_.store().ByIndex(kOrphanNamespaceIndex, ns)) {
      if (IsDeleting(obj) || !matches(obj)) continue;
      // Adopt: add our controller reference, guarded by the object's version.
      json refs = obj["metadata"].value("ownerReferences", json::array());
      refs.push_back(MakeControllerRef(owner.object, owner.api_version, owner.kind));
      auto adopted = WriteOwnerReferences(obj, refs);
      if (adopted.ok()) {
        claimed.push_back(std::move(*adopted));
      } else {
        note(adopted.status());
      }
    }
  }
  if (!first_error.ok()) return first_error;
  return claimed;
}

}  // namespace kelpie::controllers::workloads
