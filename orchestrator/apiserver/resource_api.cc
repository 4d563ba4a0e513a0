#include "orchestrator/apiserver/resource_api.h"

#include <openssl/evp.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <thread>
#include <ctime>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/base64.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "orchestrator/api/object_meta.h"
#include "orchestrator/api/protobuf/protobuf_codec.h"
#include "orchestrator/api/schema/schema.h"
#include "orchestrator/api/selector.h"
#include "orchestrator/api/strategic_merge_patch.h"
#include "orchestrator/apiserver/field_manager.h"
#include "orchestrator/apiserver/field_validation.h"
#include "orchestrator/apiserver/resource_strategy.h"

namespace kelpie::apiserver {
namespace {

using nlohmann::json;
using api::ApiError;
using api::ResourceType;

constexpr int kMaxGenerateNameAttempts = 8;
constexpr int kMaxPatchAttempts = 5;
constexpr int64_t kDefaultWatchTimeoutSeconds = 1800;

http::HttpResponse JsonBody(int status, std::string body) {
  http::HttpResponse r;
  r.status = status;
  r.SetHeader("Content-Type", "application/json");
  r.SetHeader("Cache-Control", "no-cache, private");
  r.body = std::move(body);
  return r;
}

std::map<std::string, std::string> QueryMap(const std::string& query) {
  std::map<std::string, std::string> out;
  for (auto& [k, v] : http::ParseQuery(query)) out.emplace(std::move(k), std::move(v));
  return out;
}

std::string Param(const std::map<std::string, std::string>& q, const std::string& key) {
  auto it = q.find(key);
  return it == q.end() ? "" : it->second;
}

bool IsTrue(const std::string& v) { return v == "1" || v == "true" || v == "True"; }

// Bounds on decoded documents: deeper nesting than any Kubernetes object
// has, and a node budget that stops YAML alias expansion ("billion laughs")
// and self-referencing aliases.
constexpr int kMaxNestingDepth = 1000;
constexpr size_t kMaxYamlNodes = 1'000'000;

struct YamlTooComplex {
  std::string why;
};
// The fieldValidation parameter (field_validation.h) applied to a create or
// update body: an error for Strict, warnings for Warn, unknown fields dropped.
std::optional<ApiError> ApplyFieldValidation(const ResourceType& t, const std::string& query, json& obj,
                                             std::vector<std::string>* warnings) {
  std::string value = Param(QueryMap(query), "fieldValidation");
  auto mode = ParseFieldValidation(value);
  if (!mode) {
    return api::BadRequest(absl::StrCat("fieldValidation must be one of Ignore, Warn or Strict, not \"", value, "\""));
  }
  return CheckUnknownFields(*mode, t.group, t.version, t.kind, obj, warnings);
}

// YAML to JSON with Kubernetes' (YAML 1.1 core-ish) scalar typing: plain
// scalars may be null, booleans or numbers; quoted ones are strings.
// Throws YamlTooComplex past the bounds above.
json YamlToJson(const YAML::Node& node, int depth, size_t* nodes) {
  if (depth > kMaxNestingDepth) throw YamlTooComplex{"nested deeper than 1000 levels (or a recursive alias)"};
  if (++*nodes > kMaxYamlNodes) throw YamlTooComplex{"more than 1,000,000 nodes once aliases are expanded"};
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Sequence: {
      json arr = json::array();
      for (const auto& e : node) arr.push_back(YamlToJson(e, depth + 1, nodes));
      return arr;
    }
    case YAML::NodeType::Map: {
      json obj = json::object();
      for (const auto& kv : node) obj[kv.first.Scalar()] = YamlToJson(kv.second, depth + 1, nodes);
      return obj;
    }
    case YAML::NodeType::Scalar: {
      const std::string& s = node.Scalar();
      if (node.Tag() == "!") return s;  // quoted
      if (s == "null" || s == "~" || s.empty()) return s.empty() ? json(nullptr) : json(nullptr);
      if (s == "true" || s == "True" || s == "TRUE") return true;
      if (s == "false" || s == "False" || s == "FALSE") return false;
      int64_t i;
      if (absl::SimpleAtoi(s, &i)) return i;
      double d;
      if (s.find_first_of(".eE") != std::string::npos && absl::SimpleAtod(s, &d)) return d;
      return s;
    }
  }
  return nullptr;
}

// Deepest nesting of arrays and objects, without recursion (the value may be
// far deeper than the stack allows).
int NestingDepth(const json& root) {
  int deepest = 0;
  std::vector<std::pair<const json*, int>> pending{{&root, 1}};
  while (!pending.empty()) {
    auto [value, depth] = pending.back();
    pending.pop_back();
    if (!value->is_structured()) continue;
    deepest = std::max(deepest, depth);
    if (deepest > kMaxNestingDepth) return deepest;
    for (const auto& child : *value) pending.emplace_back(&child, depth + 1);
  }
  return deepest;
}

// --- protobuf request bodies ------------------------------------------------
// application/vnd.kubernetes.protobuf, as kubectl's typed clients send it,
// decoded by the schema into the JSON document a JSON client would have sent
// (orchestrator/api/protobuf). Malformed bytes are 400; a kind without a
// schema, a field the schema does not model or a compressed body is 415.
absl::StatusOr<json> DecodeProtobufBody(const std::string& body, ApiError* error) {
  auto decoded = api::protobuf::ProtobufCodec::Builtin().DecodeObject(body);
  if (decoded.ok()) return decoded;
  std::string message(decoded.status().message());
  if (absl::IsUnimplemented(decoded.status())) {
    *error = ApiError{415, "UnsupportedMediaType", absl::StrCat("the protobuf body cannot be decoded: ", message)};
  } else {
    *error = api::BadRequest(absl::StrCat("the protobuf body is malformed: ", message));
  }
  return decoded.status();
}
// --- end of protobuf request bodies -------------------------------------------

// Decodes a request body by its Content-Type: JSON, YAML or protobuf objects.
absl::StatusOr<json> DecodeBody(const http::HttpRequest& req, ApiError* error) {
  const std::string* ct = req.Header("content-type");
  std::string type = ct ? ct->substr(0, ct->find(';')) : "application/json";
  if (req.body.empty()) {
    *error = api::BadRequest("the request body is empty; expected an object");
    return absl::InvalidArgumentError("empty");
  }
  if (type == "application/json" || type == "*/*" || type.empty()) {
    json j;
    try {
      j = json::parse(req.body);
    } catch (const json::parse_error& e) {
      *error = api::BadRequest(absl::StrCat("the request body is not valid JSON: ", e.what()));
      return absl::InvalidArgumentError("bad json");
    }
    if (!j.is_object()) {
      *error = api::BadRequest("the request body must be a JSON object");
      return absl::InvalidArgumentError("not object");
    }
    if (NestingDepth(j) > kMaxNestingDepth) {
      *error = api::BadRequest("the request body is nested deeper than 1000 levels");
      return absl::InvalidArgumentError("too deep");
    }
    return j;
  }
  if (type == api::protobuf::kProtobufMediaType) {
    auto j = DecodeProtobufBody(req.body, error);
    if (j.ok() && NestingDepth(*j) > kMaxNestingDepth) {
      *error = api::BadRequest("the request body is nested deeper than 1000 levels");
      return absl::InvalidArgumentError("too deep");
    }
    return j;
  }
  if (type == "application/yaml" || type == "application/x-yaml" || type == "text/yaml") {
    try {
      size_t nodes = 0;
      json j = YamlToJson(YAML::Load(req.body), 0, &nodes);
      if (!j.is_object()) {
        *error = api::BadRequest("the request body must be a YAML mapping");
        return absl::InvalidArgumentError("not object");
      }
      return j;
    } catch (const YAML::Exception& e) {
      *error = api::BadRequest(absl::StrCat("the request body is not valid YAML: line ", e.mark.line + 1,
                                            ", column ", e.mark.column + 1, ": ", e.msg));
      return absl::InvalidArgumentError("bad yaml");
    } catch (const YamlTooComplex& e) {
      *error = api::BadRequest(absl::StrCat("the request body is not acceptable YAML: ", e.why));
      return absl::InvalidArgumentError("yaml too complex");
    }
  }
  *error = api::UnsupportedMediaType(type);
  return absl::InvalidArgumentError("media type");
}

// "5m", "3h", "2d" as kubectl shows ages.
std::string HumanAge(const std::string& rfc3339) {
  std::tm tm{};
  if (strptime(rfc3339.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm) == nullptr) return "<unknown>";
  int64_t secs = static_cast<int64_t>(std::time(nullptr) - timegm(&tm));
  if (secs < 0) secs = 0;
  if (secs < 120) return absl::StrCat(secs, "s");
  int64_t mins = secs / 60;
  if (mins < 10) return absl::StrCat(mins, "m", secs % 60, "s");
  if (mins < 180) return absl::StrCat(mins, "m");
  int64_t hours = mins / 60;
  if (hours < 8) return absl::StrCat(hours, "h", mins % 60, "m");
  if (hours < 48) return absl::StrCat(hours, "h");
  int64_t days = hours / 24;
  if (days < 8) return absl::StrCat(days, "d", hours % 24, "h");
  if (days < 730) return absl::StrCat(days, "d");
  return absl::StrCat(days / 365, "y", days % 365, "d");
}

bool WantsTable(const http::HttpRequest& req) {
  const std::string* accept = req.Header("accept");
  return accept && absl::StrContains(*accept, "as=Table");
}

}  // namespace

void RespondError(http::HttpResponder& responder, const ApiError& error) {
  http::HttpResponse r = JsonBody(error.code, error.ToJson());
  if (error.retry_after_seconds > 0) r.SetHeader("Retry-After", std::to_string(error.retry_after_seconds));
  responder.Respond(std::move(r));
}

class ResourceApi::Impl : public std::enable_shared_from_this<ResourceApi::Impl> {
 public:
  Impl(store::Store& store, const api::ResourceRegistry& registry,
       std::map<std::string, std::shared_ptr<ResourceStrategy>> strategies)
      : store_(store), registry_(registry), strategies_(std::move(strategies)) {}

  store::Store& store_;
  const api::ResourceRegistry& registry_;
  std::map<std::string, std::shared_ptr<ResourceStrategy>> strategies_;

  ResourceStrategy* StrategyFor(const ResourceType& t) const {
    auto it = strategies_.find(t.kind);
    return it == strategies_.end() ? nullptr : it->second.get();
  }

  // One write of an object plus its strategy's side records. `guard` is the
  // object's own compare (absent for create, mod revision for update and
  // delete). Calls `done` with the transaction result.
  void WriteObject(const std::string& key, std::optional<std::string> value, store::Compare guard,
                   WriteExtras extras, store::Callback<store::TxnResult> done) {
    store::TxnRequest txn;
    txn.compares.push_back(std::move(guard));
    for (auto& c : extras.compares) txn.compares.push_back(std::move(c));
    if (value) {
      txn.success.push_back(store::Op::Put(key, std::move(*value)));
    } else {
      txn.success.push_back(store::Op::Delete(key));
    }
    for (auto& op : extras.ops) txn.success.push_back(std::move(op));
    txn.failure.push_back(store::Op::Get(key));
    store_.TxnAsync(std::move(txn), std::move(done));
  }

  std::string KeyPrefix(const ResourceType& t, const std::string& ns) const {
    return t.namespaced && !ns.empty() ? absl::StrCat(t.StoragePrefix(), ns, "/") : t.StoragePrefix();
  }
  std::string Key(const ResourceType& t, const std::string& ns, const std::string& name) const {
    return t.namespaced ? absl::StrCat(t.StoragePrefix(), ns, "/", name) : t.StoragePrefix() + name;
  }

  // ---------------------------------------------------------------- reads

  void Get(const ResourceType& t, const RequestInfo& info, std::shared_ptr<http::HttpResponder> resp) {
    auto kv = store_.Get(Key(t, info.namespace_name, info.name));
    if (!kv.ok()) return RespondError(*resp, api::FromStoreStatus(kv.status(), t.group, t.plural, info.name));
    resp->Respond(JsonBody(200, api::WithResourceVersion(kv->value_view(), kv->mod_revision)));
  }

  struct ListFilter {
    api::LabelSelector labels;
    api::FieldSelector fields;
    bool Empty() const { return labels.Empty() && fields.Empty(); }
    bool Matches(const json& obj) const {
      static const json kNull;
      const json& meta = obj.contains("metadata") ? obj["metadata"] : kNull;
      const json& lbls = meta.is_object() && meta.contains("labels") ? meta["labels"] : kNull;
      return labels.Matches(lbls) && fields.Matches(obj);
    }
  };

  std::optional<ListFilter> ParseFilter(const ResourceType& t, const std::map<std::string, std::string>& q,
                                        http::HttpResponder& resp) {
    ListFilter f;
    auto labels = api::LabelSelector::Parse(Param(q, "labelSelector"));
    if (!labels.ok()) {
      RespondError(resp, api::BadRequest(std::string(labels.status().message())));
      return std::nullopt;
    }
    auto fields = api::FieldSelector::Parse(Param(q, "fieldSelector"), api::SelectableFields(t.group, t.plural));
    if (!fields.ok()) {
      RespondError(resp, api::BadRequest(std::string(fields.status().message())));
      return std::nullopt;
    }
    f.labels = std::move(*labels);
    f.fields = std::move(*fields);
    return f;
  }

  void List(const ResourceType& t, const RequestInfo& info, const http::HttpRequest& req,
            std::shared_ptr<http::HttpResponder> resp) {
    auto q = QueryMap(req.query);
    auto filter = ParseFilter(t, q, *resp);
    if (!filter) return;
    int64_t limit = 0;
    if (!Param(q, "limit").empty() && (!absl::SimpleAtoi(Param(q, "limit"), &limit) || limit < 0)) {
      return RespondError(*resp, api::BadRequest("limit must be a non-negative integer"));
    }
    std::string prefix = KeyPrefix(t, t.namespaced ? info.namespace_name : "");
    store::RangeOptions ro;
    ro.limit = limit;
    std::string cont = Param(q, "continue");
    if (!cont.empty()) {
      auto decoded = Base64Decode(cont);
      json token = decoded ? json::parse(*decoded, nullptr, false) : json();
      if (!token.is_object() || !token.contains("rv") || !token.contains("start")) {
        return RespondError(*resp, api::BadRequest("continue key is not valid: malformed token"));
      }
      ro.revision = token["rv"].get<int64_t>();
      ro.start_key = prefix + token["start"].get<std::string>();
    } else {
      std::string rv = Param(q, "resourceVersion");
      std::string match = Param(q, "resourceVersionMatch");
      if (match == "Exact") {
        if (!absl::SimpleAtoi(rv, &ro.revision) || ro.revision <= 0) {
          return RespondError(*resp, api::BadRequest("resourceVersionMatch=Exact needs a resourceVersion"));
        }
      } else if (!match.empty() && match != "NotOlderThan") {
        return RespondError(*resp, api::BadRequest(absl::StrCat("unsupported resourceVersionMatch \"", match, "\"")));
      }
    }

    std::vector<store::KeyValue> items;
    int64_t revision = 0;
    bool more = false;
    std::string next_key;
    int64_t remaining = 0;
    // With a filter, keep reading pages until `limit` matches are found.
    while (true) {
      auto page = store_.Range(prefix, ro);
      if (!page.ok()) {
        if (store::IsCompacted(page.status()) && !cont.empty()) {
          return RespondError(*resp, api::Gone("The provided continue parameter is too old to display a "
                                               "consistent list result. You can start a new list without "
                                               "the continue parameter."));
        }
        return RespondError(*resp, api::FromStoreStatus(page.status(), t.group, t.plural, ""));
      }
      revision = page->revision;
      for (auto& kv : page->kvs) {
        if (!filter->Empty()) {
          json obj = json::parse(kv.value_view(), nullptr, false);
          if (obj.is_discarded() || !filter->Matches(obj)) continue;
        }
        items.push_back(std::move(kv));
        if (limit > 0 && static_cast<int64_t>(items.size()) == limit) break;
      }
      bool filled = limit > 0 && static_cast<int64_t>(items.size()) == limit;
      if (filled) {
        // More exist if this page had more after the last taken item.
        const std::string& last = items.back().key;
        more = page->more || page->kvs.back().key != last;
        next_key = last + std::string(1, '\0');
        if (filter->Empty()) remaining = page->count - static_cast<int64_t>(items.size());
        if (!cont.empty()) remaining = 0;
        break;
      }
      if (!page->more) break;
      ro.revision = page->revision;
      ro.start_key = page->next_key;
    }

    if (WantsTable(req)) return resp->Respond(JsonBody(200, TableJson(items, revision, more, next_key, prefix)));
    std::string body = absl::StrCat("{\"apiVersion\":\"", t.GroupVersion(), "\",\"kind\":\"", t.kind,
                                    "List\",\"metadata\":{\"resourceVersion\":\"", revision, "\"");
    if (more) {
      json token = {{"rv", revision}, {"start", next_key.substr(prefix.size())}};
      absl::StrAppend(&body, ",\"continue\":\"", Base64Encode(token.dump()), "\"");
      if (remaining > 0) absl::StrAppend(&body, ",\"remainingItemCount\":", remaining);
    }
    body += "},\"items\":[";
    size_t total = body.size() + 2;
    for (const auto& item : items) total += item.value_view().size() + 48;
    body.reserve(total);
    for (size_t i = 0; i < items.size(); ++i) {
      if (i) body.push_back(',');
      api::AppendWithResourceVersion(items[i].value_view(), items[i].mod_revision, &body);
    }
    body += "]}";
    resp->Respond(JsonBody(200, std::move(body)));
  }

  std::string TableJson(const std::vector<store::KeyValue>& items, int64_t revision,
                        bool more, const std::string& next_key, const std::string& prefix) {
    json table = {{"kind", "Table"},
                  {"apiVersion", "meta.k8s.io/v1"},
                  {"metadata", {{"resourceVersion", std::to_string(revision)}}},
                  {"columnDefinitions",
                   json::array({{{"name", "Name"}, {"type", "string"}, {"format", "name"},
                                 {"description", "Name must be unique within a namespace."},
                                 {"priority", 0}},
                                {{"name", "Age"}, {"type", "string"}, {"format", ""},
                                 {"description", "Time since the object was created."},
                                 {"priority", 0}}})},
                  {"rows", json::array()}};
    if (more) {
      json token = {{"rv", revision}, {"start", next_key.substr(prefix.size())}};
      table["metadata"]["continue"] = Base64Encode(token.dump());
    }
    for (const auto& kv : items) {
      json obj = json::parse(kv.value_view(), nullptr, false);
      if (obj.is_discarded()) continue;
      json meta = obj.value("metadata", json::object());
      meta["resourceVersion"] = std::to_string(kv.mod_revision);
      table["rows"].push_back(
          {{"cells", {meta.value("name", ""), HumanAge(meta.value("creationTimestamp", ""))}},
           {"object", {{"kind", "PartialObjectMetadata"}, {"apiVersion", "meta.k8s.io/v1"}, {"metadata", meta}}}});
    }
    return table.dump();
  }

  // ---------------------------------------------------------------- watch

  struct WatchState {
    std::mutex mu;
    std::unique_ptr<store::WatchHandle> handle;
    bool done = false;
  };

  void Watch(const ResourceType& t, const RequestInfo& info, const http::HttpRequest& req,
             std::shared_ptr<http::HttpResponder> resp) {
    auto q = QueryMap(req.query);
    auto filter_opt = ParseFilter(t, q, *resp);
    if (!filter_opt) return;
    auto filter = std::make_shared<ListFilter>(std::move(*filter_opt));
    if (!info.name.empty()) {
      // A watch on one object is a watch filtered by metadata.name.
      auto named = api::FieldSelector::Parse("metadata.name=" + info.name, {"metadata.name"});
      filter->fields = std::move(*named);
    }
    bool bookmarks = IsTrue(Param(q, "allowWatchBookmarks"));
    int64_t timeout = kDefaultWatchTimeoutSeconds;
    if (!Param(q, "timeoutSeconds").empty()) absl::SimpleAtoi(Param(q, "timeoutSeconds"), &timeout);
    std::string rv_param = Param(q, "resourceVersion");
    int64_t rv = 0;
    if (!rv_param.empty() && !absl::SimpleAtoi(rv_param, &rv)) {
      return RespondError(*resp, api::BadRequest(absl::StrCat("invalid resourceVersion \"", rv_param, "\"")));
    }
    std::string prefix = KeyPrefix(t, t.namespaced ? info.namespace_name : "");

    // resourceVersion unset or 0: start with the current state as ADDED
    // events, then changes after it.
    std::vector<std::string> initial;
    if (rv == 0) {
      store::RangeOptions ro;
      auto page = store_.Range(prefix, ro);
      if (!page.ok()) return RespondError(*resp, api::FromStoreStatus(page.status(), t.group, t.plural, ""));
      rv = page->revision;
      for (const auto& kv : page->kvs) {
        if (!filter->Empty()) {
          json obj = json::parse(kv.value_view(), nullptr, false);
          if (obj.is_discarded() || !filter->Matches(obj)) continue;
        }
        initial.push_back(absl::StrCat("{\"type\":\"ADDED\",\"object\":",
                                       api::WithResourceVersion(kv.value_view(), kv.mod_revision), "}\n"));
      }
    }
    store::WatchOptions wo;
    wo.prefix = prefix;
    wo.start_revision = rv + 1;
    wo.prev_kv = true;
    wo.progress_notify = bookmarks;
    wo.progress_interval = std::chrono::seconds(5);

    auto state = std::make_shared<WatchState>();
    std::string kind = t.kind, api_version = t.GroupVersion();
    std::weak_ptr<http::HttpResponder> weak_resp = resp;
    store::WatchConsumer consumer;
    consumer.on_events = [weak_resp, filter, bookmarks, kind, api_version](store::WatchBatch batch) {
      auto r = weak_resp.lock();
      if (!r) return;
      std::string out;
      if (batch.IsProgressNotify()) {
        if (bookmarks) {
          absl::StrAppend(&out, "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"", kind, "\",\"apiVersion\":\"",
                          api_version, "\",\"metadata\":{\"resourceVersion\":\"", batch.revision, "\"}}}\n");
        }
      }
      for (const auto& ev : batch.events) {
        AppendWatchEvent(ev, *filter, &out);
      }
      if (!out.empty()) r->WriteChunk(std::move(out));
    };
    consumer.on_close = [weak_resp](absl::Status status) {
      auto r = weak_resp.lock();
      if (!r) return;
      if (store::IsCompacted(status)) {
        r->WriteChunk(absl::StrCat("{\"type\":\"ERROR\",\"object\":", api::Gone(std::string(status.message())).ToJson(), "}\n"));
      } else if (!status.ok() && status.code() != absl::StatusCode::kCancelled) {
        ApiError e = status.code() == absl::StatusCode::kResourceExhausted
                         ? api::ApiError{500, "InternalError", std::string(status.message())}
                         : api::InternalError(std::string(status.message()));
        r->WriteChunk(absl::StrCat("{\"type\":\"ERROR\",\"object\":", e.ToJson(), "}\n"));
      }
      r->EndStream();
    };
    // A version older than the compacted one is 410 Gone before any stream
    // starts (later failures arrive as ERROR events).
    if (rv + 1 <= store_.CompactedRevision()) {
      return RespondError(*resp, api::Gone(absl::StrCat("too old resource version: ", rv, " (",
                                                        store_.CompactedRevision(), ")")));
    }
    // The stream and its initial events go out before the store watch
    // starts: its first events (from rv + 1, replayed from history) can then
    // only follow them.
    resp->StartStream(200, {{"Content-Type", "application/json"}, {"Cache-Control", "no-cache, private"}});
    for (auto& line : initial) resp->WriteChunk(std::move(line));
    auto handle = store_.Watch(wo, std::move(consumer));
    if (!handle.ok()) {
      ApiError e = api::FromStoreStatus(handle.status(), t.group, t.plural, "");
      resp->WriteChunk(absl::StrCat("{\"type\":\"ERROR\",\"object\":", e.ToJson(), "}\n"));
      resp->EndStream();
      return;
    }
    {
      std::lock_guard<std::mutex> lock(state->mu);
      state->handle = std::move(*handle);
    }
    resp->OnAbort([state] {
      std::lock_guard<std::mutex> lock(state->mu);
      if (state->handle) state->handle->Cancel();
      state->handle.reset();
    });
    // timeoutSeconds: end the stream after the timeout, as kube-apiserver does.
    ScheduleWatchTimeout(state, resp, timeout);
  }

  static void AppendWatchEvent(const store::Event& ev, const ListFilter& filter, std::string* out) {
    bool is_delete = ev.type == store::Event::Type::kDelete;
    std::string_view current = is_delete ? std::string_view() : ev.kv.value_view();
    std::string_view previous = ev.prev_kv ? ev.prev_kv->value_view() : std::string_view();
    bool now_matches = !is_delete, was_matching = ev.prev_kv.has_value();
    if (!filter.Empty()) {
      if (!is_delete) {
        json obj = json::parse(current, nullptr, false);
        now_matches = !obj.is_discarded() && filter.Matches(obj);
      }
      if (ev.prev_kv) {
        json prev = json::parse(previous, nullptr, false);
        was_matching = !prev.is_discarded() && filter.Matches(prev);
      }
    }
    const char* type = nullptr;
    std::string_view body;
    if (is_delete) {
      if (!was_matching || !ev.prev_kv) return;
      type = "DELETED";
      body = previous;
    } else if (now_matches) {
      type = (ev.kv.version == 1 || !was_matching) ? "ADDED" : "MODIFIED";
      body = current;
    } else if (was_matching) {
      type = "DELETED";  // left the selection
      body = current;
    } else {
      return;
    }
    absl::StrAppend(out, "{\"type\":\"", type, "\",\"object\":",
                    api::WithResourceVersion(body, ev.kv.mod_revision), "}\n");
  }

  void ScheduleWatchTimeout(std::shared_ptr<WatchState> state, std::shared_ptr<http::HttpResponder> resp,
                            int64_t timeout_seconds) {
    std::weak_ptr<http::HttpResponder> weak = resp;
    timers_.Schedule(std::chrono::seconds(timeout_seconds), [state, weak] {
      {
        std::lock_guard<std::mutex> lock(state->mu);
        if (state->handle) state->handle->Cancel();
        state->handle.reset();
      }
      if (auto r = weak.lock()) r->EndStream();
    });
  }

  // A small timer thread for watch timeouts: one thread for all watches.
  class Timers {
   public:
    ~Timers() {
      {
        std::lock_guard<std::mutex> lock(mu_);
        stop_ = true;
      }
      cv_.notify_all();
      if (thread_.joinable()) thread_.join();
    }
    void Schedule(std::chrono::seconds after, std::function<void()> fn) {
      std::lock_guard<std::mutex> lock(mu_);
      if (!thread_.joinable()) thread_ = std::thread([this] { Run(); });
      queue_.emplace(std::chrono::steady_clock::now() + after, std::move(fn));
      cv_.notify_all();
    }

   private:
    void Run() {
      std::unique_lock<std::mutex> lock(mu_);
      while (!stop_) {
        if (queue_.empty()) {
          cv_.wait(lock);
          continue;
        }
        auto next = queue_.begin()->first;
        if (std::chrono::steady_clock::now() < next) {
          cv_.wait_until(lock, next);
          continue;
        }
        auto fn = std::move(queue_.begin()->second);
        queue_.erase(queue_.begin());
        lock.unlock();
        fn();
        lock.lock();
      }
    }
    std::mutex mu_;
    std::condition_variable cv_;
    std::multimap<std::chrono::steady_clock::time_point, std::function<void()>> queue_;
    bool stop_ = false;
    std::thread thread_;
  };
  // ---------------------------------------------------------------- writes

  static bool DryRun(const std::map<std::string, std::string>& q) {
    return Param(q, "dryRun") == "All";
  }

  // Checks apiVersion/kind of a body against the resource; fills them when
  // absent.
  static std::optional<ApiError> CheckTypeMeta(const ResourceType& t, json& obj) {
    if (auto shape = api::NormalizeObjectShape(obj); !shape.ok()) {
      return api::BadRequest(std::string(shape.message()));
    }
    std::string kind = obj.value("kind", "");
    std::string api_version = obj.value("apiVersion", "");
    if (!kind.empty() && kind != t.kind) {
      return api::BadRequest(absl::StrCat("the kind \"", kind, "\" of the body does not match the resource \"",
                                          t.plural, "\" (", t.kind, ")"));
    }
    if (!api_version.empty() && api_version != t.GroupVersion()) {
      return api::BadRequest(absl::StrCat("the apiVersion \"", api_version, "\" of the body does not match \"",
                                          t.GroupVersion(), "\""));
    }
    obj["kind"] = t.kind;
    obj["apiVersion"] = t.GroupVersion();
    if (!obj.contains("metadata") || obj["metadata"].is_null()) obj["metadata"] = json::object();
    return std::nullopt;
  }

  std::optional<ApiError> CheckNamespace(const ResourceType& t, const std::string& ns, json& obj) {
    json& meta = obj["metadata"];
    if (!t.namespaced) {
      meta.erase("namespace");
      return std::nullopt;
    }
    std::string body_ns = meta.value("namespace", "");
    if (body_ns.empty()) {
      meta["namespace"] = ns;
    } else if (body_ns != ns) {
      return api::BadRequest("the namespace of the provided object does not match the namespace sent on the request");
    }
    return std::nullopt;
  }

  std::optional<ApiError> NamespaceAcceptsNewObjects(const std::string& ns) {
    auto kv = store_.Get(absl::StrCat("/registry/namespaces/", ns));
    if (!kv.ok()) {
      if (kv.status().code() == absl::StatusCode::kNotFound) return api::NotFound("", "namespaces", ns);
      return api::FromStoreStatus(kv.status(), "", "namespaces", ns);
    }
    json obj = json::parse(kv->value_view(), nullptr, false);
    if (!obj.is_discarded() && obj["metadata"].contains("deletionTimestamp")) {
      ApiError e{403, "Forbidden",
                 absl::StrCat("unable to create new content in namespace ", ns, " because it is being terminated")};
      return e;
    }
    return std::nullopt;
  }

  void Create(const ResourceType& t, const RequestInfo& info, http::HttpRequest&& req,
              std::shared_ptr<http::HttpResponder> resp) {
    if (!info.subresource.empty()) {
      return RespondError(*resp, api::MethodNotAllowed(absl::StrCat("create is not supported on ", t.plural, "/", info.subresource)));
    }
    if (!info.name.empty()) {
      return RespondError(*resp, api::MethodNotAllowed("POST is not supported on a named object; use PUT or PATCH"));
    }
    ApiError err;
    auto decoded = DecodeBody(req, &err);
    if (!decoded.ok()) return RespondError(*resp, err);
    json obj = std::move(*decoded);
    if (auto e = CheckTypeMeta(t, obj)) return RespondError(*resp, *e);
    std::vector<std::string> warnings;
    if (auto e = ApplyFieldValidation(t, req.query, obj, &warnings)) return RespondError(*resp, *e);
    resp = WithWarnings(std::move(resp), std::move(warnings));
    CreateObject(t, info, req, std::move(obj), std::move(resp));
  }

  // A decoded create. `record_update` is false for server-side apply, which
  // has recorded its own managedFields entry.
  void CreateObject(const ResourceType& t, const RequestInfo& info, const http::HttpRequest& req, json obj,
                    std::shared_ptr<http::HttpResponder> resp, bool record_update = true) {
    if (auto e = CheckNamespace(t, info.namespace_name, obj)) return RespondError(*resp, *e);
    json& meta = obj["metadata"];
    if (meta.contains("resourceVersion") && !meta["resourceVersion"].get<std::string>().empty()) {
      return RespondError(*resp, api::BadRequest("resourceVersion should not be set on objects to be created"));
    }
    auto causes = api::ValidateObjectMeta(obj, t, /*creating=*/true);
    if (!causes.empty()) {
      return RespondError(*resp, api::Invalid(t.group, t.kind, meta.value("name", meta.value("generateName", "")), std::move(causes)));
    }
    if (t.namespaced) {
      if (auto e = NamespaceAcceptsNewObjects(info.namespace_name)) return RespondError(*resp, *e);
    }
    meta.erase("resourceVersion");
    meta.erase("deletionTimestamp");
    meta.erase("deletionGracePeriodSeconds");
    meta["uid"] = api::NewUid();
    meta["creationTimestamp"] = api::NowRfc3339();
    meta["generation"] = 1;
    if (t.kind == "Namespace") {
      obj["spec"]["finalizers"] = json::array({"kubernetes"});
      obj["status"] = {{"phase", "Active"}};
      if (!meta.contains("labels") || !meta["labels"].is_object()) meta["labels"] = json::object();
      meta["labels"]["kubernetes.io/metadata.name"] = meta.value("name", "");
    }
    if (record_update) RecordCreate(t, info, req, obj);
    auto q = QueryMap(req.query);
    bool generate = meta.value("name", "").empty();
    if (DryRun(q)) {
      if (generate) meta["name"] = meta["generateName"].get<std::string>() + api::RandomNameSuffix();
      if (ResourceStrategy* strategy = StrategyFor(t)) {
        // Shows the defaults; allocations are not reserved by a dry run.
        WriteExtras ignored;
        ApiError e;
        if (!strategy->PrepareCreate(obj, &ignored, &e).ok()) return RespondError(*resp, e);
      }
      return resp->Respond(JsonBody(201, obj.dump()));
    }
    CreateWithRetries(t, std::move(obj), generate, kMaxGenerateNameAttempts, std::move(resp));
  }

  void CreateWithRetries(const ResourceType& t, json obj, bool generate, int attempts_left,
                         std::shared_ptr<http::HttpResponder> resp) {
    json& meta = obj["metadata"];
    if (generate) meta["name"] = meta["generateName"].get<std::string>() + api::RandomNameSuffix();
    std::string name = meta["name"];
    std::string key = Key(t, meta.value("namespace", ""), name);
    WriteExtras extras;
    if (ResourceStrategy* strategy = StrategyFor(t)) {
      json prepared = obj;
      ApiError e;
      if (!strategy->PrepareCreate(prepared, &extras, &e).ok()) return RespondError(*resp, e);
      obj = std::move(prepared);
    }
    bool has_extras = !extras.compares.empty();
    auto self = shared_from_this();
    const ResourceType* type = &t;
    std::string value = obj.dump();
    WriteObject(key, value, {key, store::Compare::Target::kCreateRevision, store::Compare::Result::kEqual, 0},
                std::move(extras),
                [self, type, obj = std::move(obj), generate, attempts_left, resp, name, has_extras,
                 value](absl::StatusOr<store::TxnResult> r) mutable {
                  if (!r.ok()) {
                    return RespondError(*resp, api::FromStoreStatus(r.status(), type->group, type->plural, name));
                  }
                  if (!r->succeeded) {
                    bool exists = !r->results.empty() && r->results[0].kv.has_value();
                    // Retry on a generated name collision, or when a side
                    // record (an allocation) was taken concurrently.
                    if (((generate && exists) || (!exists && has_extras)) && attempts_left > 1) {
                      if (!generate) obj["metadata"]["name"] = name;
                      return self->CreateWithRetries(*type, std::move(obj), generate, attempts_left - 1, resp);
                    }
                    if (exists) return RespondError(*resp, api::AlreadyExists(type->group, type->plural, name));
                    return RespondError(*resp, api::Conflict(type->group, type->plural, name,
                                                             "a resource it needs was allocated concurrently; retry"));
                  }
                  resp->Respond(JsonBody(201, api::WithResourceVersion(value, r->revision)));
                });
  }

  // Applies `mutate` to the stored object and writes the result with a
  // compare-and-swap; used by update, patch and delete-with-finalizers.
  // `mutate` returns an error to stop, or the new object.
  using Mutation = std::function<absl::StatusOr<json>(const json& current, int64_t mod_revision, ApiError* error)>;
  // Turns the written object (with its resourceVersion) into the response
  // body; subresources such as scale answer with another kind.
  using Render = std::function<std::string(const std::string& written)>;

  // `deleting` lets the mutation set deletionTimestamp and
  // deletionGracePeriodSeconds, which clients may not change otherwise.
  void Mutate(const ResourceType& t, const std::string& ns, const std::string& name, bool dry_run,
              bool retry_on_conflict, int attempts_left, Mutation mutate, std::shared_ptr<http::HttpResponder> resp,
              int success_code = 200, Render render = nullptr, bool deleting = false) {
    std::string key = Key(t, ns, name);
    auto kv = store_.Get(key);
    if (!kv.ok()) return RespondError(*resp, api::FromStoreStatus(kv.status(), t.group, t.plural, name));
    json current = json::parse(kv->value_view(), nullptr, false);
    if (current.is_discarded()) return RespondError(*resp, api::InternalError("stored object is not valid JSON"));
    ApiError err;
    auto next = mutate(current, kv->mod_revision, &err);
    if (!next.ok()) return RespondError(*resp, err);
    json& meta = (*next)["metadata"];
    // Fields the server owns.
    meta["uid"] = current["metadata"].value("uid", "");
    meta["creationTimestamp"] = current["metadata"].value("creationTimestamp", "");
    meta["name"] = name;
    if (t.namespaced) meta["namespace"] = ns; else meta.erase("namespace");
    if (!deleting) {
      for (const char* field : {"deletionTimestamp", "deletionGracePeriodSeconds"}) {
        if (current["metadata"].contains(field)) {
          meta[field] = current["metadata"][field];
        } else {
          meta.erase(field);
        }
      }
    }
    int64_t generation = current["metadata"].value("generation", int64_t{1});
    if ((*next).value("spec", json()) != current.value("spec", json())) ++generation;
    meta["generation"] = generation;
    meta.erase("resourceVersion");
    auto causes = api::ValidateObjectMeta(*next, t, /*creating=*/false);
    if (!causes.empty()) return RespondError(*resp, api::Invalid(t.group, t.kind, name, std::move(causes)));

    // A gracefully deleted pod stays until its kubelet deletes it with a
    // zero grace period.
    bool finalized = meta.contains("deletionTimestamp") &&
                     meta.value("deletionGracePeriodSeconds", int64_t{0}) == 0 &&
                     (!meta.contains("finalizers") || meta["finalizers"].empty()) &&
                     !(t.kind == "Namespace" && next->contains("spec") && (*next)["spec"].contains("finalizers") &&
                       !(*next)["spec"]["finalizers"].empty());
    WriteExtras extras;
    if (ResourceStrategy* strategy = StrategyFor(t)) {
      ApiError e;
      if (finalized) {
        strategy->PrepareDelete(current, &extras);
      } else if (!strategy->PrepareUpdate(current, *next, &extras, &e).ok()) {
        return RespondError(*resp, e);
      }
    }
    if (dry_run) {
      meta["resourceVersion"] = std::to_string(kv->mod_revision);
      std::string body = next->dump();
      return resp->Respond(JsonBody(success_code, render ? render(body) : body));
    }
    auto self = shared_from_this();
    const ResourceType* type = &t;
    std::string value = next->dump();
    auto on_done = [self, type, ns, name, retry_on_conflict, attempts_left, mutate, resp, success_code, value,
                    render, deleting](absl::StatusOr<store::TxnResult> r) mutable {
      if (!r.ok()) return RespondError(*resp, api::FromStoreStatus(r.status(), type->group, type->plural, name));
      if (!r->succeeded) {
        bool gone = r->results.empty() || !r->results[0].kv.has_value();
        if (gone) return RespondError(*resp, api::NotFound(type->group, type->plural, name));
        if (retry_on_conflict && attempts_left > 1) {
          return self->Mutate(*type, ns, name, false, true, attempts_left - 1, std::move(mutate), resp, success_code,
                              std::move(render), deleting);
        }
        return RespondError(*resp, api::Conflict(type->group, type->plural, name,
                                                 "the object has been modified; please apply your changes to the "
                                                 "latest version and try again"));
      }
      std::string written = api::WithResourceVersion(value, r->revision);
      resp->Respond(JsonBody(success_code, render ? render(written) : written));
    };
    store::Compare guard{key, store::Compare::Target::kModRevision, store::Compare::Result::kEqual, kv->mod_revision};
    // An object whose last finalizer is gone while it is being deleted is
    // deleted.
    WriteObject(key, finalized ? std::nullopt : std::optional<std::string>(value), std::move(guard),
                std::move(extras), std::move(on_done));
  }

  bool HasStatusSubresource(const ResourceType& t) const {
    for (const auto& s : t.subresources) {
      if (s == "status") return true;
    }
    return false;
  }

  // The object a full-object write (PUT or patch result) turns into: the
  // status subresource only changes .status; the main resource never does
  // when a status subresource exists.
  json MergeForSubresource(const ResourceType& t, const std::string& subresource, const json& current,
                           json desired) {
    if (subresource == "status") {
      json out = current;
      out["status"] = desired.value("status", json());
      if (out["status"].is_null()) out.erase("status");
      return out;
    }
    if (HasStatusSubresource(t)) {
      if (current.contains("status")) {
        desired["status"] = current["status"];
      } else {
        desired.erase("status");
      }
    }
    return desired;
  }

  void Update(const ResourceType& t, const RequestInfo& info, http::HttpRequest&& req,
              std::shared_ptr<http::HttpResponder> resp) {
    if (!info.subresource.empty() && info.subresource != "status") {
      return RespondError(*resp, api::NotFound(t.group, t.plural + "/" + info.subresource, info.name));
    }
    ApiError err;
    auto decoded = DecodeBody(req, &err);
    if (!decoded.ok()) return RespondError(*resp, err);
    json body = std::move(*decoded);
    if (auto e = CheckTypeMeta(t, body)) return RespondError(*resp, *e);
    std::vector<std::string> warnings;
    if (auto e = ApplyFieldValidation(t, req.query, body, &warnings)) return RespondError(*resp, *e);
    resp = WithWarnings(std::move(resp), std::move(warnings));
    if (auto e = CheckNamespace(t, info.namespace_name, body)) return RespondError(*resp, *e);
    std::string body_name = body["metadata"].value("name", "");
    if (body_name != info.name) {
      return RespondError(*resp, api::BadRequest(absl::StrCat("the name of the object (", body_name,
                                                              ") does not match the name on the URL (", info.name, ")")));
    }
    std::string want_rv = body["metadata"].value("resourceVersion", "");
    std::string want_uid = body["metadata"].value("uid", "");
    std::string subresource = info.subresource;
    const ResourceType* type = &t;
    auto q = QueryMap(req.query);
    Mutate(t, info.namespace_name, info.name, DryRun(q), /*retry_on_conflict=*/want_rv.empty(), kMaxPatchAttempts,
           TrackManagedFields(t, info, req,
           [this, type, subresource, body, want_rv, want_uid](const json& current, int64_t mod, ApiError* e) -> absl::StatusOr<json> {
             if (!want_rv.empty() && want_rv != std::to_string(mod)) {
               *e = api::Conflict(type->group, type->plural, current["metadata"].value("name", ""),
                                  "the object has been modified; please apply your changes to the latest version and try again");
               return absl::FailedPreconditionError("conflict");
             }
             std::string uid = current["metadata"].value("uid", "");
             if (!want_uid.empty() && want_uid != uid) {
               *e = api::Conflict(type->group, type->plural, current["metadata"].value("name", ""),
                                  absl::StrCat("Precondition failed: UID in precondition: ", want_uid,
                                               ", UID in object meta: ", uid));
               return absl::FailedPreconditionError("conflict");
             }
             return MergeForSubresource(*type, subresource, current, body);
           }),
           std::move(resp));
  }

  void Patch(const ResourceType& t, const RequestInfo& info, http::HttpRequest&& req,
             std::shared_ptr<http::HttpResponder> resp) {
    if (!info.subresource.empty() && info.subresource != "status") {
      return RespondError(*resp, api::NotFound(t.group, t.plural + "/" + info.subresource, info.name));
    }
    const std::string* ct_header = req.Header("content-type");
    std::string ct = ct_header ? ct_header->substr(0, ct_header->find(';')) : "";
    enum class Kind { kJson, kMerge, kStrategic } kind;
    if (ct == "application/json-patch+json") {
      kind = Kind::kJson;
    } else if (ct == "application/merge-patch+json") {
      kind = Kind::kMerge;
    } else if (ct == "application/strategic-merge-patch+json") {
      kind = Kind::kStrategic;
    } else if (ct == "application/apply-patch+yaml") {
      return ServerSideApply(t, info, std::move(req), std::move(resp));
    } else {
      return RespondError(*resp, api::UnsupportedMediaType(ct));
    }
    json patch = json::parse(req.body, nullptr, false);
    if (patch.is_discarded()) return RespondError(*resp, api::BadRequest("the patch is not valid JSON"));
    if (kind == Kind::kJson && !patch.is_array()) {
      return RespondError(*resp, api::BadRequest("a JSON patch must be an array of operations"));
    }
    if (kind != Kind::kJson && !patch.is_object()) {
      return RespondError(*resp, api::BadRequest("a merge patch must be a JSON object"));
    }
    std::string subresource = info.subresource;
    const ResourceType* type = &t;
    auto q = QueryMap(req.query);
    // A resourceVersion inside the patch is a precondition: no retries then.
    bool has_rv_precondition = kind != Kind::kJson && patch.contains("metadata") &&
                               patch["metadata"].is_object() && patch["metadata"].contains("resourceVersion");
    Mutate(t, info.namespace_name, info.name, DryRun(q), !has_rv_precondition, kMaxPatchAttempts,
           TrackManagedFields(t, info, req,
           [this, type, subresource, patch, kind](const json& current, int64_t mod, ApiError* e) -> absl::StatusOr<json> {
             json base = current;
             base["metadata"]["resourceVersion"] = std::to_string(mod);
             json patched;
             try {
               if (kind == Kind::kJson) {
                 patched = base.patch(patch);
               } else if (kind == Kind::kMerge) {
                 patched = base;
                 patched.merge_patch(patch);
               } else {
                 auto r = api::StrategicMergePatch(base, patch);
                 if (!r.ok()) {
                   *e = api::BadRequest(std::string(r.status().message()));
                   return r.status();
                 }
                 patched = std::move(*r);
               }
             } catch (const json::exception& ex) {
               *e = ApiError{422, "Invalid", absl::StrCat("the patch could not be applied: ", ex.what())};
               return absl::InvalidArgumentError("patch");
             }
             if (!patched.is_object() || !patched.contains("metadata") || !patched["metadata"].is_object()) {
               *e = ApiError{422, "Invalid", "the patched object has no metadata"};
               return absl::InvalidArgumentError("patch");
             }
             if (auto shape = api::NormalizeObjectShape(patched); !shape.ok()) {
               *e = api::BadRequest(std::string(shape.message()));
               return shape;
             }
             std::string rv = patched["metadata"].value("resourceVersion", "");
             if (!rv.empty() && rv != std::to_string(mod)) {
               *e = api::Conflict(type->group, type->plural, current["metadata"].value("name", ""),
                                  "the object has been modified; please apply your changes to the latest version and try again");
               return absl::FailedPreconditionError("conflict");
             }
             if (patched.value("kind", "") != type->kind || patched.value("apiVersion", "") != type->GroupVersion()) {
               *e = api::BadRequest("a patch may not change apiVersion or kind");
               return absl::InvalidArgumentError("patch");
             }
             return MergeForSubresource(*type, subresource, current, std::move(patched));
           }),
           std::move(resp));
  }

  // ------------------------------------------- server-side apply and managedFields
  // (the logic is in field_manager.h; these only connect it to the requests)

  static FieldManager MakeFieldManager(const ResourceType& t) {
    const auto& schema = api::schema::Schema::Builtin();
    return FieldManager(schema, schema.RootType(t.group, t.version, t.kind));
  }

  FieldManager::Options ManagerOptions(const ResourceType& t, const RequestInfo& info,
                                       const http::HttpRequest& req) const {
    auto q = QueryMap(req.query);
    FieldManager::Options o;
    o.manager = FieldManager::PrintableManager(Param(q, "fieldManager"));
    if (o.manager.empty()) {
      const std::string* agent = req.Header("user-agent");
      o.manager = FieldManager::ManagerFromUserAgent(agent ? *agent : "");
    }
    o.api_version = t.GroupVersion();
    o.subresource = info.subresource;
    o.has_status_subresource = HasStatusSubresource(t);
    o.force = IsTrue(Param(q, "force"));
    o.now = api::NowRfc3339();
    return o;
  }

  // The creator's Update entry, written into obj's metadata in place
  // (callers hold references into it).
  void RecordCreate(const ResourceType& t, const RequestInfo& info, const http::HttpRequest& req, json& obj) {
    json recorded = MakeFieldManager(t).Update(nullptr, obj, ManagerOptions(t, info, req));
    json& meta = obj["metadata"];
    auto fields = recorded["metadata"].find("managedFields");
    if (fields == recorded["metadata"].end()) {
      meta.erase("managedFields");
    } else {
      meta["managedFields"] = std::move(*fields);
    }
  }

  // An update or patch mutation that also records its writer's Update entry.
  Mutation TrackManagedFields(const ResourceType& t, const RequestInfo& info, const http::HttpRequest& req,
                              Mutation mutate) {
    return [manager = MakeFieldManager(t), options = ManagerOptions(t, info, req), mutate = std::move(mutate)](
               const json& current, int64_t mod, ApiError* e) -> absl::StatusOr<json> {
      auto next = mutate(current, mod, e);
      if (!next.ok()) return next;
      return manager.Update(&current, *std::move(next), options);
    };
  }

  // PATCH with application/apply-patch+yaml: creates the object when absent.
  void ServerSideApply(const ResourceType& t, const RequestInfo& info, http::HttpRequest&& req,
                       std::shared_ptr<http::HttpResponder> resp) {
    auto q = QueryMap(req.query);
    std::string manager = Param(q, "fieldManager");
    std::string manager_problem = manager.empty() ? "Required value: is required for apply patch"
                                                  : FieldManager::ValidateManagerName(manager);
    if (!manager_problem.empty()) {
      if (!manager.empty()) manager_problem = absl::StrCat("Invalid value: ", json(manager).dump(), ": ", manager_problem);
      return RespondError(*resp, api::Invalid("meta.k8s.io", "PatchOptions", "",
                                              {{manager.empty() ? "FieldValueRequired" : "FieldValueInvalid",
                                                manager_problem, "fieldManager"}}));
    }
    for (auto& [name, value] : req.headers) {
      if (name == "content-type") value = "application/yaml";  // YAML, or JSON (a subset)
    }
    ApiError err;
    auto decoded = DecodeBody(req, &err);
    if (!decoded.ok()) return RespondError(*resp, err);
    json config = std::move(*decoded);
    auto text = [&config](const char* key) {
      auto it = config.find(key);
      return it != config.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    if (text("apiVersion") != t.GroupVersion() || text("kind") != t.kind) {
      return RespondError(*resp, api::BadRequest(absl::StrCat(
                                     "the apply configuration must have apiVersion \"", t.GroupVersion(),
                                     "\" and kind \"", t.kind, "\" (it has apiVersion \"", text("apiVersion"),
                                     "\" and kind \"", text("kind"), "\")")));
    }
    if (auto e = CheckTypeMeta(t, config)) return RespondError(*resp, *e);
    std::vector<std::string> warnings;
    if (auto e = ApplyFieldValidation(t, req.query, config, &warnings)) return RespondError(*resp, *e);
    resp = WithWarnings(std::move(resp), std::move(warnings));
    std::string body_name = config["metadata"].value("name", "");
    if (body_name != info.name) {
      return RespondError(*resp, api::BadRequest(absl::StrCat("the name of the object (", body_name,
                                                              ") does not match the name on the URL (", info.name, ")")));
    }
    if (auto e = CheckNamespace(t, info.namespace_name, config)) return RespondError(*resp, *e);
    FieldManager::Options options = ManagerOptions(t, info, req);
    FieldManager field_manager = MakeFieldManager(t);
    auto kv = store_.Get(Key(t, info.namespace_name, info.name));
    if (!kv.ok() && kv.status().code() == absl::StatusCode::kNotFound && info.subresource.empty()) {
      auto created = field_manager.Apply(nullptr, config, options, &err);
      if (!created.ok()) return RespondError(*resp, err);
      RequestInfo create_info = info;
      create_info.name.clear();
      return CreateObject(t, create_info, req, std::move(*created), std::move(resp), /*record_update=*/false);
    }
    const ResourceType* type = &t;
    std::string subresource = info.subresource;
    Mutate(t, info.namespace_name, info.name, DryRun(q), /*retry_on_conflict=*/true, kMaxPatchAttempts,
           [this, type, subresource, config, options, field_manager](const json& current, int64_t,
                                                                      ApiError* e) -> absl::StatusOr<json> {
             auto applied = field_manager.Apply(&current, config, options, e);
             if (!applied.ok()) return applied;
             return MergeForSubresource(*type, subresource, current, *std::move(applied));
           },
           std::move(resp));
  }

  void Delete(const ResourceType& t, const RequestInfo& info, const http::HttpRequest& req,
              std::shared_ptr<http::HttpResponder> resp, int attempts_left = kMaxPatchAttempts) {
    if (!info.subresource.empty()) {
      return RespondError(*resp, api::MethodNotAllowed(absl::StrCat("delete is not supported on ", t.plural, "/", info.subresource)));
    }
    json options = json::object();
    if (!req.body.empty()) {
      options = json::parse(req.body, nullptr, false);
      if (options.is_discarded() || !options.is_object()) {
        return RespondError(*resp, api::BadRequest("the DeleteOptions body is not a valid JSON object"));
      }
    }
    auto q = QueryMap(req.query);
    std::string policy = options.value("propagationPolicy", Param(q, "propagationPolicy"));
    if (options.value("orphanDependents", false) || IsTrue(Param(q, "orphanDependents"))) policy = "Orphan";
    if (!policy.empty() && policy != "Orphan" && policy != "Background" && policy != "Foreground") {
      return RespondError(*resp, api::Invalid(t.group, t.kind, info.name,
                                              {{"FieldValueNotSupported",
                                                absl::StrCat("Unsupported value: \"", policy,
                                                             "\": supported values: \"Foreground\", \"Background\", \"Orphan\""),
                                                "propagationPolicy"}}));
    }
    json preconditions = options.value("preconditions", json::object());
    bool dry_run = DryRun(q) || (options.contains("dryRun") && options["dryRun"].is_array() && !options["dryRun"].empty());
    const ResourceType* type = &t;
    std::string key = Key(t, info.namespace_name, info.name);
    auto kv = store_.Get(key);
    if (!kv.ok()) return RespondError(*resp, api::FromStoreStatus(kv.status(), t.group, t.plural, info.name));
    json current = json::parse(kv->value_view(), nullptr, false);
    if (current.is_discarded()) return RespondError(*resp, api::InternalError("stored object is not valid JSON"));
    std::string pre_uid = preconditions.value("uid", "");
    std::string pre_rv = preconditions.value("resourceVersion", "");
    if ((!pre_uid.empty() && pre_uid != current["metadata"].value("uid", "")) ||
        (!pre_rv.empty() && pre_rv != std::to_string(kv->mod_revision))) {
      return RespondError(*resp, api::Conflict(t.group, t.plural, info.name,
                                               "Precondition failed: the object's uid or resourceVersion does not match"));
    }
    // Orphan and Foreground are recorded as finalizers for the garbage
    // collector, as kube-apiserver does; so is the namespace lifecycle.
    std::vector<std::string> add_finalizers;
    if (policy == "Orphan") add_finalizers.push_back("orphan");
    if (policy == "Foreground") add_finalizers.push_back("foregroundDeletion");
    bool has_finalizers = current["metadata"].contains("finalizers") && !current["metadata"]["finalizers"].empty();
    bool namespace_with_finalizers = t.kind == "Namespace";
    auto grace = GracePeriod(t, current, options, q);
    if (!grace.ok()) {
      return RespondError(*resp, api::BadRequest(std::string(grace.status().message())));
    }
    bool graceful = *grace > 0;
    if (has_finalizers || !add_finalizers.empty() || namespace_with_finalizers || graceful) {
      int64_t grace_seconds = *grace;
      Mutate(t, info.namespace_name, info.name, dry_run, true, kMaxPatchAttempts,
             [type, add_finalizers, grace_seconds](const json& cur, int64_t, ApiError*) -> absl::StatusOr<json> {
               json next = cur;
               json& meta = next["metadata"];
               if (!meta.contains("deletionTimestamp")) {
                 meta["deletionTimestamp"] = api::NowRfc3339(grace_seconds);
                 meta["deletionGracePeriodSeconds"] = grace_seconds;
               } else if (grace_seconds < meta.value("deletionGracePeriodSeconds", int64_t{0})) {
                 // A second deletion may shorten the grace period, never
                 // lengthen it.
                 meta["deletionTimestamp"] = api::NowRfc3339(grace_seconds);
                 meta["deletionGracePeriodSeconds"] = grace_seconds;
               }
               if (!add_finalizers.empty()) {
                 if (!meta.contains("finalizers") || !meta["finalizers"].is_array()) meta["finalizers"] = json::array();
                 for (const auto& f : add_finalizers) {
                   bool present = false;
                   for (const auto& x : meta["finalizers"]) present = present || x == f;
                   if (!present) meta["finalizers"].push_back(f);
                 }
               }
               if (type->kind == "Namespace") next["status"]["phase"] = "Terminating";
               return next;
             },
             std::move(resp), 200, nullptr, /*deleting=*/true);
      return;
    }
    if (dry_run) return resp->Respond(JsonBody(200, api::WithResourceVersion(kv->value_view(), kv->mod_revision)));
    std::string last = std::string(kv->value_view());
    WriteExtras extras;
    if (ResourceStrategy* strategy = StrategyFor(t)) strategy->PrepareDelete(current, &extras);
    // Without preconditions a concurrent write (a status update) is no
    // reason to fail: read again and retry, as kube-apiserver does.
    bool retry = pre_uid.empty() && pre_rv.empty() && attempts_left > 1;
    auto self = shared_from_this();
    WriteObject(key, std::nullopt,
                {key, store::Compare::Target::kModRevision, store::Compare::Result::kEqual, kv->mod_revision},
                std::move(extras), [self, type, resp, last, name = info.name, retry, info, req,
                                    attempts_left](absl::StatusOr<store::TxnResult> r) {
                  if (!r.ok()) return RespondError(*resp, api::FromStoreStatus(r.status(), type->group, type->plural, name));
                  if (!r->succeeded && retry) return self->Delete(*type, info, req, resp, attempts_left - 1);
                  if (!r->succeeded) {
                    return RespondError(*resp, api::Conflict(type->group, type->plural, name,
                                                             "the object has been modified; retry the deletion"));
                  }
                  resp->Respond(JsonBody(200, api::WithResourceVersion(last, r->revision)));
                });
  }

  // The grace period a deletion gets: only pods have one, and only while a
  // kubelet has to stop them (bound and not finished), as kube-apiserver
  // decides. An explicit gracePeriodSeconds wins over the pod's
  // terminationGracePeriodSeconds (default 30).
  static absl::StatusOr<int64_t> GracePeriod(const ResourceType& t, const json& current, const json& options,
                                             const std::map<std::string, std::string>& q) {
    if (t.kind != "Pod" || !t.group.empty()) return 0;
    std::optional<int64_t> requested;
    if (options.contains("gracePeriodSeconds") && !options["gracePeriodSeconds"].is_null()) {
      if (!options["gracePeriodSeconds"].is_number_integer()) {
        return absl::InvalidArgumentError("gracePeriodSeconds must be an integer");
      }
      requested = options["gracePeriodSeconds"].get<int64_t>();
    } else if (std::string g = Param(q, "gracePeriodSeconds"); !g.empty()) {
      int64_t v = 0;
      if (!absl::SimpleAtoi(g, &v)) return absl::InvalidArgumentError("gracePeriodSeconds must be an integer");
      requested = v;
    }
    const json& spec = current.contains("spec") ? current["spec"] : json::object();
    std::string node = spec.is_object() ? spec.value("nodeName", "") : "";
    std::string phase = current.contains("status") && current["status"].is_object()
                            ? current["status"].value("phase", "")
                            : "";
    if (node.empty() || phase == "Succeeded" || phase == "Failed") return 0;
    int64_t grace = requested.value_or(
        spec.is_object() && spec.contains("terminationGracePeriodSeconds") &&
                spec["terminationGracePeriodSeconds"].is_number_integer()
            ? spec["terminationGracePeriodSeconds"].get<int64_t>()
            : 30);
    return std::max<int64_t>(grace, 0);
  }

  // ------------------------------------------------------------ binding

  // POST pods/NAME/binding: the scheduler's assignment of a pod to a node.
  void Bind(const ResourceType& t, const RequestInfo& info, http::HttpRequest&& req,
            std::shared_ptr<http::HttpResponder> resp) {
    if (info.verb != "create") {
      return RespondError(*resp, api::MethodNotAllowed(absl::StrCat(req.method, " is not supported on pods/binding")));
    }
    ApiError err;
    auto decoded = DecodeBody(req, &err);
    if (!decoded.ok()) return RespondError(*resp, err);
    json binding = std::move(*decoded);
    if (!binding.is_object()) return RespondError(*resp, api::BadRequest("the Binding is not a JSON object"));
    std::string kind = binding.value("kind", "Binding");
    if (kind != "Binding") {
      return RespondError(*resp, api::BadRequest(absl::StrCat("expected a Binding, got ", kind)));
    }
    const json& meta = binding.contains("metadata") && binding["metadata"].is_object() ? binding["metadata"] : json::object();
    std::string name = meta.value("name", "");
    if (!name.empty() && name != info.name) {
      return RespondError(*resp, api::BadRequest("name in URL does not match name in Binding object"));
    }
    std::string ns = meta.value("namespace", "");
    if (!ns.empty() && ns != info.namespace_name) {
      return RespondError(*resp, api::BadRequest("namespace in URL does not match namespace in Binding object"));
    }
    const json& target = binding.contains("target") && binding["target"].is_object() ? binding["target"] : json::object();
    std::string node = target.value("name", "");
    std::string target_kind = target.value("kind", "");
    if (node.empty() || (!target_kind.empty() && target_kind != "Node")) {
      return RespondError(*resp, api::Invalid("", "Binding", info.name,
                                              {{"FieldValueRequired", "Required value", "target.name"}}));
    }
    json annotations = meta.value("annotations", json::object());
    const ResourceType* type = &t;
    auto q = QueryMap(req.query);
    Render status_success = [](const std::string&) {
      return json{{"kind", "Status"}, {"apiVersion", "v1"}, {"metadata", json::object()},
                  {"status", "Success"}, {"code", 201}}
          .dump();
    };
    Mutate(t, info.namespace_name, info.name, DryRun(q), /*retry_on_conflict=*/true, kMaxPatchAttempts,
           [type, node, annotations](const json& current, int64_t, ApiError* e) -> absl::StatusOr<json> {
             std::string pod = current["metadata"].value("name", "");
             if (current["metadata"].contains("deletionTimestamp")) {
               *e = api::Conflict(type->group, "pods/binding", pod,
                                  absl::StrCat("pod ", pod, " is being deleted, cannot be assigned to a host"));
               return absl::FailedPreconditionError("deleting");
             }
             std::string bound = current.contains("spec") ? current["spec"].value("nodeName", "") : "";
             if (!bound.empty()) {
               *e = api::Conflict(type->group, "pods/binding", pod,
                                  absl::StrCat("pod ", pod, " is already assigned to node \"", bound, "\""));
               return absl::FailedPreconditionError("bound");
             }
             json next = current;
             next["spec"]["nodeName"] = node;
             if (annotations.is_object() && !annotations.empty()) {
               json& a = next["metadata"]["annotations"];
               if (!a.is_object()) a = json::object();
               for (const auto& [k, v] : annotations.items()) a[k] = v;
             }
             SetCondition(next, "PodScheduled", "True", "", "");
             return next;
           },
           std::move(resp), 201, std::move(status_success));
  }

  // Sets (or adds) status.conditions[type] and moves lastTransitionTime only
  // when the status changes.
  static void SetCondition(json& obj, const std::string& type, const std::string& status, const std::string& reason,
                           const std::string& message) {
    json& conditions = obj["status"]["conditions"];
    if (!conditions.is_array()) conditions = json::array();
    for (auto& c : conditions) {
      if (c.value("type", "") != type) continue;
      if (c.value("status", "") != status) c["lastTransitionTime"] = api::NowRfc3339();
      c["status"] = status;
      if (!reason.empty()) c["reason"] = reason;
      if (!message.empty()) c["message"] = message;
      return;
    }
    json c = {{"type", type}, {"status", status}, {"lastProbeTime", nullptr},
              {"lastTransitionTime", api::NowRfc3339()}};
    if (!reason.empty()) c["reason"] = reason;
    if (!message.empty()) c["message"] = message;
    conditions.push_back(std::move(c));
  }

  // ----------------------------------------------------------- eviction

  // Answers an eviction with a 201 Status once the pod's deletion went
  // through, and passes errors on unchanged.
  class EvictionResponder : public http::HttpResponder {
   public:
    explicit EvictionResponder(std::shared_ptr<http::HttpResponder> inner) : inner_(std::move(inner)) {}
    void Respond(http::HttpResponse response) override {
      if (response.status == 200) {
        response = JsonBody(201, json{{"kind", "Status"}, {"apiVersion", "v1"}, {"metadata", json::object()},
                                      {"status", "Success"}, {"code", 201}}
                                     .dump());
      }
      inner_->Respond(std::move(response));
    }
    void StartStream(int status, http::HeaderList headers) override { inner_->StartStream(status, std::move(headers)); }
    bool WriteChunk(std::string data) override { return inner_->WriteChunk(std::move(data)); }
    void EndStream() override { inner_->EndStream(); }
    void OnAbort(std::function<void()> callback) override { inner_->OnAbort(std::move(callback)); }

   private:
    std::shared_ptr<http::HttpResponder> inner_;
  };

  // POST pods/NAME/eviction (policy/v1 Eviction): a graceful deletion with
  // the eviction's deleteOptions, as `kubectl drain` requests it. No
  // PodDisruptionBudget kind exists yet, so nothing refuses an eviction.
  void Evict(const ResourceType& t, const RequestInfo& info, http::HttpRequest&& req,
             std::shared_ptr<http::HttpResponder> resp) {
    if (info.verb != "create") {
      return RespondError(*resp, api::MethodNotAllowed(absl::StrCat(req.method, " is not supported on pods/eviction")));
    }
    ApiError err;
    auto decoded = DecodeBody(req, &err);
    if (!decoded.ok()) return RespondError(*resp, err);
    const json& eviction = *decoded;
    std::string kind = eviction.contains("kind") && eviction["kind"].is_string() ? eviction["kind"].get<std::string>()
                                                                                 : "Eviction";
    if (kind != "Eviction") return RespondError(*resp, api::BadRequest(absl::StrCat("expected an Eviction, got ", kind)));
    const json meta = eviction.contains("metadata") && eviction["metadata"].is_object() ? eviction["metadata"] : json::object();
    if (meta.contains("name") && meta["name"] != info.name) {
      return RespondError(*resp, api::BadRequest("name in URL does not match name in Eviction object"));
    }
    http::HttpRequest deletion;
    deletion.method = "DELETE";
    deletion.headers.emplace_back("content-type", "application/json");
    if (eviction.contains("deleteOptions") && eviction["deleteOptions"].is_object()) {
      deletion.body = eviction["deleteOptions"].dump();
    }
    deletion.query = req.query;  // dryRun
    RequestInfo delete_info = info;
    delete_info.subresource.clear();
    delete_info.verb = "delete";
    Delete(t, delete_info, deletion, std::make_shared<EvictionResponder>(std::move(resp)));
  }

  // -------------------------------------------------------------- scale

  // The autoscaling/v1 Scale view of a workload: spec.replicas, and the
  // observed replicas and selector from its status and spec.
  static json ScaleOf(const json& obj) {
    const json& meta = obj["metadata"];
    json scale_meta = json::object();
    for (const char* f : {"name", "namespace", "uid", "resourceVersion", "creationTimestamp"}) {
      if (meta.contains(f)) scale_meta[f] = meta[f];
    }
    const json& spec = obj.contains("spec") && obj["spec"].is_object() ? obj["spec"] : json::object();
    const json& status = obj.contains("status") && obj["status"].is_object() ? obj["status"] : json::object();
    json scale = {{"kind", "Scale"},
                  {"apiVersion", "autoscaling/v1"},
                  {"metadata", scale_meta},
                  {"spec", {{"replicas", spec.value("replicas", int64_t{1})}}},
                  {"status", {{"replicas", status.value("replicas", int64_t{0})}}}};
    if (spec.contains("selector")) {
      std::string selector = api::LabelSelectorString(spec["selector"]);
      if (!selector.empty()) scale["status"]["selector"] = selector;
    }
    return scale;
  }

  // GET, PUT and PATCH on deployments|replicasets|statefulsets/NAME/scale.
  void Scale(const ResourceType& t, const RequestInfo& info, http::HttpRequest&& req,
             std::shared_ptr<http::HttpResponder> resp) {
    Render as_scale = [](const std::string& written) {
      json obj = json::parse(written, nullptr, false);
      return ScaleOf(obj).dump();
    };
    if (info.verb == "get") {
      auto kv = store_.Get(Key(t, info.namespace_name, info.name));
      if (!kv.ok()) return RespondError(*resp, api::FromStoreStatus(kv.status(), t.group, t.plural, info.name));
      return resp->Respond(JsonBody(200, as_scale(api::WithResourceVersion(kv->value_view(), kv->mod_revision))));
    }
    if (info.verb != "update" && info.verb != "patch") {
      return RespondError(*resp, api::MethodNotAllowed(absl::StrCat(req.method, " is not supported on ", t.plural,
                                                                    "/scale")));
    }
    // The requested Scale: a full object for PUT, a patch applied to the
    // current Scale for PATCH.
    std::optional<json> put_body;
    std::optional<json> patch;
    enum class PatchKind { kJson, kMerge } patch_kind = PatchKind::kMerge;
    if (info.verb == "update") {
      ApiError err;
      auto decoded = DecodeBody(req, &err);
      if (!decoded.ok()) return RespondError(*resp, err);
      put_body = std::move(*decoded);
      if (!put_body->is_object()) return RespondError(*resp, api::BadRequest("the Scale is not a JSON object"));
    } else {
      const std::string* ct_header = req.Header("content-type");
      std::string ct = ct_header ? ct_header->substr(0, ct_header->find(';')) : "";
      if (ct == "application/json-patch+json") {
        patch_kind = PatchKind::kJson;
      } else if (ct != "application/merge-patch+json" && ct != "application/strategic-merge-patch+json") {
        return RespondError(*resp, api::UnsupportedMediaType(ct));
      }
      patch = json::parse(req.body, nullptr, false);
      if (patch->is_discarded() || (patch_kind == PatchKind::kJson ? !patch->is_array() : !patch->is_object())) {
        return RespondError(*resp, api::BadRequest("the patch is not valid for its content type"));
      }
    }
    const ResourceType* type = &t;
    auto q = QueryMap(req.query);
    bool has_precondition = put_body && put_body->contains("metadata") && (*put_body)["metadata"].is_object() &&
                            !(*put_body)["metadata"].value("resourceVersion", "").empty();
    Mutate(t, info.namespace_name, info.name, DryRun(q), !has_precondition, kMaxPatchAttempts,
           [type, put_body, patch, patch_kind](const json& current, int64_t mod, ApiError* e) -> absl::StatusOr<json> {
             json with_rv = current;
             with_rv["metadata"]["resourceVersion"] = std::to_string(mod);
             json desired;
             if (put_body) {
               desired = *put_body;
               std::string rv = desired.contains("metadata") && desired["metadata"].is_object()
                                    ? desired["metadata"].value("resourceVersion", "")
                                    : "";
               if (!rv.empty() && rv != std::to_string(mod)) {
                 *e = api::Conflict(type->group, type->plural, current["metadata"].value("name", ""),
                                    "the object has been modified; please apply your changes to the latest "
                                    "version and try again");
                 return absl::FailedPreconditionError("conflict");
               }
             } else {
               desired = ScaleOf(with_rv);
               try {
                 if (patch_kind == PatchKind::kJson) {
                   desired = desired.patch(*patch);
                 } else {
                   desired.merge_patch(*patch);
                 }
               } catch (const json::exception& ex) {
                 *e = ApiError{422, "Invalid", absl::StrCat("the patch could not be applied: ", ex.what())};
                 return absl::InvalidArgumentError("patch");
               }
             }
             const json* replicas = nullptr;
             if (desired.contains("spec") && desired["spec"].is_object() && desired["spec"].contains("replicas")) {
               replicas = &desired["spec"]["replicas"];
             }
             if (replicas == nullptr || !replicas->is_number_integer() || replicas->get<int64_t>() < 0 ||
                 replicas->get<int64_t>() > INT32_MAX) {
               std::string shown = replicas == nullptr ? "null" : replicas->dump();
               *e = api::Invalid("autoscaling", "Scale", current["metadata"].value("name", ""),
                                 {{"FieldValueInvalid",
                                   absl::StrCat("Invalid value: ", shown,
                                                ": must be greater than or equal to 0"),
                                   "spec.replicas"}});
               return absl::InvalidArgumentError("replicas");
             }
             json next = current;
             next["spec"]["replicas"] = replicas->get<int64_t>();
             return next;
           },
           std::move(resp), 200, std::move(as_scale));
  }

  void DeleteCollection(const ResourceType& t, const RequestInfo& info, const http::HttpRequest& req,
                        std::shared_ptr<http::HttpResponder> resp) {
    auto q = QueryMap(req.query);
    auto filter = ParseFilter(t, q, *resp);
    if (!filter) return;
    store::RangeOptions ro;
    auto page = store_.Range(KeyPrefix(t, t.namespaced ? info.namespace_name : ""), ro);
    if (!page.ok()) return RespondError(*resp, api::FromStoreStatus(page.status(), t.group, t.plural, ""));
    bool dry_run = DryRun(q);
    for (const auto& kv : page->kvs) {
      json obj = json::parse(kv.value_view(), nullptr, false);
      if (obj.is_discarded() || !filter->Matches(obj)) continue;
      bool has_finalizers = obj["metadata"].contains("finalizers") && !obj["metadata"]["finalizers"].empty();
      if (dry_run) continue;
      absl::Status st;
      if (has_finalizers) {
        if (!obj["metadata"].contains("deletionTimestamp")) {
          obj["metadata"]["deletionTimestamp"] = api::NowRfc3339();
          obj["metadata"]["deletionGracePeriodSeconds"] = 0;
          st = store_.Update(kv.key, obj.dump(), kv.mod_revision).status();
        }
      } else {
        WriteExtras extras;
        if (ResourceStrategy* strategy = StrategyFor(t)) strategy->PrepareDelete(obj, &extras);
        store::TxnRequest txn;
        txn.compares.push_back({kv.key, store::Compare::Target::kModRevision, store::Compare::Result::kEqual, kv.mod_revision});
        txn.success.push_back(store::Op::Delete(kv.key));
        for (auto& op : extras.ops) txn.success.push_back(std::move(op));
        auto r = store_.Txn(std::move(txn));
        st = !r.ok() ? r.status() : (r->succeeded ? absl::OkStatus() : absl::AbortedError("changed"));
      }
      // An object changed or deleted concurrently is left to its writer.
      if (!st.ok()) spdlog::debug("deletecollection skipped {}: {}", kv.key, st.message());
    }
    json status = {{"kind", "Status"}, {"apiVersion", "v1"}, {"metadata", json::object()}, {"status", "Success"},
                   {"details", {{"group", t.group}, {"kind", t.plural}}}};
    resp->Respond(JsonBody(200, status.dump()));
  }

  // ------------------------------------------------------------ discovery

  std::string ResourceListJson(const std::string& group, const std::string& version) {
    json resources = json::array();
    for (const ResourceType* t : registry_.InGroupVersion(group, version)) {
      json r = {{"name", t->plural},       {"singularName", t->singular}, {"namespaced", t->namespaced},
                {"kind", t->kind},         {"verbs", t->Verbs()}};
      if (!t->short_names.empty()) r["shortNames"] = t->short_names;
      if (!t->categories.empty()) r["categories"] = t->categories;
      resources.push_back(r);
      for (const auto& sub : t->subresources) {
        api::SubresourceType st = api::DescribeSubresource(*t, sub);
        json entry = {{"name", t->plural + "/" + sub}, {"singularName", ""}, {"namespaced", t->namespaced},
                      {"kind", st.kind}, {"verbs", st.verbs}};
        if (st.group != t->group || st.version != t->version) {
          entry["group"] = st.group;
          entry["version"] = st.version;
        }
        resources.push_back(std::move(entry));
      }
    }
    json list = {{"kind", "APIResourceList"},
                 {"apiVersion", "v1"},
                 {"groupVersion", group.empty() ? version : group + "/" + version},
                 {"resources", resources}};
    return list.dump();
  }

  json GroupJson(const std::string& group) {
    std::vector<std::string> versions;
    for (const auto& t : registry_.all()) {
      if (t.group == group && std::find(versions.begin(), versions.end(), t.version) == versions.end()) {
        versions.push_back(t.version);
      }
    }
    json vs = json::array();
    for (const auto& v : versions) vs.push_back({{"groupVersion", group + "/" + v}, {"version", v}});
    return {{"name", group}, {"versions", vs}, {"preferredVersion", vs.front()}};
  }

  // apidiscovery.k8s.io/v2 aggregated discovery for the core group (/api)
  // or every named group (/apis).
  std::string AggregatedJson(bool core, const std::string& api_version) {
    json items = json::array();
    for (const auto& group : registry_.Groups()) {
      if (core != group.empty()) continue;
      std::vector<std::string> versions;
      for (const auto& t : registry_.all()) {
        if (t.group == group && std::find(versions.begin(), versions.end(), t.version) == versions.end()) {
          versions.push_back(t.version);
        }
      }
      json vs = json::array();
      for (const auto& v : versions) {
        json resources = json::array();
        for (const ResourceType* t : registry_.InGroupVersion(group, v)) {
          json r = {{"resource", t->plural},
                    {"responseKind", {{"group", t->group}, {"version", t->version}, {"kind", t->kind}}},
                    {"scope", t->namespaced ? "Namespaced" : "Cluster"},
                    {"singularResource", t->singular},
                    {"verbs", t->Verbs()}};
          if (!t->short_names.empty()) r["shortNames"] = t->short_names;
          if (!t->categories.empty()) r["categories"] = t->categories;
          if (!t->subresources.empty()) {
            json subs = json::array();
            for (const auto& s : t->subresources) {
              api::SubresourceType st = api::DescribeSubresource(*t, s);
              subs.push_back({{"subresource", s},
                              {"responseKind", {{"group", st.group}, {"version", st.version}, {"kind", st.kind}}},
                              {"verbs", st.verbs}});
            }
            r["subresources"] = subs;
          }
          resources.push_back(r);
        }
        vs.push_back({{"version", v}, {"resources", resources}, {"freshness", "Current"}});
      }
      json item = {{"metadata", {{"name", group}}}, {"versions", vs}};
      if (group.empty()) item["metadata"] = {{"creationTimestamp", nullptr}};
      items.push_back(item);
    }
    json list = {{"kind", "APIGroupDiscoveryList"},
                 {"apiVersion", api_version},
                 {"metadata", json::object()},
                 {"items", items}};
    return list.dump();
  }
  Timers timers_;
};

ResourceApi::ResourceApi(store::Store& store, const api::ResourceRegistry& registry,
                         std::map<std::string, std::shared_ptr<ResourceStrategy>> strategies)
    : impl_(std::make_shared<Impl>(store, registry, std::move(strategies))) {}

absl::Status ResourceApi::EnsureKubernetesService(const std::string& cluster_ip, const std::string& advertise_ip,
                                                  int port) {
  const ResourceType* services = impl_->registry_.Find("", "v1", "services");
  std::string key = "/registry/services/default/kubernetes";
  if (!impl_->store_.Get(key).ok()) {
    json svc = {{"apiVersion", "v1"},
                {"kind", "Service"},
                {"metadata",
                 {{"name", "kubernetes"},
                  {"namespace", "default"},
                  {"uid", api::NewUid()},
                  {"creationTimestamp", api::NowRfc3339()},
                  {"labels", {{"component", "apiserver"}, {"provider", "kubernetes"}}}}},
                {"spec",
                 {{"type", "ClusterIP"},
                  {"ports", json::array({{{"name", "https"}, {"port", 443}, {"protocol", "TCP"}, {"targetPort", port}}})}}}};
    WriteExtras extras;
    if (ResourceStrategy* strategy = impl_->StrategyFor(*services)) {
      ApiError e;
      svc["spec"]["clusterIP"] = cluster_ip;
      if (!strategy->PrepareCreate(svc, &extras, &e).ok()) return absl::InternalError(e.message);
    }
    store::TxnRequest txn;
    txn.compares.push_back({key, store::Compare::Target::kCreateRevision, store::Compare::Result::kEqual, 0});
    for (auto& c : extras.compares) txn.compares.push_back(std::move(c));
    txn.success.push_back(store::Op::Put(key, svc.dump()));
    for (auto& op : extras.ops) txn.success.push_back(std::move(op));
    auto r = impl_->store_.Txn(std::move(txn));
    if (!r.ok()) return r.status();
  }
  json endpoints = {{"apiVersion", "v1"},
                    {"kind", "Endpoints"},
                    {"metadata",
                     {{"name", "kubernetes"},
                      {"namespace", "default"},
                      {"uid", api::NewUid()},
                      {"creationTimestamp", api::NowRfc3339()},
                      {"labels", {{"endpointslice.kubernetes.io/skip-mirror", "true"}}}}},
                    {"subsets", json::array({{{"addresses", json::array({{{"ip", advertise_ip}}})},
                                              {"ports", json::array({{{"name", "https"}, {"port", port}, {"protocol", "TCP"}}})}}})}};
  // The EndpointSlice kube-apiserver keeps beside it: what service routing
  // reads, so that https://<first service address> reaches the API server.
  json slice = {{"apiVersion", "discovery.k8s.io/v1"},
                {"kind", "EndpointSlice"},
                {"metadata",
                 {{"name", "kubernetes"},
                  {"namespace", "default"},
                  {"uid", api::NewUid()},
                  {"creationTimestamp", api::NowRfc3339()},
                  {"labels", {{"kubernetes.io/service-name", "kubernetes"}}}}},
                {"addressType", "IPv4"},
                {"endpoints", json::array({{{"addresses", json::array({advertise_ip})},
                                            {"conditions", {{"ready", true}}}}})},
                {"ports", json::array({{{"name", "https"}, {"port", port}, {"protocol", "TCP"}}})}};
  // Writes `desired` at `key` unless the fields that matter already hold.
  auto reconcile = [this](const std::string& key, json desired, const std::vector<std::string>& fields) {
    auto existing = impl_->store_.Get(key);
    if (!existing.ok()) return impl_->store_.Create(key, desired.dump()).status();
    json cur = json::parse(existing->value_view(), nullptr, false);
    bool same = !cur.is_discarded();
    for (const auto& f : fields) same = same && cur.value(f, json()) == desired[f];
    if (same) return absl::OkStatus();
    if (!cur.is_discarded()) desired["metadata"] = cur["metadata"];
    return impl_->store_.Update(key, desired.dump(), existing->mod_revision).status();
  };
  KELPIE_RETURN_IF_ERROR(reconcile("/registry/endpoints/default/kubernetes", endpoints, {"subsets"}));
  return reconcile("/registry/endpointslices/default/kubernetes", slice, {"endpoints", "ports"});
}

absl::Status ResourceApi::EnsureDefaultNamespaces() {
  for (const char* ns : {"default", "kube-system", "kube-public", "kube-node-lease"}) {
    json obj = {{"apiVersion", "v1"},
                {"kind", "Namespace"},
                {"metadata",
                 {{"name", ns},
                  {"uid", api::NewUid()},
                  {"creationTimestamp", api::NowRfc3339()},
                  {"labels", {{"kubernetes.io/metadata.name", ns}}}}},
                {"spec", {{"finalizers", json::array({"kubernetes"})}}},
                {"status", {{"phase", "Active"}}}};
    auto r = impl_->store_.Create(absl::StrCat("/registry/namespaces/", ns), obj.dump());
    if (!r.ok() && r.status().code() != absl::StatusCode::kAlreadyExists) return r.status();
  }
  return absl::OkStatus();
}

void ResourceApi::Serve(const RequestInfo& info, http::HttpRequest&& request,
                        std::shared_ptr<http::HttpResponder> responder) {
  const ResourceType* t = impl_->registry_.Find(info.group, info.version, info.resource);
  if (t == nullptr) {
    return RespondError(*responder,
                        api::ApiError{404, "NotFound",
                                      absl::StrCat("the server could not find the requested resource (",
                                                   info.group.empty() ? "" : info.group + "/", info.version,
                                                   " ", info.resource, ")")});
  }
  RequestInfo ri = info;
  if (!t->namespaced) {
    // /api/v1/namespaces/NAME puts NAME in namespace_name too.
    ri.namespace_name.clear();
  } else if (ri.namespace_name.empty() && ri.verb != "list" && ri.verb != "watch") {
    return RespondError(*responder, api::NotFound(t->group, t->plural, ri.name));
  }
  if (!ri.subresource.empty() && !t->Serves(ri.subresource)) {
    return RespondError(*responder,
                        api::ApiError{404, "NotFound",
                                      absl::StrCat("the server could not find the requested resource (",
                                                   t->plural, "/", ri.subresource, " is not served)")});
  }
  // Handlers check the shapes they read; a JSON type error that still gets
  // through is the client's malformed input, never a reason to stop serving.
  std::shared_ptr<http::HttpResponder> keep = responder;
  try {
    if (ri.subresource == "binding") return impl_->Bind(*t, ri, std::move(request), std::move(responder));
    if (ri.subresource == "scale") return impl_->Scale(*t, ri, std::move(request), std::move(responder));
    if (ri.subresource == "eviction") return impl_->Evict(*t, ri, std::move(request), std::move(responder));
    if (ri.verb == "get") return impl_->Get(*t, ri, std::move(responder));
    if (ri.verb == "list") return impl_->List(*t, ri, request, std::move(responder));
    if (ri.verb == "watch") return impl_->Watch(*t, ri, request, std::move(responder));
    if (ri.verb == "create") return impl_->Create(*t, ri, std::move(request), std::move(responder));
    if (ri.verb == "update") return impl_->Update(*t, ri, std::move(request), std::move(responder));
    if (ri.verb == "patch") return impl_->Patch(*t, ri, std::move(request), std::move(responder));
    if (ri.verb == "delete") return impl_->Delete(*t, ri, request, std::move(responder));
    if (ri.verb == "deletecollection") return impl_->DeleteCollection(*t, ri, request, std::move(responder));
  } catch (const nlohmann::json::exception& e) {
    spdlog::warn("{} {}: malformed request: {}", ri.verb, info.resource, e.what());
    return RespondError(*keep, api::BadRequest(absl::StrCat("the request is malformed: ", e.what())));
  }
  RespondError(*keep, api::MethodNotAllowed(absl::StrCat(request.method, " is not supported")));
}

bool ResourceApi::ServeDiscovery(const http::HttpRequest& request, http::HttpResponder& responder) {
  std::string path = request.path;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  const std::string* accept = request.Header("accept");
  // Aggregated discovery when the client asks for it (kubectl does first).
  std::string aggregated_version;
  if (accept != nullptr && absl::StrContains(*accept, "as=APIGroupDiscoveryList")) {
    if (absl::StrContains(*accept, "v=v2;") || absl::StrContains(*accept, "v=v2,") ||
        absl::EndsWith(*accept, "v=v2") || absl::StrContains(*accept, "v=v2;as")) {
      aggregated_version = "v2";
    } else if (absl::StrContains(*accept, "v=v2beta1")) {
      aggregated_version = "v2beta1";
    }
  }
  auto respond_aggregated = [&](bool core) {
    http::HttpResponse r = JsonBody(200, impl_->AggregatedJson(core, "apidiscovery.k8s.io/" + aggregated_version));
    r.SetHeader("Content-Type", absl::StrCat("application/json;g=apidiscovery.k8s.io;v=", aggregated_version,
                                             ";as=APIGroupDiscoveryList"));
    responder.Respond(std::move(r));
  };
  if (path == "/api") {
    if (!aggregated_version.empty()) {
      respond_aggregated(true);
      return true;
    }
    json j = {{"kind", "APIVersions"},
              {"versions", json::array({"v1"})},
              {"serverAddressByClientCIDRs", json::array({{{"clientCIDR", "0.0.0.0/0"}, {"serverAddress", ""}}})}};
    responder.Respond(JsonBody(200, j.dump()));
    return true;
  }
  if (path == "/api/v1") {
    responder.Respond(JsonBody(200, impl_->ResourceListJson("", "v1")));
    return true;
  }
  if (path == "/apis") {
    if (!aggregated_version.empty()) {
      respond_aggregated(false);
      return true;
    }
    json groups = json::array();
    for (const auto& g : impl_->registry_.Groups()) {
      if (!g.empty()) groups.push_back(impl_->GroupJson(g));
    }
    json j = {{"kind", "APIGroupList"}, {"apiVersion", "v1"}, {"groups", groups}};
    responder.Respond(JsonBody(200, j.dump()));
    return true;
  }
  if (absl::StartsWith(path, "/apis/")) {
    std::vector<std::string> parts = absl::StrSplit(path.substr(6), '/');
    if (parts.size() == 1) {
      for (const auto& g : impl_->registry_.Groups()) {
        if (g == parts[0] && !g.empty()) {
          json j = impl_->GroupJson(g);
          j["kind"] = "APIGroup";
          j["apiVersion"] = "v1";
          responder.Respond(JsonBody(200, j.dump()));
          return true;
        }
      }
    } else if (parts.size() == 2 && !impl_->registry_.InGroupVersion(parts[0], parts[1]).empty()) {
      responder.Respond(JsonBody(200, impl_->ResourceListJson(parts[0], parts[1])));
      return true;
    }
  }
  return false;
}

}  // namespace kelpie::apiserver
