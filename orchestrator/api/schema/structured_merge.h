// Server-side apply's operations on objects, typed by the schema as
// Kubernetes' structured-merge-diff types them:
//   - struct fields and map keys are owned one by one;
//   - list=map lists (and lists with a merge patch strategy and a merge key)
//     are owned item by item, an item named by its key fields ("k:{...}",
//     absent key fields taking their schema default);
//   - list=set lists are owned value by value ("v:...");
//   - list=atomic lists, scalars and types marked `atomic` are one field;
//   - fields without schema (kinds not modelled, fields of open types) are
//     deduced as Kubernetes does for unstructured objects: objects merge key
//     by key, lists and scalars are atomic.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include "absl/status/statusor.h"
#include "orchestrator/api/schema/field_set.h"
#include "orchestrator/api/schema/schema.h"

namespace kelpie::api::schema {

class StructuredMerge {
 public:
  // `root` is the kind's root type, or null for a kind without schema.
  StructuredMerge(const Schema& schema, const TypeDef* root) : schema_(schema), root_(root) {}

  // The fields an applied configuration sets: its scalars and atomic
  // values, list items ("." in FieldsV1), map entries, and empty or null
  // values. Fails on a list=map item without its key fields.
  absl::StatusOr<FieldSet> ToFieldSet(const nlohmann::json& object) const;

  // `config` merged into `live`: config values win, objects merge key by
  // key, keyed lists item by item (config order wins for items both have),
  // sets by value; atomic values are replaced. Null config values remove.
  absl::StatusOr<nlohmann::json> Merge(const nlohmann::json& live, const nlohmann::json& config) const;

  // What changed from `before` to `after`: leaves and atomic values added,
  // removed or modified, plus list items and object entries added or removed.
  struct Comparison {
    FieldSet added;
    FieldSet removed;
    FieldSet modified;
  };
  absl::StatusOr<Comparison> Compare(const nlohmann::json& before, const nlohmann::json& after) const;

  // `object` without the members of `fields`; objects and lists emptied by
  // the removal go too.
  nlohmann::json RemoveFields(const nlohmann::json& object, const FieldSet& fields) const;

  // How the schema types one value (public for the implementation's helpers).
  struct Shape {
    enum Kind { kLeaf, kStruct, kMap, kAtomicList, kSetList, kKeyedList, kDeduced } kind = kDeduced;
    const TypeDef* type = nullptr;  // kStruct: its type
    TypeRef element;                // kMap and lists: the element type
    std::vector<std::string> keys;  // kKeyedList
  };

 private:
  Shape RootShape() const;
  Shape OfElement(ValueKind kind, const std::string& object) const;
  Shape OfField(const Field& field) const;
  Shape Child(const Shape& parent, const std::string& key, bool* declared) const;
  Shape Item(const Shape& list) const { return OfElement(list.element.kind, list.element.object); }
  absl::StatusOr<std::string> ItemKey(const nlohmann::json& item, const Shape& list) const;

  absl::Status CollectFields(const nlohmann::json& value, const Shape& shape, FieldSet::Path& path,
                             FieldSet* out) const;
  absl::StatusOr<nlohmann::json> MergeValue(const nlohmann::json& live, const nlohmann::json& config,
                                            const Shape& shape) const;
  absl::StatusOr<nlohmann::json> MergeKeyedLists(const nlohmann::json& live, const nlohmann::json& config,
                                                 const Shape& shape) const;
  absl::Status CompareValue(const nlohmann::json* before, const nlohmann::json* after, const Shape& shape,
                            FieldSet::Path& path, Comparison* out) const;
  void RemovePath(nlohmann::json& object, const FieldSet::Path& path) const;

  const Schema& schema_;
  const TypeDef* root_;
};

}  // namespace kelpie::api::schema
