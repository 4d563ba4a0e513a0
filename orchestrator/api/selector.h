// Label and field selectors as the Kubernetes API accepts them in
// `labelSelector` and `fieldSelector` query parameters.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include <nlohmann/json_fwd.hpp>

namespace kelpie::api {

struct LabelRequirement {
  enum class Op { kEquals, kNotEquals, kIn, kNotIn, kExists, kDoesNotExist, kGreaterThan, kLessThan };
  std::string key;
  Op op = Op::kEquals;
  std::vector<std::string> values;
};

class LabelSelector {
 public:
  // Parses "app=web,tier in (a,b),!legacy,version notin (1)"; errors read as
  // kube-apiserver's ("unable to parse requirement: ...").
  static absl::StatusOr<LabelSelector> Parse(const std::string& text);
  // From a metav1.LabelSelector object (matchLabels + matchExpressions).
  static absl::StatusOr<LabelSelector> FromJson(const nlohmann::json& selector);

  bool Empty() const { return requirements_.empty(); }
  // `labels` is the object's metadata.labels (may be null).
  bool Matches(const nlohmann::json& labels) const;
  const std::vector<LabelRequirement>& requirements() const { return requirements_; }
  // The selector in query-string form, requirements sorted by key, as
  // Kubernetes prints it (Scale status.selector).
  std::string String() const;

 private:
  std::vector<LabelRequirement> requirements_;
};

// LabelSelector::FromJson(selector).String(), or "" when it does not parse.
std::string LabelSelectorString(const nlohmann::json& selector);

struct FieldRequirement {
  std::string field;  // metadata.name, spec.nodeName, ...
  bool equals = true;
  std::string value;
};

class FieldSelector {
 public:
  // Parses "metadata.name=x,status.phase!=Running"; `supported` lists the
  // fields this resource can be selected by (others are a 400 error).
  static absl::StatusOr<FieldSelector> Parse(const std::string& text,
                                             const std::vector<std::string>& supported);
  bool Empty() const { return requirements_.empty(); }
  bool Matches(const nlohmann::json& object) const;
  const std::vector<FieldRequirement>& requirements() const { return requirements_; }

 private:
  std::vector<FieldRequirement> requirements_;
};

// The fields a resource can be selected by (metadata.name and
// metadata.namespace everywhere, plus the resource's own).
std::vector<std::string> SelectableFields(const std::string& group, const std::string& plural);

// The string form of a field of `object` as a field selector compares it
// ("" when absent; booleans as true/false).
std::string FieldValue(const nlohmann::json& object, const std::string& dotted_path);

// Validation helpers shared with object validation.
bool IsQualifiedName(const std::string& s, std::string* why);
bool IsValidLabelValue(const std::string& s, std::string* why);

}  // namespace kelpie::api
