#include "orchestrator/api/strategic_merge_patch.h"

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace kelpie::api {
namespace {

using nlohmann::json;

// The patch merge key of a list field, or "" when the list is replaced.
std::string MergeKey(const std::string& field, const json& patch_list, const json& original_list) {
  if (field == "containers" || field == "initContainers" || field == "ephemeralContainers" ||
      field == "env" || field == "volumes" || field == "imagePullSecrets" ||
      field == "resourceClaims") {
    return "name";
  }
  if (field == "volumeMounts") return "mountPath";
  if (field == "volumeDevices") return "devicePath";
  if (field == "hostAliases") return "ip";
  if (field == "conditions") return "type";
  if (field == "ownerReferences") return "uid";
  if (field == "topologySpreadConstraints") return "topologyKey";
  if (field == "ports") {
    // Container ports merge by containerPort, Service ports by port.
    for (const json* list : {&patch_list, &original_list}) {
      for (const auto& e : *list) {
        if (e.is_object() && e.contains("containerPort")) return "containerPort";
      }
    }
    return "port";
  }
  return "";
}

bool IsMergedPrimitiveList(const std::string& field) { return field == "finalizers"; }

absl::StatusOr<json> MergeValue(const json& original, const json& patch);

absl::StatusOr<json> MergeList(const std::string& field, const json& original, const json& patch) {
  // A list-level {"$patch": "replace"} element replaces the whole list.
  for (const auto& e : patch) {
    if (e.is_object() && e.value("$patch", "") == "replace") {
      json out = json::array();
      for (const auto& x : patch) {
        if (!(x.is_object() && x.contains("$patch"))) out.push_back(x);
      }
      return out;
    }
  }
  if (IsMergedPrimitiveList(field)) {
    json out = original.is_array() ? original : json::array();
    for (const auto& v : patch) {
      bool present = false;
      for (const auto& o : out) present = present || o == v;
      if (!present) out.push_back(v);
    }
    return out;
  }
  std::string key = MergeKey(field, patch, original.is_array() ? original : json::array());
  if (key.empty() || !original.is_array()) {
    json out = json::array();
    for (const auto& x : patch) {
      if (!(x.is_object() && x.contains("$patch"))) out.push_back(x);
    }
    return out;
  }
  json out = original;
  for (const auto& element : patch) {
    if (!element.is_object() || !element.contains(key)) {
      return absl::InvalidArgumentError(absl::StrCat("map: ", element.dump(), " does not contain declared merge key: ", key));
    }
    const json& id = element[key];
    auto it = std::find_if(out.begin(), out.end(),
                           [&](const json& o) { return o.is_object() && o.contains(key) && o[key] == id; });
    std::string directive = element.value("$patch", "");
    if (directive == "delete") {
      if (it != out.end()) out.erase(it);
      continue;
    }
    if (it == out.end()) {
      json added = element;
      added.erase("$patch");
      out.push_back(added);
    } else {
      auto merged = MergeValue(*it, element);
      if (!merged.ok()) return merged.status();
      *it = std::move(*merged);
    }
  }
  return out;
}

absl::StatusOr<json> MergeValue(const json& original, const json& patch) {
  if (!patch.is_object()) return patch;
  std::string directive = patch.value("$patch", "");
  if (directive == "replace") {
    json out = patch;
    out.erase("$patch");
    return out;
  }
  if (directive == "delete") return json();  // caller removes the field
  json out = original.is_object() ? original : json::object();
  const json* retain = nullptr;
  for (auto& [k, v] : patch.items()) {
    if (k == "$patch" || absl::StartsWith(k, "$setElementOrder/")) continue;
    if (k == "$retainKeys") {
      retain = &v;
      continue;
    }
    if (absl::StartsWith(k, "$deleteFromPrimitiveList/")) {
      std::string field = k.substr(std::string("$deleteFromPrimitiveList/").size());
      if (out.contains(field) && out[field].is_array() && v.is_array()) {
        json kept = json::array();
        for (const auto& x : out[field]) {
          bool drop = false;
          for (const auto& d : v) drop = drop || d == x;
          if (!drop) kept.push_back(x);
        }
        out[field] = kept;
      }
      continue;
    }
    if (v.is_null()) {
      out.erase(k);
      continue;
    }
    if (v.is_object()) {
      auto merged = MergeValue(out.contains(k) ? out[k] : json(), v);
      if (!merged.ok()) return merged.status();
      if (merged->is_null()) {
        out.erase(k);
      } else {
        out[k] = std::move(*merged);
      }
    } else if (v.is_array()) {
      auto merged = MergeList(k, out.contains(k) ? out[k] : json(), v);
      if (!merged.ok()) return merged.status();
      out[k] = std::move(*merged);
    } else {
      out[k] = v;
    }
  }
  if (retain != nullptr && retain->is_array()) {
    json kept = json::object();
    for (const auto& name : *retain) {
      if (name.is_string() && out.contains(name.get<std::string>())) {
        kept[name.get<std::string>()] = out[name.get<std::string>()];
      }
    }
    out = kept;
  }
  return out;
}

}  // namespace

absl::StatusOr<nlohmann::json> StrategicMergePatch(const nlohmann::json& original,
                                                   const nlohmann::json& patch) {
  if (!patch.is_object()) {
    return absl::InvalidArgumentError("a strategic merge patch must be a JSON object");
  }
  return MergeValue(original, patch);
}

}  // namespace kelpie::api
