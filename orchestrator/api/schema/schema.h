// The declarative object model: one schema file per API group/version
// (defs/*.yaml, compiled into the binary) describing every field of the
// served kinds — JSON name, type, protobuf field number, required, default,
// enum, patch strategy and merge key, list type and map keys — and, per kind,
// the columns kubectl prints. Validation, defaulting and unknown-field
// detection (schema_validation.h) are driven from it.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace kelpie::api::schema {

enum class ValueKind {
  kString,
  kInt32,
  kInt64,
  kBool,
  kNumber,
  kBytes,        // base64 string in JSON
  kIntOrString,  // integer or string
  kQuantity,     // resource quantity, a string such as "100m" in JSON
  kTime,         // RFC 3339 string, second precision
  kMicroTime,    // RFC 3339 string, microsecond precision
  kRaw,          // any JSON value (RawExtension, FieldsV1)
  kObject,       // a type of the schema
  kList,
  kMap,          // string keys
};

std::string_view ValueKindName(ValueKind kind);

// The type of a field. Lists and maps name their element kind (and element
// type for objects); nested lists and maps do not occur in the served kinds.
struct TypeRef {
  ValueKind kind = ValueKind::kString;
  ValueKind element = ValueKind::kString;  // for kList and kMap
  std::string object;                      // qualified type name for kObject elements/values
};

struct Field {
  std::string json_name;
  TypeRef type;
  // Protobuf field numbers from the message to this field: one number, or
  // several when the field sits in an embedded (inline) message, e.g. a
  // Volume's emptyDir is field 2 of VolumeSource, which is field 2 of Volume.
  std::vector<int> proto_path;
  bool required = false;
  // The Go field is a pointer: a zero value (0, false) that arrives in a
  // protobuf body was set on purpose and is kept in the JSON document, where
  // the zero values of other optional fields are left out (Go's omitempty).
  bool pointer = false;
  std::optional<std::string> default_value;  // as written in the schema
  std::vector<std::string> enum_values;
  std::string patch_strategy;  // "", "merge", "retainKeys", "merge,retainKeys"
  std::string patch_merge_key;
  std::string list_type;  // "", "atomic", "set", "map"
  std::vector<std::string> map_keys;
  std::string description;
};

struct TypeDef {
  std::string name;  // qualified: "<group or core or meta>/<version>.<Name>"
  std::string short_name;
  std::string group;  // "" for core
  std::string version;
  std::string description;
  std::vector<Field> fields;
  // Only some fields are modelled: the others are kept and not reported as unknown.
  bool open = false;
  // Replaced as a whole by server-side apply and owned as one field
  // (Kubernetes' +structType=atomic, e.g. LabelSelector).
  bool atomic = false;

  const Field* FindField(std::string_view json_name) const;
};

struct PrinterColumn {
  std::string name;  // header, e.g. "CLUSTER-IP"
  std::string type;  // OpenAPI type of the cell: string, integer, number, boolean, date
  int priority = 0;  // 0: default output, 1: -o wide
  // ".a.b" reads that field; "=name" names a value computed by the printer.
  std::string source;
};

struct KindDef {
  std::string group;
  std::string version;
  std::string kind;
  std::string root_type;  // qualified type name
  std::vector<PrinterColumn> columns;
};

class Schema {
 public:
  struct SourceFile {
    std::string name;
    std::string text;
  };

  // Parses and links schema files; every type reference must resolve.
  static absl::StatusOr<Schema> Load(const std::vector<SourceFile>& files);
  // The schema compiled into the binary (loaded once; a broken built-in
  // schema is a build defect and aborts).
  static const Schema& Builtin();

  const TypeDef* FindType(std::string_view qualified_name) const;
  const KindDef* FindKind(std::string_view group, std::string_view version, std::string_view kind) const;
  const TypeDef* RootType(std::string_view group, std::string_view version, std::string_view kind) const;

  const std::map<std::string, TypeDef, std::less<>>& types() const { return types_; }
  const std::vector<KindDef>& kinds() const { return kinds_; }

 private:
  std::map<std::string, TypeDef, std::less<>> types_;
  std::vector<KindDef> kinds_;
};

// "core/v1.Pod" for ("", "v1", "Pod"); "apps/v1.Deployment"; "meta/v1.ObjectMeta".
std::string QualifiedTypeName(std::string_view group, std::string_view version, std::string_view name);

}  // namespace kelpie::api::schema
