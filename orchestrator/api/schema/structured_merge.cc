#include "orchestrator/api/schema/structured_merge.h"

#include <algorithm>
#include <map>
#include <set>
#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace kelpie::api::schema {

using nlohmann::json;
using Shape = StructuredMerge::Shape;

namespace {

// How a value is walked: its shape, refined by what the value is (a deduced
// object is walked like a map; a value of the wrong JSON type is a leaf).
Shape::Kind Effective(const Shape& shape, const json& value) {
  switch (shape.kind) {
    case Shape::kDeduced:
      return value.is_object() ? Shape::kMap : Shape::kLeaf;
    case Shape::kStruct:
    case Shape::kMap:
      return value.is_object() ? shape.kind : Shape::kLeaf;
    case Shape::kSetList:
    case Shape::kKeyedList:
      return value.is_array() ? shape.kind : Shape::kLeaf;
    default:
      return shape.kind;
  }
}

// Null values of an applied configuration remove the field: the stored
// object never holds them.
json WithoutNulls(const json& value) {
  if (value.is_object()) {
    json out = json::object();
    for (const auto& [key, child] : value.items()) {
      if (!child.is_null()) out[key] = WithoutNulls(child);
    }
    return out;
  }
  if (value.is_array()) {
    json out = json::array();
    for (const auto& child : value) out.push_back(WithoutNulls(child));
    return out;
  }
  return value;
}

json DefaultValue(const Field& field) {
  const std::string& text = *field.default_value;
  int64_t i;
  if ((field.type.kind == ValueKind::kInt32 || field.type.kind == ValueKind::kInt64) && absl::SimpleAtoi(text, &i)) {
    return i;
  }
  if (field.type.kind == ValueKind::kBool) return text == "true";
  return text;
}

}  // namespace

Shape StructuredMerge::RootShape() const {
  Shape s;
  if (root_ != nullptr) {
    s.kind = root_->atomic ? Shape::kLeaf : Shape::kStruct;
    s.type = root_;
  }
  return s;
}

Shape StructuredMerge::OfElement(ValueKind kind, const std::string& object) const {
  Shape s;
  switch (kind) {
    case ValueKind::kObject:
      s.type = schema_.FindType(object);
      if (s.type == nullptr) {
        s.kind = Shape::kDeduced;
      } else {
        s.kind = s.type->atomic ? Shape::kLeaf : Shape::kStruct;
      }
      break;
    case ValueKind::kRaw:
      s.kind = Shape::kDeduced;
      break;
    default:
      s.kind = Shape::kLeaf;
  }
  return s;
}

Shape StructuredMerge::OfField(const Field& field) const {
  if (field.type.kind == ValueKind::kMap) {
    Shape s;
    s.kind = Shape::kMap;
    s.element = TypeRef{field.type.element, ValueKind::kString, field.type.object};
    return s;
  }
  if (field.type.kind != ValueKind::kList) return OfElement(field.type.kind, field.type.object);
  Shape s;
  s.element = TypeRef{field.type.element, ValueKind::kString, field.type.object};
  // As Kubernetes derives list types from its OpenAPI: an explicit list
  // type wins; otherwise a merge strategy with a merge key makes a keyed
  // list, a merge strategy alone a set, and everything else is atomic.
  bool merge = absl::StrContains(field.patch_strategy, "merge");
  if (field.list_type == "map" || (field.list_type.empty() && merge && !field.patch_merge_key.empty())) {
    s.kind = Shape::kKeyedList;
    s.keys = field.map_keys;
    if (s.keys.empty() && !field.patch_merge_key.empty()) s.keys.push_back(field.patch_merge_key);
    if (s.keys.empty()) s.kind = Shape::kAtomicList;
  } else if (field.list_type == "set" || (field.list_type.empty() && merge)) {
    s.kind = Shape::kSetList;
  } else {
    s.kind = Shape::kAtomicList;
  }
  return s;
}

Shape StructuredMerge::Child(const Shape& parent, const std::string& key, bool* declared) const {
  *declared = false;
  if (parent.kind == Shape::kStruct && parent.type != nullptr) {
    if (const Field* field = parent.type->FindField(key)) {
      *declared = true;
      return OfField(*field);
    }
    return Shape{};  // not modelled: deduced
  }
  if (parent.kind == Shape::kMap) return OfElement(parent.element.kind, parent.element.object);
  return Shape{};
}

absl::StatusOr<std::string> StructuredMerge::ItemKey(const json& item, const Shape& list) const {
  if (!item.is_object()) return absl::InvalidArgumentError("an item of a keyed list is not an object");
  Shape element = Item(list);
  json keys = json::object();
  for (const auto& name : list.keys) {
    auto it = item.find(name);
    if (it != item.end() && !it->is_null()) {
      keys[name] = *it;
      continue;
    }
    const Field* field = element.type != nullptr ? element.type->FindField(name) : nullptr;
    if (field != nullptr && field->default_value) {
      keys[name] = DefaultValue(*field);
      continue;
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "associative list with keys has an element that omits key field \"", name, "\" (and doesn't have default value)"));
  }
  return absl::StrCat("k:", keys.dump());
}

// ---------------------------------------------------------------- field sets

absl::Status StructuredMerge::CollectFields(const json& value, const Shape& shape, FieldSet::Path& path,
                                            FieldSet* out) const {
  switch (Effective(shape, value)) {
    case Shape::kStruct:
    case Shape::kMap:
      for (const auto& [key, child] : value.items()) {
        bool declared = false;
        Shape child_shape = Child(shape, key, &declared);
        path.push_back("f:" + key);
        if (auto s = CollectFields(child, child_shape, path, out); !s.ok()) return s;
        // Struct fields are owned through their leaves; map entries,
        // undeclared fields and empty values are owned themselves.
        if (child.is_null() || (child.is_object() && child.empty()) || !declared) out->Insert(path);
        path.pop_back();
      }
      return absl::OkStatus();
    case Shape::kSetList:
      for (const auto& item : value) {
        path.push_back("v:" + item.dump());
        out->Insert(path);
        path.pop_back();
      }
      return absl::OkStatus();
    case Shape::kKeyedList: {
      Shape element = Item(shape);
      for (size_t i = 0; i < value.size(); ++i) {
        auto key = ItemKey(value[i], shape);
        if (!key.ok()) {
          return absl::InvalidArgumentError(
              absl::StrCat(FieldSet::PathString(path), ": element ", i, ": ", key.status().message()));
        }
        path.push_back(*key);
        if (auto s = CollectFields(value[i], element, path, out); !s.ok()) return s;
        out->Insert(path);
        path.pop_back();
      }
      return absl::OkStatus();
    }
    default:
      if (!path.empty()) out->Insert(path);
      return absl::OkStatus();
  }
}

absl::StatusOr<FieldSet> StructuredMerge::ToFieldSet(const json& object) const {
  FieldSet out;
  FieldSet::Path path;
  if (auto s = CollectFields(object, RootShape(), path, &out); !s.ok()) return s;
  return out;
}

// ---------------------------------------------------------------- merge

absl::StatusOr<json> StructuredMerge::MergeKeyedLists(const json& live, const json& config, const Shape& shape) const {
  Shape element = Item(shape);
  std::vector<std::string> config_keys;
  std::map<std::string, size_t> config_index;
  for (size_t i = 0; i < config.size(); ++i) {
    auto key = ItemKey(config[i], shape);
    if (!key.ok()) return key.status();
    if (!config_index.emplace(*key, i).second) {
      return absl::InvalidArgumentError(absl::StrCat("duplicate entries for key ", key->substr(2)));
    }
    config_keys.push_back(*key);
  }
  std::map<std::string, size_t> live_index;
  std::vector<std::string> live_keys;
  for (size_t i = 0; i < live.size(); ++i) {
    auto key = ItemKey(live[i], shape);
    live_keys.push_back(key.ok() ? *key : "");
    if (key.ok()) live_index.emplace(*key, i);
  }
  json out = json::array();
  std::vector<bool> emitted(config.size(), false);
  auto emit_config = [&](size_t j) -> absl::Status {
    emitted[j] = true;
    auto in_live = live_index.find(config_keys[j]);
    if (in_live == live_index.end()) {
      out.push_back(WithoutNulls(config[j]));
      return absl::OkStatus();
    }
    auto merged = MergeValue(live[in_live->second], config[j], element);
    if (!merged.ok()) return merged.status();
    out.push_back(std::move(*merged));
    return absl::OkStatus();
  };
  // Live items the config does not name keep their place; items both have
  // come in the config's order, config-only items before the next shared one.
  size_t next_config = 0;
  for (size_t i = 0; i < live.size(); ++i) {
    auto in_config = live_keys[i].empty() ? config_index.end() : config_index.find(live_keys[i]);
    if (in_config == config_index.end()) {
      out.push_back(live[i]);
      continue;
    }
    for (; next_config <= in_config->second; ++next_config) {
      if (!emitted[next_config]) {
        if (auto s = emit_config(next_config); !s.ok()) return s;
      }
    }
  }
  for (; next_config < config.size(); ++next_config) {
    if (!emitted[next_config]) {
      if (auto s = emit_config(next_config); !s.ok()) return s;
    }
  }
  return out;
}

absl::StatusOr<json> StructuredMerge::MergeValue(const json& live, const json& config, const Shape& shape) const {
  Shape::Kind kind = Effective(shape, config);
  if (kind != Effective(shape, live)) return WithoutNulls(config);
  switch (kind) {
    case Shape::kStruct:
    case Shape::kMap: {
      json out = live;
      for (const auto& [key, value] : config.items()) {
        if (value.is_null()) {
          out.erase(key);
          continue;
        }
        auto existing = live.find(key);
        if (existing == live.end()) {
          out[key] = WithoutNulls(value);
          continue;
        }
        bool declared = false;
        auto merged = MergeValue(*existing, value, Child(shape, key, &declared));
        if (!merged.ok()) return merged;
        out[key] = std::move(*merged);
      }
      return out;
    }
    case Shape::kSetList: {
      json out = live;
      std::set<std::string> present;
      for (const auto& item : live) present.insert(item.dump());
      for (const auto& item : config) {
        if (present.insert(item.dump()).second) out.push_back(item);
      }
      return out;
    }
    case Shape::kKeyedList:
      return MergeKeyedLists(live, config, shape);
    default:
      return WithoutNulls(config);
  }
}

absl::StatusOr<json> StructuredMerge::Merge(const json& live, const json& config) const {
  return MergeValue(live, config, RootShape());
}

// ---------------------------------------------------------------- compare

absl::Status StructuredMerge::CompareValue(const json* before, const json* after, const Shape& shape,
                                           FieldSet::Path& path, Comparison* out) const {
  Shape::Kind kind_before = before ? Effective(shape, *before) : Shape::kLeaf;
  Shape::Kind kind_after = after ? Effective(shape, *after) : Shape::kLeaf;
  Shape::Kind kind = after ? kind_after : kind_before;
  if (before && after && kind_before != kind_after) kind = Shape::kLeaf;
  switch (kind) {
    case Shape::kStruct:
    case Shape::kMap: {
      std::set<std::string> keys;
      if (before) {
        for (const auto& [key, value] : before->items()) keys.insert(key);
      }
      if (after) {
        for (const auto& [key, value] : after->items()) keys.insert(key);
      }
      for (const auto& key : keys) {
        const json* b = nullptr;
        const json* a = nullptr;
        if (before) {
          auto it = before->find(key);
          if (it != before->end() && !it->is_null()) b = &*it;
        }
        if (after) {
          auto it = after->find(key);
          if (it != after->end() && !it->is_null()) a = &*it;
        }
        if (!a && !b) continue;
        bool declared = false;
        Shape child = Child(shape, key, &declared);
        path.push_back("f:" + key);
        if (auto s = CompareValue(b, a, child, path, out); !s.ok()) return s;
        if (!b) out->added.Insert(path);
        if (!a) out->removed.Insert(path);
        path.pop_back();
      }
      return absl::OkStatus();
    }
    case Shape::kSetList: {
      std::set<std::string> in_before, in_after;
      if (before) {
        for (const auto& item : *before) in_before.insert(item.dump());
      }
      if (after) {
        for (const auto& item : *after) in_after.insert(item.dump());
      }
      for (const auto& v : in_after) {
        if (!in_before.count(v)) out->added.Insert([&] { auto p = path; p.push_back("v:" + v); return p; }());
      }
      for (const auto& v : in_before) {
        if (!in_after.count(v)) out->removed.Insert([&] { auto p = path; p.push_back("v:" + v); return p; }());
      }
      return absl::OkStatus();
    }
    case Shape::kKeyedList: {
      Shape element = Item(shape);
      std::map<std::string, const json*> items_before, items_after;
      std::vector<std::string> order;
      std::set<std::string> seen;
      auto index = [&](const json* list, std::map<std::string, const json*>* into) -> absl::Status {
        if (!list) return absl::OkStatus();
        for (size_t i = 0; i < list->size(); ++i) {
          auto key = ItemKey((*list)[i], shape);
          if (!key.ok()) {
            return absl::InvalidArgumentError(
                absl::StrCat(FieldSet::PathString(path), ": element ", i, ": ", key.status().message()));
          }
          into->emplace(*key, &(*list)[i]);
          if (seen.insert(*key).second) order.push_back(*key);
        }
        return absl::OkStatus();
      };
      if (auto s = index(before, &items_before); !s.ok()) return s;
      if (auto s = index(after, &items_after); !s.ok()) return s;
      for (const auto& key : order) {
        auto b = items_before.find(key);
        auto a = items_after.find(key);
        const json* bp = b == items_before.end() ? nullptr : b->second;
        const json* ap = a == items_after.end() ? nullptr : a->second;
        path.push_back(key);
        if (auto s = CompareValue(bp, ap, element, path, out); !s.ok()) return s;
        if (!bp) out->added.Insert(path);
        if (!ap) out->removed.Insert(path);
        path.pop_back();
      }
      return absl::OkStatus();
    }
    default:
      if (path.empty()) return absl::OkStatus();
      if (!before) {
        out->added.Insert(path);
      } else if (!after) {
        out->removed.Insert(path);
      } else if (*before != *after) {
        out->modified.Insert(path);
      }
      return absl::OkStatus();
  }
}

absl::StatusOr<StructuredMerge::Comparison> StructuredMerge::Compare(const json& before, const json& after) const {
  Comparison out;
  FieldSet::Path path;
  if (auto s = CompareValue(&before, &after, RootShape(), path, &out); !s.ok()) return s;
  return out;
}

// ---------------------------------------------------------------- removal

void StructuredMerge::RemovePath(json& object, const FieldSet::Path& path) const {
  // The containers walked through, to drop those the removal empties.
  struct Step {
    json* container;
    std::string key;    // object key
    size_t index = 0;   // array index when key is empty
  };
  std::vector<Step> steps;
  json* current = &object;
  Shape shape = RootShape();
  for (const auto& element : path) {
    std::string rest = element.substr(2);
    if (element[0] == 'f') {
      if (!current->is_object()) return;
      auto it = current->find(rest);
      if (it == current->end()) return;
      bool declared = false;
      shape = Child(shape, rest, &declared);
      steps.push_back({current, rest});
      current = &*it;
      continue;
    }
    if (!current->is_array()) return;
    size_t found = current->size();
    for (size_t i = 0; i < current->size() && found == current->size(); ++i) {
      const json& item = (*current)[i];
      if (element[0] == 'k') {
        auto key = ItemKey(item, shape);
        if (key.ok() && *key == element) found = i;
      } else if (element[0] == 'v') {
        if (item.dump() == rest) found = i;
      } else if (std::to_string(i) == rest) {
        found = i;
      }
    }
    if (found == current->size()) return;
    Shape item_shape = element[0] == 'k' ? Item(shape) : Shape{Shape::kLeaf};
    steps.push_back({current, "", found});
    current = &(*current)[found];
    shape = item_shape;
  }
  // Remove the target, then each container the removal left empty (never
  // the object itself).
  for (size_t i = steps.size(); i-- > 0;) {
    Step& step = steps[i];
    if (step.key.empty()) {
      step.container->erase(step.index);
    } else {
      step.container->erase(step.key);
    }
    if (i == 0 || !step.container->empty()) break;
  }
}

json StructuredMerge::RemoveFields(const json& object, const FieldSet& fields) const {
  json out = object;
  // A member below another member goes with it (an item's fields with the
  // item: removed first, they would leave the item without its keys).
  std::vector<FieldSet::Path> outermost;
  for (const auto& path : fields.Members()) {
    if (!outermost.empty() && path.size() > outermost.back().size() &&
        std::equal(outermost.back().begin(), outermost.back().end(), path.begin())) {
      continue;
    }
    outermost.push_back(path);
  }
  for (const auto& path : outermost) RemovePath(out, path);
  return out;
}

}  // namespace kelpie::api::schema
