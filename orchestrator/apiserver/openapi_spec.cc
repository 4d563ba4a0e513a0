#include "orchestrator/apiserver/openapi_spec.h"

#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "common/version.h"

namespace kelpie::apiserver {
namespace {

using api::ResourceRegistry;
using api::ResourceType;
using api::schema::Field;
using api::schema::Schema;
using api::schema::TypeDef;
using api::schema::TypeRef;
using api::schema::ValueKind;
using nlohmann::json;

enum class Flavor { kV2, kV3 };

constexpr absl::string_view kMetaPrefix = "io.k8s.apimachinery.pkg.apis.meta.v1.";
constexpr absl::string_view kIntOrString = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
constexpr absl::string_view kQuantity = "io.k8s.apimachinery.pkg.api.resource.Quantity";

std::string Upper1(absl::string_view s) {
  std::string out(s);
  if (!out.empty()) out[0] = absl::ascii_toupper(out[0]);
  return out;
}

// "rbac.authorization.k8s.io" -> "RbacAuthorization", "" -> "Core" (operation ids).
std::string GroupCamel(absl::string_view group) {
  if (group.empty()) return "Core";
  absl::string_view g = group;
  if (absl::EndsWith(g, ".k8s.io")) g.remove_suffix(7);
  std::string out;
  for (absl::string_view part : absl::StrSplit(g, '.')) absl::StrAppend(&out, Upper1(part));
  return out;
}

// "rbac.authorization.k8s.io" -> "rbacAuthorization_v1" (tags).
std::string Tag(absl::string_view group, absl::string_view version) {
  std::string camel = GroupCamel(group);
  camel[0] = absl::ascii_tolower(camel[0]);
  return absl::StrCat(camel, "_", std::string(version));
}

// Builds one document: types are added on demand and their closure
// collected into the definitions.
class Generator {
 public:
  Generator(const Schema& schema, Flavor flavor) : schema_(schema), flavor_(flavor) {}

  std::string Ref(const std::string& definition) const {
    return flavor_ == Flavor::kV3 ? absl::StrCat("#/components/schemas/", definition)
                                  : absl::StrCat("#/definitions/", definition);
  }

  // A reference used as a property: v3 wraps it in allOf so a description
  // can sit beside it, as kube-apiserver's v3 documents do.
  json RefProperty(const std::string& definition, const std::string& description) const {
    json j;
    if (flavor_ == Flavor::kV3) {
      j["allOf"] = json::array({{{"$ref", Ref(definition)}}});
    } else {
      j["$ref"] = Ref(definition);
    }
    if (!description.empty()) j["description"] = description;
    return j;
  }

  json RefItem(const std::string& definition) const {
    if (flavor_ == Flavor::kV3) return {{"allOf", json::array({{{"$ref", Ref(definition)}}})}, {"default", json::object()}};
    return {{"$ref", Ref(definition)}};
  }

  // The schema of a value of `kind` (an element or a plain field).
  json ValueSchema(ValueKind kind, const std::string& object) {
    switch (kind) {
      case ValueKind::kString: return {{"type", "string"}, {"default", ""}};
      case ValueKind::kInt32: return {{"type", "integer"}, {"format", "int32"}};
      case ValueKind::kInt64: return {{"type", "integer"}, {"format", "int64"}};
      case ValueKind::kBool: return {{"type", "boolean"}};
      case ValueKind::kNumber: return {{"type", "number"}, {"format", "double"}};
      case ValueKind::kBytes: return {{"type", "string"}, {"format", "byte"}};
      case ValueKind::kIntOrString: return RefItem(Named(kind));
      case ValueKind::kQuantity: return RefItem(Named(kind));
      case ValueKind::kTime: return RefItem(Named(kind));
      case ValueKind::kMicroTime: return RefItem(Named(kind));
      case ValueKind::kRaw: return {{"type", "object"}};
      case ValueKind::kObject: return RefItem(Use(object));
      default: return json::object();
    }
  }

  json FieldSchema(const Field& f) {
    json j;
    const TypeRef& t = f.type;
    if (t.kind == ValueKind::kObject) {
      j = RefProperty(Use(t.object), f.description);
    } else if (t.kind == ValueKind::kIntOrString || t.kind == ValueKind::kQuantity || t.kind == ValueKind::kTime ||
               t.kind == ValueKind::kMicroTime) {
      j = RefProperty(Named(t.kind), f.description);
    } else if (t.kind == ValueKind::kList) {
      j = {{"type", "array"}, {"items", ValueSchema(t.element, t.object)}};
    } else if (t.kind == ValueKind::kMap) {
      j = {{"type", "object"}, {"additionalProperties", ValueSchema(t.element, t.object)}};
    } else {
      j = ValueSchema(t.kind, t.object);
      j.erase("default");
    }
    if (flavor_ == Flavor::kV2 && j.contains("items")) j["items"].erase("default");
    if (flavor_ == Flavor::kV2 && j.contains("additionalProperties")) j["additionalProperties"].erase("default");
    if (!f.description.empty() && !j.contains("description")) j["description"] = f.description;
    if (!f.enum_values.empty()) {
      j["enum"] = f.enum_values;
      j["description"] = absl::StrCat(f.description, "\n\nPossible enum values:\n",
                                      absl::StrJoin(f.enum_values, "\n", [](std::string* out, const std::string& v) {
                                        absl::StrAppend(out, " - `\"", v, "\"`");
                                      }));
    }
    if (!f.patch_merge_key.empty()) j["x-kubernetes-patch-merge-key"] = f.patch_merge_key;
    if (!f.patch_strategy.empty()) j["x-kubernetes-patch-strategy"] = f.patch_strategy;
    if (!f.list_type.empty()) j["x-kubernetes-list-type"] = f.list_type;
    if (!f.map_keys.empty()) j["x-kubernetes-list-map-keys"] = f.map_keys;
    return j;
  }

  // Adds a schema type (and what it reaches) and returns its definition name.
  std::string Use(const std::string& qualified) {
    const TypeDef* type = schema_.FindType(qualified);
    if (type == nullptr) return Named(ValueKind::kRaw);
    std::string name = OpenApiDefinitionName(type->group, type->version, type->short_name);
    if (definitions_.contains(name) || pending_.count(name)) return name;
    pending_.insert(name);
    json j = {{"type", "object"}};
    if (!type->description.empty()) j["description"] = type->description;
    json properties = json::object();
    std::vector<std::string> required;
    for (const Field& f : type->fields) {
      properties[f.json_name] = FieldSchema(f);
      if (f.required) required.push_back(f.json_name);
    }
    j["properties"] = std::move(properties);
    if (!required.empty()) j["required"] = required;
    definitions_[name] = std::move(j);
    pending_.erase(name);
    return name;
  }

  // The definitions of the scalar types Kubernetes names (Time, Quantity, ...).
  std::string Named(ValueKind kind) {
    std::string name;
    json j;
    switch (kind) {
      case ValueKind::kIntOrString:
        name = std::string(kIntOrString);
        j = {{"type", "string"}, {"format", "int-or-string"},
             {"description", "IntOrString is a type that can hold an int32 or a string."}};
        break;
      case ValueKind::kQuantity:
        name = std::string(kQuantity);
        j = {{"type", "string"},
             {"description", "Quantity is a fixed-point representation of a number, such as 100m or 1Gi."}};
        break;
      case ValueKind::kTime:
        name = absl::StrCat(kMetaPrefix, "Time");
        j = {{"type", "string"}, {"format", "date-time"},
             {"description", "Time is an RFC 3339 date and time at second precision."}};
        break;
      case ValueKind::kMicroTime:
        name = absl::StrCat(kMetaPrefix, "MicroTime");
        j = {{"type", "string"}, {"format", "date-time"},
             {"description", "MicroTime is an RFC 3339 date and time at microsecond precision."}};
        break;
      default:
        name = "io.k8s.apimachinery.pkg.runtime.RawExtension";
        j = {{"type", "object"}, {"description", "Any JSON object."}};
        break;
    }
    if (!definitions_.contains(name)) definitions_[name] = std::move(j);
    return name;
  }

  // The root schema of a kind, with its group-version-kind; a kind the
  // schema does not model is an object whose fields are all kept.
  std::string UseKind(const ResourceType& r) {
    std::string name = OpenApiDefinitionName(r.group, r.version, r.kind);
    if (const TypeDef* root = schema_.RootType(r.group, r.version, r.kind)) {
      name = Use(root->name);
    } else if (!definitions_.contains(name)) {
      definitions_[name] = {
          {"type", "object"},
          {"description", absl::StrCat(r.kind, " (its fields are not modelled by the schema; all are kept).")},
          {"properties",
           {{"apiVersion", {{"type", "string"}, {"description", "Version of the schema of this object."}}},
            {"kind", {{"type", "string"}, {"description", "Kind of this object."}}},
            {"metadata", RefProperty(Use("meta/v1.ObjectMeta"), "Standard object metadata.")}}},
          {"x-kubernetes-preserve-unknown-fields", true}};
    }
    AddGvk(name, r.group, r.version, r.kind);
    return name;
  }

  std::string UseList(const ResourceType& r, const std::string& item) {
    std::string name = absl::StrCat(item, "List");
    if (!definitions_.contains(name)) {
      json items = {{"type", "array"}, {"items", RefItem(item)},
                    {"description", absl::StrCat("List of ", r.plural, ".")}};
      definitions_[name] = {
          {"type", "object"},
          {"description", absl::StrCat(r.kind, "List is a list of ", r.kind, " objects.")},
          {"required", {"items"}},
          {"properties",
           {{"apiVersion", {{"type", "string"}, {"description", "Version of the schema of this object."}}},
            {"kind", {{"type", "string"}, {"description", "Kind of this object."}}},
            {"items", items},
            {"metadata", RefProperty(Use("meta/v1.ListMeta"), "Standard list metadata.")}}}};
      if (flavor_ == Flavor::kV2) definitions_[name]["properties"]["items"]["items"].erase("default");
      AddGvk(name, r.group, r.version, absl::StrCat(r.kind, "List"));
    }
    return name;
  }

  void AddGvk(const std::string& name, const std::string& group, const std::string& version, const std::string& kind) {
    json& gvks = definitions_[name]["x-kubernetes-group-version-kind"];
    json entry = {{"group", group}, {"kind", kind}, {"version", version}};
    if (!gvks.is_array()) gvks = json::array();
    for (const auto& e : gvks) {
      if (e == entry) return;
    }
    gvks.push_back(entry);
  }

  json& definitions() { return definitions_; }

 private:
  const Schema& schema_;
  Flavor flavor_;
  json definitions_ = json::object();
  std::set<std::string> pending_;  // types being built (self-references)
};

json QueryParameter(Flavor flavor, const std::string& name, const std::string& type, const std::string& description) {
  json p = {{"name", name}, {"in", "query"}, {"description", description}};
  if (flavor == Flavor::kV3) {
    p["schema"] = {{"type", type}, {"uniqueItems", true}};
  } else {
    p["type"] = type;
    p["uniqueItems"] = true;
  }
  return p;
}

json PathParameter(Flavor flavor, const std::string& name, const std::string& description) {
  json p = {{"name", name}, {"in", "path"}, {"required", true}, {"description", description}};
  if (flavor == Flavor::kV3) {
    p["schema"] = {{"type", "string"}, {"uniqueItems", true}};
  } else {
    p["type"] = "string";
    p["uniqueItems"] = true;
  }
  return p;
}

const char* kFieldValidationDescription =
    "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing "
    "unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently "
    "dropped from the object. - Warn: This will send a warning via the standard warning response header for each "
    "unknown field that is dropped from the object. This is the default. - Strict: This will fail the request with a "
    "BadRequest error if any unknown fields would be dropped from the object.";

// Adds the operations of one resource (and its subresources) to `paths`.
class PathBuilder {
 public:
  PathBuilder(Generator& gen, Flavor flavor, json& paths) : gen_(gen), flavor_(flavor), paths_(paths) {}

  void Add(const ResourceType& r) {
    std::string root = r.group.empty() ? absl::StrCat("/api/", r.version)
                                       : absl::StrCat("/apis/", r.group, "/", r.version);
    std::string scoped = r.namespaced ? absl::StrCat(root, "/namespaces/{namespace}/", r.plural)
                                      : absl::StrCat(root, "/", r.plural);
    std::string ns = r.namespaced ? "Namespaced" : "";
    std::string prefix = absl::StrCat(GroupCamel(r.group), Upper1(r.version));
    std::string kind_def = gen_.UseKind(r);
    std::vector<std::string> verbs = r.Verbs();
    auto has = [&verbs](absl::string_view v) {
      for (const auto& x : verbs) {
        if (x == v) return true;
      }
      return false;
    };
    std::string status_def = gen_.Use("meta/v1.Status");
    std::string delete_options_def = gen_.Use("meta/v1.DeleteOptions");

    // Collection.
    json collection = json::object();
    if (has("list")) {
      std::string list_def = gen_.UseList(r, kind_def);
      collection["get"] = Operation(absl::StrCat("list", prefix, ns, r.kind), "list", r, r.kind, "",
                                    {{"200", list_def}}, ListParameters());
      if (r.namespaced) {
        json all = json::object();
        all["get"] = Operation(absl::StrCat("list", prefix, r.kind, "ForAllNamespaces"), "list", r, r.kind, "",
                               {{"200", list_def}}, ListParameters());
        all["parameters"] = json::array();
        paths_[absl::StrCat(root, "/", r.plural)] = std::move(all);
      }
    }
    if (has("create")) {
      collection["post"] = Operation(absl::StrCat("create", prefix, ns, r.kind), "post", r, r.kind, kind_def,
                                     {{"200", kind_def}, {"201", kind_def}, {"202", kind_def}}, WriteParameters());
    }
    if (has("deletecollection")) {
      collection["delete"] = Operation(absl::StrCat("delete", prefix, "Collection", ns, r.kind), "deletecollection",
                                       r, r.kind, delete_options_def, {{"200", status_def}}, ListParameters());
    }
    collection["parameters"] = ScopeParameters(r, false);
    paths_[scoped] = std::move(collection);

    if (!has("get")) return;
    // One object.
    json item = json::object();
    item["get"] = Operation(absl::StrCat("read", prefix, ns, r.kind), "get", r, r.kind, "", {{"200", kind_def}}, {});
    if (has("update")) {
      item["put"] = Operation(absl::StrCat("replace", prefix, ns, r.kind), "put", r, r.kind, kind_def,
                              {{"200", kind_def}, {"201", kind_def}}, WriteParameters());
    }
    if (has("patch")) {
      item["patch"] = Operation(absl::StrCat("patch", prefix, ns, r.kind), "patch", r, r.kind, "patch",
                                {{"200", kind_def}, {"201", kind_def}}, PatchParameters());
    }
    if (has("delete")) {
      item["delete"] = Operation(absl::StrCat("delete", prefix, ns, r.kind), "delete", r, r.kind, delete_options_def,
                                 {{"200", status_def}, {"202", status_def}}, DeleteParameters());
    }
    item["parameters"] = ScopeParameters(r, true);
    paths_[absl::StrCat(scoped, "/{name}")] = std::move(item);

    for (const std::string& sub : r.subresources) {
      api::SubresourceType st = api::DescribeSubresource(r, sub);
      std::string sub_kind = st.kind;
      std::string sub_def;
      if (sub == "status" || sub == "scale") {
        sub_def = sub == "status" ? kind_def : gen_.Use(api::schema::QualifiedTypeName(st.group, st.version, st.kind));
        if (sub == "scale") gen_.AddGvk(sub_def, st.group, st.version, st.kind);
      } else {
        continue;  // action subresources (binding, eviction, token) are not described
      }
      std::string op_suffix = absl::StrCat(ns, r.kind, Upper1(sub));
      json s = json::object();
      s["get"] = Operation(absl::StrCat("read", prefix, op_suffix), "get", r, sub_kind, "", {{"200", sub_def}}, {},
                           &st);
      s["put"] = Operation(absl::StrCat("replace", prefix, op_suffix), "put", r, sub_kind, sub_def,
                           {{"200", sub_def}, {"201", sub_def}}, WriteParameters(), &st);
      s["patch"] = Operation(absl::StrCat("patch", prefix, op_suffix), "patch", r, sub_kind, "patch",
                             {{"200", sub_def}, {"201", sub_def}}, PatchParameters(), &st);
      s["parameters"] = ScopeParameters(r, true);
      paths_[absl::StrCat(scoped, "/{name}/", sub)] = std::move(s);
    }
  }

 private:
  json ScopeParameters(const ResourceType& r, bool named) {
    json p = json::array();
    if (named) p.push_back(PathParameter(flavor_, "name", absl::StrCat("name of the ", r.kind)));
    if (r.namespaced) p.push_back(PathParameter(flavor_, "namespace", "object name and auth scope, such as for teams and projects"));
    p.push_back(QueryParameter(flavor_, "pretty", "string", "If 'true', then the output is pretty printed."));
    return p;
  }

  json DryRun() {
    return QueryParameter(flavor_, "dryRun", "string",
                          "When present, indicates that modifications should not be persisted. Valid values are: "
                          "- All: all dry run stages will be processed");
  }
  json FieldManager() {
    return QueryParameter(flavor_, "fieldManager", "string",
                          "fieldManager is a name associated with the actor or entity that is making these changes.");
  }
  json FieldValidation() { return QueryParameter(flavor_, "fieldValidation", "string", kFieldValidationDescription); }

  json WriteParameters() { return json::array({DryRun(), FieldManager(), FieldValidation()}); }
  json PatchParameters() {
    json p = WriteParameters();
    p.push_back(QueryParameter(flavor_, "force", "boolean",
                               "Force is going to \"force\" Apply requests. It must be unset for non-apply patch "
                               "requests."));
    return p;
  }
  json DeleteParameters() {
    return json::array(
        {DryRun(),
         QueryParameter(flavor_, "gracePeriodSeconds", "integer",
                        "The duration in seconds before the object should be deleted."),
         QueryParameter(flavor_, "propagationPolicy", "string",
                        "Whether and how garbage collection will be performed: 'Orphan', 'Background' or "
                        "'Foreground'.")});
  }
  json ListParameters() {
    json p = json::array();
    for (const auto& [name, type, description] : std::vector<std::tuple<std::string, std::string, std::string>>{
             {"allowWatchBookmarks", "boolean", "requests watch events with type \"BOOKMARK\"."},
             {"continue", "string", "The continue option should be set when retrieving more results from the server."},
             {"fieldSelector", "string", "A selector to restrict the list of returned objects by their fields."},
             {"labelSelector", "string", "A selector to restrict the list of returned objects by their labels."},
             {"limit", "integer", "limit is a maximum number of responses to return for a list call."},
             {"resourceVersion", "string", "resourceVersion sets a constraint on what resource versions a request may be served from."},
             {"resourceVersionMatch", "string", "resourceVersionMatch determines how resourceVersion is applied to list calls."},
             {"timeoutSeconds", "integer", "Timeout for the list/watch call."},
             {"watch", "boolean", "Watch for changes to the described resources and return them as a stream."}}) {
      p.push_back(QueryParameter(flavor_, name, type, description));
    }
    return p;
  }

  json Content(const std::string& definition, bool patch) {
    json content = json::object();
    if (patch) {
      for (const char* type : {"application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json",
                               "application/strategic-merge-patch+json"}) {
        content[type] = {{"schema", {{"$ref", gen_.Ref("io.k8s.apimachinery.pkg.apis.meta.v1.Patch")}}}};
      }
      return content;
    }
    for (const char* type : {"application/json", "application/yaml"}) {
      content[type] = {{"schema", {{"$ref", gen_.Ref(definition)}}}};
    }
    return content;
  }

  // body: "" none, "patch" a patch, else the body's definition.
  json Operation(const std::string& id, const std::string& action, const ResourceType& r, const std::string& kind,
                 const std::string& body, const std::vector<std::pair<std::string, std::string>>& responses,
                 json parameters, const api::SubresourceType* sub = nullptr) {
    json op;
    op["operationId"] = id;
    op["tags"] = json::array({Tag(r.group, r.version)});
    op["description"] = absl::StrCat(action, " ", kind);
    if (body == "patch") {
      gen_.definitions()["io.k8s.apimachinery.pkg.apis.meta.v1.Patch"] = {
          {"type", "object"},
          {"description", "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body."}};
    }
    if (!parameters.is_array()) parameters = json::array();
    if (flavor_ == Flavor::kV3) {
      if (!body.empty()) {
        op["requestBody"] = {{"content", Content(body, body == "patch")}, {"required", action != "delete" && action != "deletecollection"}};
      }
      json rs = json::object();
      for (const auto& [code, def] : responses) {
        rs[code] = {{"description", code == "201" ? "Created" : code == "202" ? "Accepted" : "OK"},
                    {"content", Content(def, false)}};
      }
      rs["401"] = {{"description", "Unauthorized"}};
      op["responses"] = std::move(rs);
    } else {
      if (!body.empty()) {
        std::string def = body == "patch" ? "io.k8s.apimachinery.pkg.apis.meta.v1.Patch" : body;
        parameters.insert(parameters.begin(),
                          {{"name", "body"}, {"in", "body"}, {"required", true}, {"schema", {{"$ref", gen_.Ref(def)}}}});
      }
      json rs = json::object();
      for (const auto& [code, def] : responses) {
        rs[code] = {{"description", code == "201" ? "Created" : code == "202" ? "Accepted" : "OK"},
                    {"schema", {{"$ref", gen_.Ref(def)}}}};
      }
      rs["401"] = {{"description", "Unauthorized"}};
      op["responses"] = std::move(rs);
      op["consumes"] = body == "patch" ? json::array({"application/json-patch+json", "application/merge-patch+json",
                                                      "application/strategic-merge-patch+json",
                                                      "application/apply-patch+yaml"})
                                       : json::array({"*/*"});
      op["produces"] = json::array({"application/json", "application/yaml"});
      op["schemes"] = json::array({"https"});
    }
    if (!parameters.empty()) op["parameters"] = std::move(parameters);
    op["x-kubernetes-action"] = action;
    if (sub != nullptr) {
      op["x-kubernetes-group-version-kind"] = {{"group", sub->group}, {"kind", sub->kind}, {"version", sub->version}};
    } else {
      op["x-kubernetes-group-version-kind"] = {{"group", r.group}, {"kind", r.kind}, {"version", r.version}};
    }
    return op;
  }

  Generator& gen_;
  Flavor flavor_;
  json& paths_;
};

json Info() { return {{"title", "Kubernetes"}, {"version", GetVersionInfo().git_version}}; }

}  // namespace

std::string OpenApiDefinitionName(std::string_view group, std::string_view version, std::string_view name) {
  if (group == "meta") return absl::StrCat(kMetaPrefix, std::string(name));
  absl::string_view g(group.data(), group.size());
  std::string first = g.empty() || g == "core" ? "core" : std::string(g.substr(0, g.find('.')));
  return absl::StrCat("io.k8s.api.", first, ".", std::string(version), ".", std::string(name));
}

std::vector<OpenApiGroupVersion> OpenApiGroupVersions(const api::ResourceRegistry& registry) {
  std::vector<OpenApiGroupVersion> out;
  std::set<std::string> seen;
  for (const ResourceType& r : registry.all()) {
    std::string key = r.group.empty() ? absl::StrCat("api/", r.version) : absl::StrCat("apis/", r.group, "/", r.version);
    if (seen.insert(key).second) out.push_back({r.group, r.version, key});
  }
  return out;
}

nlohmann::json BuildOpenApiV3(const api::schema::Schema& schema, const api::ResourceRegistry& registry,
                              std::string_view group, std::string_view version) {
  Generator gen(schema, Flavor::kV3);
  json paths = json::object();
  PathBuilder builder(gen, Flavor::kV3, paths);
  for (const ResourceType* r : registry.InGroupVersion(group, version)) builder.Add(*r);
  return {{"openapi", "3.0.0"},
          {"info", Info()},
          {"paths", std::move(paths)},
          {"components",
           {{"schemas", std::move(gen.definitions())},
            {"securitySchemes",
             {{"BearerToken",
               {{"type", "apiKey"}, {"name", "authorization"}, {"in", "header"},
                {"description", "Bearer Token authentication"}}}}}}},
          {"security", json::array({{{"BearerToken", json::array()}}})}};
}

nlohmann::json BuildOpenApiV2(const api::schema::Schema& schema, const api::ResourceRegistry& registry) {
  Generator gen(schema, Flavor::kV2);
  json paths = json::object();
  PathBuilder builder(gen, Flavor::kV2, paths);
  for (const ResourceType& r : registry.all()) builder.Add(r);
  return {{"swagger", "2.0"},
          {"info", Info()},
          {"paths", std::move(paths)},
          {"definitions", std::move(gen.definitions())},
          {"securityDefinitions",
           {{"BearerToken",
             {{"type", "apiKey"}, {"name", "authorization"}, {"in", "header"},
              {"description", "Bearer Token authentication"}}}}},
          {"security", json::array({{{"BearerToken", json::array()}}})}};
}

}  // namespace kelpie::apiserver
