// A set of field paths, as server-side apply records which fields a manager
// owns: the trie Kubernetes serializes as `FieldsV1` in
// metadata.managedFields. A path element is written as FieldsV1 writes it:
//   "f:<name>"          a field of a struct or a key of a map
//   "k:<json object>"   an item of a list=map list, by its key fields
//   "v:<json value>"    an item of a list=set list, by its value
//   "i:<index>"         an item by position (not produced for apply)
// A path is a member when the set holds it; its prefixes need not be members
// (in FieldsV1, a member with children carries a "." entry).
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "absl/status/statusor.h"

namespace kelpie::api::schema {

class FieldSet {
 public:
  using Path = std::vector<std::string>;

  static absl::StatusOr<FieldSet> FromFieldsV1(const nlohmann::json& fields);
  nlohmann::json ToFieldsV1() const;

  void Insert(const Path& path);
  bool Has(const Path& path) const;
  // True when a member of the set is `prefix` or lies below it.
  bool HasAtOrBelow(const Path& prefix) const;
  bool Empty() const { return root_.children.empty(); }

  FieldSet Union(const FieldSet& other) const;
  FieldSet Difference(const FieldSet& other) const;
  FieldSet Intersection(const FieldSet& other) const;
  // The members below `prefix` (kept with their full paths).
  FieldSet Below(const Path& prefix) const;
  // The set without the members below `prefix` (and without `prefix`).
  FieldSet Without(const Path& prefix) const;

  // Every member, depth first in key order.
  std::vector<Path> Members() const;

  // Kubernetes' fieldpath notation: `.spec.containers[name="app"].image`,
  // `.metadata.finalizers[="a"]`, `.items[3]`.
  static std::string PathString(const Path& path);

  bool operator==(const FieldSet& other) const { return root_ == other.root_; }

 private:
  struct Node {
    bool member = false;
    std::map<std::string, Node> children;
    bool operator==(const Node& other) const { return member == other.member && children == other.children; }
  };
  static void Unite(Node& into, const Node& from);
  static bool Subtract(Node& from, const Node& what);  // true when `from` ended up empty
  static bool Intersect(Node& into, const Node& with);
  static void Collect(const Node& node, Path& prefix, std::vector<Path>* out);
  static nlohmann::json Encode(const Node& node);
  static absl::Status Decode(const nlohmann::json& value, Node* node, int depth);

  Node root_;
};

}  // namespace kelpie::api::schema
