#include "orchestrator/api/schema/schema_validation.h"

#include <cstdint>
#include <limits>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace kelpie::api::schema {
namespace {

using nlohmann::json;

std::string Join(const std::string& path, const std::string& name) {
  return path.empty() ? name : absl::StrCat(path, ".", name);
}

std::string Index(const std::string& path, size_t i) { return absl::StrCat(path, "[", i, "]"); }

std::string MapEntry(const std::string& path, const std::string& key) { return absl::StrCat(path, "[", key, "]"); }

void UnknownIn(const Schema& schema, const TypeDef& type, json& object, const std::string& path, bool drop,
               std::vector<std::string>& out);

// Descends into the value of a known field.
void UnknownInValue(const Schema& schema, const Field& field, json& value, const std::string& path, bool drop,
                    std::vector<std::string>& out) {
  if (field.type.object.empty()) return;
  const TypeDef* element = schema.FindType(field.type.object);
  if (!element) return;
  switch (field.type.kind) {
    case ValueKind::kObject:
      if (value.is_object()) UnknownIn(schema, *element, value, path, drop, out);
      break;
    case ValueKind::kList:
      if (value.is_array()) {
        for (size_t i = 0; i < value.size(); ++i) {
          if (value[i].is_object()) UnknownIn(schema, *element, value[i], Index(path, i), drop, out);
        }
      }
      break;
    case ValueKind::kMap:
      if (value.is_object()) {
        for (auto& [key, v] : value.items()) {
          if (v.is_object()) UnknownIn(schema, *element, v, MapEntry(path, key), drop, out);
        }
      }
      break;
    default:
      break;
  }
}

void UnknownIn(const Schema& schema, const TypeDef& type, json& object, const std::string& path, bool drop,
               std::vector<std::string>& out) {
  std::vector<std::string> unknown_here;
  for (auto& [key, value] : object.items()) {
    const Field* field = type.FindField(key);
    if (!field) {
      if (!type.open) unknown_here.push_back(key);
      continue;
    }
    UnknownInValue(schema, *field, value, Join(path, key), drop, out);
  }
  for (const auto& key : unknown_here) {
    out.push_back(Join(path, key));
    if (drop) object.erase(key);
  }
}

// --- structure ---

std::string Quote(const json& value) {
  if (value.is_string()) return absl::StrCat("\"", value.get<std::string>(), "\"");
  return value.dump();
}

// Kubernetes' wording for the JSON type a value has.
const char* JsonTypeWord(const json& v) {
  if (v.is_string()) return "string";
  if (v.is_boolean()) return "bool";
  if (v.is_number()) return "number";
  if (v.is_array()) return "array";
  if (v.is_object()) return "object";
  return "null";
}

// Empty when `v` fits `kind`, otherwise what the value must be.
std::string ScalarMismatch(ValueKind kind, const json& v) {
  switch (kind) {
    case ValueKind::kString:
    case ValueKind::kBytes:
    case ValueKind::kTime:
    case ValueKind::kMicroTime:
      return v.is_string() ? "" : "string";
    case ValueKind::kBool:
      return v.is_boolean() ? "" : "bool";
    case ValueKind::kNumber:
      return v.is_number() ? "" : "number";
    case ValueKind::kInt32:
      if (v.is_number_integer() && v.get<int64_t>() >= std::numeric_limits<int32_t>::min() &&
          v.get<int64_t>() <= std::numeric_limits<int32_t>::max()) {
        return "";
      }
      if (v.is_number_unsigned() && v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int32_t>::max())) {
        return "";
      }
      return "int32";
    case ValueKind::kInt64:
      if (v.is_number_integer() && !(v.is_number_unsigned() &&
                                     v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))) {
        return "";
      }
      return "int64";
    case ValueKind::kIntOrString:
      return (v.is_string() || v.is_number_integer()) ? "" : "int or string";
    case ValueKind::kQuantity:
      return (v.is_string() || v.is_number()) ? "" : "quantity (string or number)";
    case ValueKind::kRaw:
      return "";
    case ValueKind::kObject:
    case ValueKind::kMap:
      return v.is_object() ? "" : "object";
    case ValueKind::kList:
      return v.is_array() ? "" : "array";
  }
  return "";
}

struct StructureWalker {
  const Schema& schema;
  std::vector<StatusCause>& causes;

  void TypeInvalid(const std::string& path, const json& v, const std::string& want) {
    causes.push_back({"FieldValueTypeInvalid",
                      absl::StrCat("Invalid value: ", Quote(v), ": must be of type ", want, ", not ", JsonTypeWord(v)),
                      path});
  }

  void Element(ValueKind kind, const std::string& object, const json& v, const std::string& path) {
    if (v.is_null()) return;  // null is an absent value in Kubernetes' decoding
    std::string want = ScalarMismatch(kind, v);
    if (!want.empty()) {
      TypeInvalid(path, v, want);
      return;
    }
    if (kind == ValueKind::kObject) {
      if (const TypeDef* t = schema.FindType(object)) Object(*t, v, path);
    }
  }

  void Value(const Field& f, const json& v, const std::string& path) {
    if (v.is_null()) return;
    switch (f.type.kind) {
      case ValueKind::kList:
        if (!v.is_array()) return TypeInvalid(path, v, "array");
        for (size_t i = 0; i < v.size(); ++i) Element(f.type.element, f.type.object, v[i], Index(path, i));
        return;
      case ValueKind::kMap:
        if (!v.is_object()) return TypeInvalid(path, v, "object");
        for (const auto& [key, item] : v.items()) Element(f.type.element, f.type.object, item, MapEntry(path, key));
        return;
      default:
        Element(f.type.kind, f.type.object, v, path);
    }
    if (!f.enum_values.empty() && v.is_string()) {
      const std::string s = v.get<std::string>();
      bool supported = false;
      for (const auto& e : f.enum_values) supported = supported || e == s;
      if (!supported) {
        std::vector<std::string> quoted;
        for (const auto& e : f.enum_values) quoted.push_back(absl::StrCat("\"", e, "\""));
        causes.push_back({"FieldValueNotSupported",
                          absl::StrCat("Unsupported value: \"", s, "\": supported values: ",
                                       absl::StrJoin(quoted, ", ")),
                          path});
      }
    }
  }

  void Object(const TypeDef& type, const json& object, const std::string& path) {
    for (const auto& f : type.fields) {
      auto it = object.find(f.json_name);
      const std::string field_path = Join(path, f.json_name);
      if (it == object.end() || it->is_null()) {
        if (f.required) causes.push_back({"FieldValueRequired", "Required value", field_path});
        continue;
      }
      if (f.required && f.type.kind == ValueKind::kList && it->is_array() && it->empty()) {
        causes.push_back({"FieldValueRequired", "Required value", field_path});
        continue;
      }
      Value(f, *it, field_path);
    }
  }
};

// --- defaults ---

json DefaultValue(const Field& f) {
  const std::string& text = *f.default_value;
  switch (f.type.kind) {
    case ValueKind::kBool:
      return text == "true";
    case ValueKind::kInt32:
    case ValueKind::kInt64: {
      int64_t n = 0;
      if (absl::SimpleAtoi(text, &n)) return n;
      return text;
    }
    case ValueKind::kIntOrString: {
      int64_t n = 0;
      if (absl::SimpleAtoi(text, &n)) return n;
      return text;
    }
    default:
      return text;
  }
}

void DefaultsIn(const Schema& schema, const TypeDef& type, json& object) {
  for (const auto& f : type.fields) {
    auto it = object.find(f.json_name);
    if (it == object.end() || it->is_null()) {
      if (f.default_value) object[f.json_name] = DefaultValue(f);
      continue;
    }
    if (f.type.object.empty()) continue;
    const TypeDef* element = schema.FindType(f.type.object);
    if (!element) continue;
    if (f.type.kind == ValueKind::kObject && it->is_object()) {
      DefaultsIn(schema, *element, *it);
    } else if (f.type.kind == ValueKind::kList && it->is_array()) {
      for (auto& item : *it) {
        if (item.is_object()) DefaultsIn(schema, *element, item);
      }
    } else if (f.type.kind == ValueKind::kMap && it->is_object()) {
      for (auto& [key, item] : it->items()) {
        if (item.is_object()) DefaultsIn(schema, *element, item);
      }
    }
  }
}

}  // namespace

std::vector<std::string> FindUnknownFields(const Schema& schema, const TypeDef& root, json& object, bool drop) {
  std::vector<std::string> out;
  if (object.is_object()) UnknownIn(schema, root, object, "", drop, out);
  return out;
}

std::vector<StatusCause> ValidateStructure(const Schema& schema, const TypeDef& root, const json& object) {
  std::vector<StatusCause> causes;
  StructureWalker walker{schema, causes};
  if (!object.is_object()) return causes;
  // Status is written by controllers through the status subresource and is
  // not validated against the spec's rules.
  for (const auto& f : root.fields) {
    if (f.json_name == "status") continue;
    auto it = object.find(f.json_name);
    const std::string path = f.json_name;
    if (it == object.end() || it->is_null()) {
      if (f.required) causes.push_back({"FieldValueRequired", "Required value", path});
      continue;
    }
    walker.Value(f, *it, path);
  }
  return causes;
}

void ApplyDefaults(const Schema& schema, const TypeDef& root, json& object) {
  if (object.is_object()) DefaultsIn(schema, root, object);
}

}  // namespace kelpie::api::schema
