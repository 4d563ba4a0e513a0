#include "orchestrator/api/schema/schema.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "common/log.h"
#include "orchestrator/api/schema/embedded_schema.h"

namespace kelpie::api::schema {
namespace {

std::optional<ValueKind> ScalarKind(absl::string_view name) {
  static const std::map<absl::string_view, ValueKind> kinds = {
      {"string", ValueKind::kString},       {"int32", ValueKind::kInt32},
      {"int64", ValueKind::kInt64},         {"bool", ValueKind::kBool},
      {"number", ValueKind::kNumber},       {"bytes", ValueKind::kBytes},
      {"IntOrString", ValueKind::kIntOrString}, {"Quantity", ValueKind::kQuantity},
      {"Time", ValueKind::kTime},           {"MicroTime", ValueKind::kMicroTime},
      {"raw", ValueKind::kRaw}};
  auto it = kinds.find(name);
  if (it == kinds.end()) return std::nullopt;
  return it->second;
}

// Parses "<type>"; object names stay unqualified until linking.
TypeRef ParseType(absl::string_view text) {
  TypeRef ref;
  absl::string_view element = text;
  if (absl::ConsumePrefix(&element, "[]")) {
    ref.kind = ValueKind::kList;
  } else if (absl::ConsumePrefix(&element, "map[string]")) {
    ref.kind = ValueKind::kMap;
  }
  ValueKind element_kind = ValueKind::kObject;
  if (auto scalar = ScalarKind(element)) element_kind = *scalar;
  if (element_kind == ValueKind::kObject) ref.object = std::string(element);
  if (ref.kind == ValueKind::kList || ref.kind == ValueKind::kMap) {
    ref.element = element_kind;
  } else {
    ref.kind = element_kind;
  }
  return ref;
}

// Parses a field line: "<type> [#n[.m]] [flags...] | <description>".
absl::StatusOr<Field> ParseField(absl::string_view json_name, absl::string_view line) {
  Field field;
  field.json_name = std::string(json_name);
  absl::string_view spec = line;
  if (size_t bar = line.find(" | "); bar != absl::string_view::npos) {
    spec = line.substr(0, bar);
    field.description = std::string(absl::StripAsciiWhitespace(line.substr(bar + 3)));
  }
  std::vector<absl::string_view> words = absl::StrSplit(spec, ' ', absl::SkipEmpty());
  if (words.empty()) return absl::InvalidArgumentError("missing type");
  field.type = ParseType(words[0]);
  for (size_t i = 1; i < words.size(); ++i) {
    absl::string_view w = words[i];
    if (absl::ConsumePrefix(&w, "#")) {
      for (absl::string_view n : absl::StrSplit(w, '.')) {
        int number = 0;
        if (!absl::SimpleAtoi(n, &number) || number <= 0) {
          return absl::InvalidArgumentError(absl::StrCat("bad protobuf field number \"", words[i], "\""));
        }
        field.proto_path.push_back(number);
      }
    } else if (w == "required") {
      field.required = true;
    } else if (w == "ptr") {
      field.pointer = true;
    } else if (absl::ConsumePrefix(&w, "default=")) {
      field.default_value = std::string(w);
    } else if (absl::ConsumePrefix(&w, "enum=")) {
      field.enum_values = absl::StrSplit(w, '|');
    } else if (absl::ConsumePrefix(&w, "strategy=")) {
      field.patch_strategy = std::string(w);
    } else if (absl::ConsumePrefix(&w, "key=")) {
      field.patch_merge_key = std::string(w);
    } else if (absl::ConsumePrefix(&w, "list=")) {
      if (w != "atomic" && w != "set" && w != "map") {
        return absl::InvalidArgumentError(absl::StrCat("unknown list type \"", w, "\""));
      }
      field.list_type = std::string(w);
    } else if (absl::ConsumePrefix(&w, "mapkeys=")) {
      field.map_keys = absl::StrSplit(w, ',');
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag \"", w, "\""));
    }
  }
  if (field.list_type == "map" && field.map_keys.empty()) {
    return absl::InvalidArgumentError("list=map needs mapkeys=");
  }
  if (field.list_type != "" && field.type.kind != ValueKind::kList) {
    return absl::InvalidArgumentError("list= on a field that is not a list");
  }
  return field;
}

absl::StatusOr<PrinterColumn> ParseColumn(const std::string& text) {
  // "<HEADER> <type> <priority> <source>"; headers may contain spaces, so
  // the last three words are split off from the right.
  std::vector<std::string> words = absl::StrSplit(text, ' ', absl::SkipEmpty());
  if (words.size() < 4) return absl::InvalidArgumentError(absl::StrCat("bad column \"", text, "\""));
  PrinterColumn column;
  size_t n = words.size();
  column.source = words[n - 1];
  if (!absl::SimpleAtoi(words[n - 2], &column.priority)) {
    return absl::InvalidArgumentError(absl::StrCat("bad column priority in \"", text, "\""));
  }
  column.type = words[n - 3];
  for (size_t i = 0; i + 3 < n; ++i) absl::StrAppend(&column.name, i ? " " : "", words[i]);
  if (column.source.empty() || (column.source[0] != '.' && column.source[0] != '=')) {
    return absl::InvalidArgumentError(absl::StrCat("column source must start with . or = in \"", text, "\""));
  }
  return column;
}

}  // namespace

std::string_view ValueKindName(ValueKind kind) {
  switch (kind) {
    case ValueKind::kString: return "string";
    case ValueKind::kInt32: return "int32";
    case ValueKind::kInt64: return "int64";
    case ValueKind::kBool: return "bool";
    case ValueKind::kNumber: return "number";
    case ValueKind::kBytes: return "bytes";
    case ValueKind::kIntOrString: return "IntOrString";
    case ValueKind::kQuantity: return "Quantity";
    case ValueKind::kTime: return "Time";
    case ValueKind::kMicroTime: return "MicroTime";
    case ValueKind::kRaw: return "raw";
    case ValueKind::kObject: return "object";
    case ValueKind::kList: return "list";
    case ValueKind::kMap: return "map";
  }
  return "unknown";
}

std::string QualifiedTypeName(std::string_view group, std::string_view version, std::string_view name) {
  return absl::StrCat(group.empty() ? "core" : std::string(group), "/", std::string(version), ".",
                      std::string(name));
}

const Field* TypeDef::FindField(std::string_view json_name) const {
  for (const auto& f : fields) {
    if (f.json_name == json_name) return &f;
  }
  return nullptr;
}

absl::StatusOr<Schema> Schema::Load(const std::vector<SourceFile>& files) {
  Schema schema;
  // Unqualified object names are looked up in the referring file's
  // group/version, then meta/v1, then core/v1 (apps refers to PodTemplateSpec).
  for (const auto& file : files) {
    auto fail = [&file](const std::string& where, absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat("schema ", file.name, ": ", where, ": ", why));
    };
    YAML::Node root;
    try {
      root = YAML::Load(file.text);
    } catch (const YAML::Exception& e) {
      return fail("yaml", e.what());
    }
    if (!root.IsMap() || !root["group"] || !root["version"]) return fail("top level", "needs group and version");
    std::string group = root["group"].as<std::string>();
    std::string version = root["version"].as<std::string>();
    for (const auto& type_entry : root["types"]) {
      TypeDef type;
      type.short_name = type_entry.first.as<std::string>();
      type.group = group;
      type.version = version;
      type.name = QualifiedTypeName(group, version, type.short_name);
      const YAML::Node& body = type_entry.second;
      if (body["description"]) type.description = body["description"].as<std::string>();
      if (body["open"]) type.open = body["open"].as<bool>();
      if (body["atomic"]) type.atomic = body["atomic"].as<bool>();
      if (!body["fields"] || !body["fields"].IsMap()) return fail(type.short_name, "needs fields");
      for (const auto& field_entry : body["fields"]) {
        std::string json_name = field_entry.first.as<std::string>();
        auto field = ParseField(json_name, field_entry.second.as<std::string>());
        if (!field.ok()) return fail(absl::StrCat(type.short_name, ".", json_name), field.status().message());
        if (type.FindField(json_name)) return fail(absl::StrCat(type.short_name, ".", json_name), "duplicate field");
        type.fields.push_back(*std::move(field));
      }
      if (schema.types_.count(type.name)) return fail(type.short_name, "type defined twice");
      schema.types_.emplace(type.name, std::move(type));
    }
    if (root["kinds"]) {
      for (const auto& kind_entry : root["kinds"]) {
        KindDef kind;
        kind.group = group;
        kind.version = version;
        kind.kind = kind_entry.first.as<std::string>();
        const YAML::Node& body = kind_entry.second;
        std::string root_name = body["root"] ? body["root"].as<std::string>() : kind.kind;
        kind.root_type = QualifiedTypeName(group, version, root_name);
        if (body["columns"]) {
          for (const auto& c : body["columns"]) {
            auto column = ParseColumn(c.as<std::string>());
            if (!column.ok()) return fail(kind.kind, column.status().message());
            kind.columns.push_back(*std::move(column));
          }
        }
        schema.kinds_.push_back(std::move(kind));
      }
    }
  }
  // Link object references to qualified names.
  auto resolve = [&schema](const TypeDef& from, const std::string& name) -> std::optional<std::string> {
    for (const auto& candidate : {QualifiedTypeName(from.group, from.version, name),
                                  QualifiedTypeName("meta", "v1", name), QualifiedTypeName("", "v1", name)}) {
      if (schema.types_.count(candidate)) return candidate;
    }
    return std::nullopt;
  };
  for (auto& [name, type] : schema.types_) {
    for (auto& field : type.fields) {
      if (field.type.object.empty()) continue;
      auto qualified = resolve(type, field.type.object);
      if (!qualified) {
        return absl::InvalidArgumentError(absl::StrCat("schema: ", name, ".", field.json_name,
                                                       " refers to unknown type \"", field.type.object, "\""));
      }
      field.type.object = *qualified;
    }
  }
  for (const auto& kind : schema.kinds_) {
    if (!schema.types_.count(kind.root_type)) {
      return absl::InvalidArgumentError(absl::StrCat("schema: kind ", kind.kind, " has no type ", kind.root_type));
    }
  }
  return schema;
}

const Schema& Schema::Builtin() {
  static const Schema schema = [] {
    std::vector<SourceFile> files;
    for (const auto& f : EmbeddedSchemaFiles()) files.push_back({std::string(f.name), std::string(f.text)});
    auto loaded = Load(files);
    if (!loaded.ok()) {
      spdlog::critical("built-in API schema does not load: {}", loaded.status().ToString());
      std::abort();
    }
    return *std::move(loaded);
  }();
  return schema;
}

const TypeDef* Schema::FindType(std::string_view qualified_name) const {
  auto it = types_.find(qualified_name);
  return it == types_.end() ? nullptr : &it->second;
}

const KindDef* Schema::FindKind(std::string_view group, std::string_view version, std::string_view kind) const {
  for (const auto& k : kinds_) {
    if (k.group == group && k.version == version && k.kind == kind) return &k;
  }
  return nullptr;
}

const TypeDef* Schema::RootType(std::string_view group, std::string_view version, std::string_view kind) const {
  if (const KindDef* k = FindKind(group, version, kind)) return FindType(k->root_type);
  return nullptr;
}

}  // namespace kelpie::api::schema
