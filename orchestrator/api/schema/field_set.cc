#include "orchestrator/api/schema/field_set.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace kelpie::api::schema {

using nlohmann::json;

namespace {

// FieldsV1 documents come from clients: bound their depth like any body.
constexpr int kMaxDepth = 200;

bool ValidElement(const std::string& key) {
  if (key.size() < 2 || key[1] != ':') return false;
  char kind = key[0];
  return kind == 'f' || kind == 'k' || kind == 'v' || kind == 'i';
}

}  // namespace

void FieldSet::Insert(const Path& path) {
  Node* node = &root_;
  for (const auto& element : path) node = &node->children[element];
  if (!path.empty()) node->member = true;
}

bool FieldSet::Has(const Path& path) const {
  const Node* node = &root_;
  for (const auto& element : path) {
    auto it = node->children.find(element);
    if (it == node->children.end()) return false;
    node = &it->second;
  }
  return !path.empty() && node->member;
}

bool FieldSet::HasAtOrBelow(const Path& prefix) const {
  const Node* node = &root_;
  for (const auto& element : prefix) {
    auto it = node->children.find(element);
    if (it == node->children.end()) return false;
    node = &it->second;
  }
  return node->member || !node->children.empty();
}

void FieldSet::Unite(Node& into, const Node& from) {
  into.member = into.member || from.member;
  for (const auto& [key, child] : from.children) Unite(into.children[key], child);
}

bool FieldSet::Subtract(Node& from, const Node& what) {
  if (what.member) from.member = false;
  for (const auto& [key, child] : what.children) {
    auto it = from.children.find(key);
    if (it == from.children.end()) continue;
    if (Subtract(it->second, child)) from.children.erase(it);
  }
  return !from.member && from.children.empty();
}

bool FieldSet::Intersect(Node& into, const Node& with) {
  into.member = into.member && with.member;
  for (auto it = into.children.begin(); it != into.children.end();) {
    auto other = with.children.find(it->first);
    if (other == with.children.end() || Intersect(it->second, other->second)) {
      it = into.children.erase(it);
    } else {
      ++it;
    }
  }
  return !into.member && into.children.empty();
}

FieldSet FieldSet::Union(const FieldSet& other) const {
  FieldSet out = *this;
  Unite(out.root_, other.root_);
  return out;
}

FieldSet FieldSet::Difference(const FieldSet& other) const {
  FieldSet out = *this;
  Subtract(out.root_, other.root_);
  return out;
}

FieldSet FieldSet::Intersection(const FieldSet& other) const {
  FieldSet out = *this;
  Intersect(out.root_, other.root_);
  return out;
}

FieldSet FieldSet::Below(const Path& prefix) const {
  FieldSet out;
  const Node* node = &root_;
  for (const auto& element : prefix) {
    auto it = node->children.find(element);
    if (it == node->children.end()) return out;
    node = &it->second;
  }
  Node* target = &out.root_;
  for (const auto& element : prefix) target = &target->children[element];
  *target = *node;
  if (prefix.empty()) target->member = false;
  if (!target->member && target->children.empty()) return FieldSet();
  return out;
}

FieldSet FieldSet::Without(const Path& prefix) const {
  return Difference(Below(prefix));
}

void FieldSet::Collect(const Node& node, Path& prefix, std::vector<Path>* out) {
  for (const auto& [key, child] : node.children) {
    prefix.push_back(key);
    if (child.member) out->push_back(prefix);
    Collect(child, prefix, out);
    prefix.pop_back();
  }
}

std::vector<FieldSet::Path> FieldSet::Members() const {
  std::vector<Path> out;
  Path prefix;
  Collect(root_, prefix, &out);
  return out;
}

json FieldSet::Encode(const Node& node) {
  json out = json::object();
  if (node.member && !node.children.empty()) out["."] = json::object();
  for (const auto& [key, child] : node.children) out[key] = Encode(child);
  return out;
}

json FieldSet::ToFieldsV1() const { return Encode(root_); }

absl::Status FieldSet::Decode(const json& value, Node* node, int depth) {
  if (depth > kMaxDepth) return absl::InvalidArgumentError("FieldsV1 is nested too deeply");
  if (!value.is_object()) return absl::InvalidArgumentError("FieldsV1 entries must be objects");
  for (const auto& [key, child] : value.items()) {
    if (key == ".") {
      node->member = true;
      continue;
    }
    if (!ValidElement(key)) {
      return absl::InvalidArgumentError(absl::StrCat("FieldsV1 has an invalid path element \"", key, "\""));
    }
    Node& sub = node->children[key];
    if (!child.is_object()) return absl::InvalidArgumentError("FieldsV1 entries must be objects");
    if (child.empty()) {
      sub.member = true;
      continue;
    }
    if (auto s = Decode(child, &sub, depth + 1); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<FieldSet> FieldSet::FromFieldsV1(const json& fields) {
  FieldSet out;
  if (fields.is_null()) return out;
  if (auto s = Decode(fields, &out.root_, 0); !s.ok()) return s;
  out.root_.member = false;
  return out;
}

std::string FieldSet::PathString(const Path& path) {
  std::string out;
  for (const auto& element : path) {
    std::string rest = element.substr(2);
    switch (element[0]) {
      case 'f':
        absl::StrAppend(&out, ".", rest);
        break;
      case 'k': {
        json keys = json::parse(rest, nullptr, false);
        out += "[";
        bool first = true;
        if (keys.is_object()) {
          for (const auto& [name, value] : keys.items()) {
            absl::StrAppend(&out, first ? "" : ",", name, "=", value.dump());
            first = false;
          }
        }
        out += "]";
        break;
      }
      case 'v':
        absl::StrAppend(&out, "[=", rest, "]");
        break;
      default:
        absl::StrAppend(&out, "[", rest, "]");
    }
  }
  return out;
}

}  // namespace kelpie::api::schema
