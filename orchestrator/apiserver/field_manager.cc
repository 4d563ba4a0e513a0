#include "orchestrator/apiserver/field_manager.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "orchestrator/api/schema/field_set.h"
#include "orchestrator/api/schema/structured_merge.h"

namespace kelpie::apiserver {
namespace {

using nlohmann::json;
using api::schema::FieldSet;
using api::schema::StructuredMerge;

constexpr size_t kMaxManagerLength = 128;
constexpr const char* kBeforeFirstApply = "before-first-apply";

struct Entry {
  std::string manager;
  std::string operation;  // Apply or Update
  std::string api_version;
  std::string time;
  std::string subresource;
  FieldSet fields;

  // kube-apiserver's manager identity: appliers are one manager whatever
  // version they apply; updaters are one per version.
  bool SameManager(const Entry& other) const {
    return manager == other.manager && operation == other.operation && subresource == other.subresource &&
           (operation == "Apply" || api_version == other.api_version);
  }
  // As kube-apiserver prints a manager in conflict messages.
  std::string Printed() const {
    std::string out = json(manager).dump();
    if (!subresource.empty()) absl::StrAppend(&out, " with subresource ", json(subresource).dump());
    if (operation == "Update") absl::StrAppend(&out, " using ", api_version);
    return out;
  }
};

absl::StatusOr<std::vector<Entry>> DecodeEntries(const json& object) {
  std::vector<Entry> out;
  if (!object.is_object() || !object.contains("metadata") || !object["metadata"].is_object()) return out;
  const json& meta = object["metadata"];
  auto it = meta.find("managedFields");
  if (it == meta.end() || it->is_null()) return out;
  if (!it->is_array()) return absl::InvalidArgumentError("managedFields must be a list");
  for (const auto& e : *it) {
    if (!e.is_object()) return absl::InvalidArgumentError("a managedFields entry must be an object");
    Entry entry;
    auto str = [&](const char* key) {
      auto f = e.find(key);
      return f != e.end() && f->is_string() ? f->get<std::string>() : std::string();
    };
    entry.manager = str("manager");
    entry.operation = str("operation");
    entry.api_version = str("apiVersion");
    entry.time = str("time");
    entry.subresource = str("subresource");
    if (entry.operation != "Apply" && entry.operation != "Update") {
      return absl::InvalidArgumentError(absl::StrCat("managedFields entry of \"", entry.manager,
                                                     "\" has an invalid operation \"", entry.operation, "\""));
    }
    if (str("fieldsType") != "FieldsV1") {
      return absl::InvalidArgumentError("managedFields entries must have fieldsType FieldsV1");
    }
    auto fields = FieldSet::FromFieldsV1(e.value("fieldsV1", json::object()));
    if (!fields.ok()) return fields.status();
    entry.fields = std::move(*fields);
    out.push_back(std::move(entry));
  }
  return out;
}

// kube-apiserver's order: Apply before Update, then by time, manager,
// version and subresource.
json EncodeEntries(std::vector<Entry> entries) {
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& p, const Entry& q) {
    if (p.operation != q.operation) return p.operation < q.operation;
    if (p.time != q.time) return p.time < q.time;
    if (p.manager != q.manager) return p.manager < q.manager;
    if (p.api_version != q.api_version) return p.api_version < q.api_version;
    return p.subresource < q.subresource;
  });
  json out = json::array();
  for (const auto& e : entries) {
    json entry = {{"manager", e.manager},
                  {"operation", e.operation},
                  {"apiVersion", e.api_version},
                  {"time", e.time},
                  {"fieldsType", "FieldsV1"},
                  {"fieldsV1", e.fields.ToFieldsV1()}};
    if (!e.subresource.empty()) entry["subresource"] = e.subresource;
    out.push_back(std::move(entry));
  }
  return out;
}

void SetEntries(json& object, std::vector<Entry> entries) {
  entries.erase(std::remove_if(entries.begin(), entries.end(), [](const Entry& e) { return e.fields.Empty(); }),
                entries.end());
  if (entries.empty()) {
    object["metadata"].erase("managedFields");
  } else {
    object["metadata"]["managedFields"] = EncodeEntries(std::move(entries));
  }
}

// The part of an object field ownership is about: not the identity and
// bookkeeping the server sets (kube-apiserver's stripped fields), and only
// .status for the status subresource, never .status for a main resource
// that has one.
json Owned(const json& object, const FieldManager::Options& options) {
  if (!object.is_object()) return json::object();
  if (options.subresource == "status") {
    json out = json::object();
    if (object.contains("status")) out["status"] = object["status"];
    return out;
  }
  json out = object;
  out.erase("apiVersion");
  out.erase("kind");
  if (options.has_status_subresource) out.erase("status");
  if (out.contains("metadata") && out["metadata"].is_object()) {
    json& meta = out["metadata"];
    for (const char* field : {"name", "namespace", "creationTimestamp", "selfLink", "uid", "clusterName",
                              "generation", "managedFields", "resourceVersion"}) {
      meta.erase(field);
    }
    if (meta.empty()) out.erase("metadata");
  }
  return out;
}

std::vector<Entry>::iterator Find(std::vector<Entry>& entries, const Entry& who) {
  return std::find_if(entries.begin(), entries.end(), [&](const Entry& e) { return e.SameManager(who); });
}

struct Conflict {
  std::string manager;  // printed
  std::string path;
};

api::ApiError ConflictError(std::vector<Conflict> conflicts) {
  std::stable_sort(conflicts.begin(), conflicts.end(),
                   [](const Conflict& a, const Conflict& b) { return a.manager < b.manager; });
  api::ApiError e;
  e.code = 409;
  e.reason = "Conflict";
  for (const auto& c : conflicts) {
    e.causes.push_back({"FieldManagerConflict", absl::StrCat("conflict with ", c.manager), c.path});
  }
  if (conflicts.size() == 1) {
    e.message = absl::StrCat("Apply failed with 1 conflict: conflict with ", conflicts[0].manager, ": ",
                             conflicts[0].path);
    return e;
  }
  std::vector<std::string> lines;
  std::string last;
  for (const auto& c : conflicts) {
    if (c.manager != last) lines.push_back(absl::StrCat("conflicts with ", c.manager, ":"));
    last = c.manager;
    lines.push_back(absl::StrCat("- ", c.path));
  }
  e.message = absl::StrCat("Apply failed with ", conflicts.size(), " conflicts: ", absl::StrJoin(lines, "\n"));
  return e;
}

}  // namespace

namespace {

// Length of the valid UTF-8 sequence at `s[i]`, 0 when it is not one.
size_t Utf8Length(std::string_view s, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = byte(i);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xc0) != 0x80) return 0;
  }
  return n;
}

// What nlohmann accepts to serialize: exactly valid UTF-8.
bool StorableString(const std::string& s) {
  try {
    (void)json(s).dump();
    return true;
  } catch (const json::exception&) {
    return false;
  }
}

bool IsControl(std::string_view s, size_t i, size_t n) {
  return n == 1 && (static_cast<unsigned char>(s[i]) < 0x20 || s[i] == 0x7f);
}

}  // namespace

std::string FieldManager::PrintableManager(std::string_view name) {
  std::string out;
  for (size_t i = 0; i < name.size();) {
    size_t n = Utf8Length(name, i);
    if (n == 0 || IsControl(name, i, n)) {
      ++i;
      continue;
    }
    if (out.size() + n > kMaxManagerLength) break;
    out.append(name.substr(i, n));
    i += n;
  }
  if (!StorableString(out)) {  // overlong forms, surrogates: keep ASCII
    out.erase(std::remove_if(out.begin(), out.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; }),
              out.end());
  }
  return out;
}

std::string FieldManager::ManagerFromUserAgent(std::string_view user_agent) {
  return PrintableManager(user_agent.substr(0, user_agent.find('/')));
}

std::string FieldManager::ValidateManagerName(std::string_view manager) {
  if (manager.size() > kMaxManagerLength) {
    return absl::StrCat("may not be longer than ", kMaxManagerLength, " characters");
  }
  for (size_t i = 0; i < manager.size();) {
    size_t n = Utf8Length(manager, i);
    if (n == 0 || IsControl(manager, i, n)) return "invalid characters: must be printable";
    i += n;
  }
  if (!StorableString(std::string(manager))) return "invalid characters: must be printable";
  return "";
}

absl::StatusOr<json> FieldManager::Apply(const json* live, const json& config, const Options& options,
                                         api::ApiError* error) const {
  // Objects reach here decoded and bounded; a value nlohmann still refuses
  // (a string that is not UTF-8) is the client's error, never a crash.
  try {
    return ApplyUnchecked(live, config, options, error);
  } catch (const json::exception& e) {
    *error = api::BadRequest(absl::StrCat("the apply configuration cannot be processed: ", e.what()));
    return absl::InvalidArgumentError("apply");
  }
}

json FieldManager::Update(const json* live, json next, const Options& options) const {
  try {
    return UpdateUnchecked(live, next, options);
  } catch (const json::exception&) {
    // As kube-apiserver does when managedFields cannot be computed.
    if (next.contains("metadata") && next["metadata"].is_object()) next["metadata"].erase("managedFields");
    return next;
  }
}

absl::StatusOr<json> FieldManager::ApplyUnchecked(const json* live, const json& config, const Options& options,
                                                  api::ApiError* error) const {
  StructuredMerge typed(schema_, root_);
  auto bad_config = [&](const absl::Status& status) {
    *error = api::BadRequest(absl::StrCat("failed to create typed patch object: ", status.message()));
    return absl::InvalidArgumentError("apply");
  };
  if (config.contains("metadata") && config["metadata"].is_object() &&
      config["metadata"].contains("managedFields") && !config["metadata"]["managedFields"].is_null()) {
    *error = api::BadRequest("metadata.managedFields must be nil");
    return absl::InvalidArgumentError("apply");
  }
  std::vector<Entry> entries;
  json base = live ? *live : json::object();
  if (live) {
    auto decoded = DecodeEntries(*live);
    if (decoded.ok()) entries = std::move(*decoded);
    // An object nobody applied to yet: what it holds belongs to one
    // manager, so the first applier's omissions remove nothing and its
    // changes to existing values are conflicts, as in kube-apiserver.
    if (entries.empty()) {
      auto fields = typed.ToFieldSet(Owned(*live, options));
      if (fields.ok() && !fields->Empty()) {
        entries.push_back(Entry{kBeforeFirstApply, "Update", options.api_version, options.now, "", *fields});
      }
    }
    if (base.contains("metadata") && base["metadata"].is_object()) base["metadata"].erase("managedFields");
  }

  auto applied = typed.ToFieldSet(Owned(config, options));
  if (!applied.ok()) return bad_config(applied.status());
  auto merged = typed.Merge(base, config);
  if (!merged.ok()) return bad_config(merged.status());

  Entry me{options.manager, "Apply", options.api_version, options.now, options.subresource, *applied};
  FieldSet previous;
  if (auto it = Find(entries, me); it != entries.end()) {
    previous = it->fields;
    entries.erase(it);
  }
  // Fields this manager applied before and omits now go, unless someone
  // (another manager, or this configuration below them) still owns them.
  FieldSet others;
  for (const auto& e : entries) others = others.Union(e.fields);
  FieldSet dropped;
  for (const auto& path : previous.Difference(*applied).Members()) {
    if (!others.HasAtOrBelow(path) && !applied->HasAtOrBelow(path)) dropped.Insert(path);
  }
  json result = typed.RemoveFields(*merged, dropped);

  auto changes = typed.Compare(Owned(base, options), Owned(result, options));
  if (!changes.ok()) return bad_config(changes.status());
  FieldSet changed = changes->added.Union(changes->modified);
  std::vector<Conflict> conflicts;
  for (auto& e : entries) {
    FieldSet taken = e.fields.Intersection(changed);
    for (const auto& path : taken.Members()) conflicts.push_back({e.Printed(), FieldSet::PathString(path)});
    if (options.force) e.fields = e.fields.Difference(taken);
    e.fields = e.fields.Difference(changes->removed);
  }
  if (!conflicts.empty() && !options.force) {
    *error = ConflictError(std::move(conflicts));
    return absl::AbortedError("conflict");
  }
  entries.push_back(std::move(me));
  SetEntries(result, std::move(entries));
  return result;
}

json FieldManager::UpdateUnchecked(const json* live, json next, const Options& options) const {
  if (!next.contains("metadata") || !next["metadata"].is_object()) return next;
  json& meta = next["metadata"];
  // `managedFields: [{}]` is how a client clears them.
  if (meta.contains("managedFields") && meta["managedFields"] == json::array({json::object()})) {
    meta.erase("managedFields");
    return next;
  }
  StructuredMerge typed(schema_, root_);
  std::vector<Entry> entries;
  bool from_request = false;
  if (options.subresource.empty()) {
    auto sent = DecodeEntries(next);
    from_request = sent.ok() && !sent->empty();
    if (from_request) entries = std::move(*sent);
  }
  if (!from_request && live) {
    auto kept = DecodeEntries(*live);
    if (kept.ok()) entries = std::move(*kept);
  }
  json before = live ? *live : json::object();
  auto changes = typed.Compare(Owned(before, options), Owned(next, options));
  if (!changes.ok()) {
    meta.erase("managedFields");
    return next;
  }
  Entry me{options.manager, "Update", options.api_version, options.now, options.subresource, FieldSet()};
  auto it = Find(entries, me);
  if (it != entries.end()) {
    me.fields = it->fields;
    me.time = it->time;
    entries.erase(it);
  }
  FieldSet changed = changes->added.Union(changes->modified);
  for (auto& e : entries) e.fields = e.fields.Difference(changed).Difference(changes->removed);
  FieldSet mine = me.fields.Difference(changes->removed).Union(changed);
  if (!(mine == me.fields)) me.time = options.now;
  me.fields = std::move(mine);
  entries.push_back(std::move(me));
  SetEntries(next, std::move(entries));
  return next;
}

}  // namespace kelpie::apiserver
