#include "orchestrator/api/selector.h"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "orchestrator/api/object_meta.h"

namespace kelpie::api {
namespace {

bool IsAlnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

// [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])? of at most 63 characters.
bool IsNamePart(const std::string& s) {
  if (s.empty() || s.size() > 63 || !IsAlnum(s.front()) || !IsAlnum(s.back())) return false;
  for (char c : s) {
    if (!IsAlnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

std::string Trim(absl::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

// Splits on commas outside parentheses.
std::vector<std::string> SplitTopLevel(const std::string& text) {
  std::vector<std::string> parts;
  int depth = 0;
  std::string current;
  for (char c : text) {
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (c == ',' && depth == 0) {
      parts.push_back(current);
      current.clear();
    } else {
      current.push_back(c);
    }
  }
  parts.push_back(current);
  return parts;
}

absl::Status ParseError(const std::string& requirement, const std::string& why) {
  return absl::InvalidArgumentError(
      absl::StrCat("unable to parse requirement: ", why, " (in \"", requirement, "\")"));
}

absl::Status CheckKeyAndValues(const LabelRequirement& r, const std::string& text) {
  std::string why;
  if (!IsQualifiedName(r.key, &why)) {
    return ParseError(text, absl::StrCat("invalid label key \"", r.key, "\": ", why));
  }
  for (const auto& v : r.values) {
    if (!IsValidLabelValue(v, &why)) {
      return ParseError(text, absl::StrCat("invalid label value: \"", v, "\": ", why));
    }
  }
  return absl::OkStatus();
}

}  // namespace

bool IsQualifiedName(const std::string& s, std::string* why) {
  std::string name = s;
  size_t slash = s.find('/');
  if (slash != std::string::npos) {
    std::string prefix = s.substr(0, slash);
    name = s.substr(slash + 1);
    if (!IsDns1123Subdomain(prefix)) {
      *why = "prefix part must be a lowercase RFC 1123 subdomain";
      return false;
    }
  }
  if (!IsNamePart(name)) {
    *why =
        "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
        "end with an alphanumeric character (at most 63 characters)";
    return false;
  }
  return true;
}

bool IsValidLabelValue(const std::string& s, std::string* why) {
  if (s.empty()) return true;
  if (!IsNamePart(s)) {
    *why =
        "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
        "or '.', and must start and end with an alphanumeric character (at most 63 characters)";
    return false;
  }
  return true;
}

absl::StatusOr<LabelSelector> LabelSelector::Parse(const std::string& text) {
  LabelSelector sel;
  if (Trim(text).empty()) return sel;
  for (const std::string& raw : SplitTopLevel(text)) {
    std::string part = Trim(raw);
    if (part.empty()) return ParseError(text, "empty requirement");
    LabelRequirement r;
    if (part[0] == '!') {
      r.key = Trim(part.substr(1));
      r.op = LabelRequirement::Op::kDoesNotExist;
    } else if (size_t p = part.find("!="); p != std::string::npos) {
      r.key = Trim(part.substr(0, p));
      r.op = LabelRequirement::Op::kNotEquals;
      r.values = {Trim(part.substr(p + 2))};
    } else if (size_t p2 = part.find("=="); p2 != std::string::npos) {
      r.key = Trim(part.substr(0, p2));
      r.values = {Trim(part.substr(p2 + 2))};
    } else if (size_t p3 = part.find('='); p3 != std::string::npos) {
      r.key = Trim(part.substr(0, p3));
      r.values = {Trim(part.substr(p3 + 1))};
    } else if (size_t open = part.find('('); open != std::string::npos) {
      if (part.back() != ')') return ParseError(part, "expected ')' at the end of the value list");
      std::string head = Trim(part.substr(0, open));
      size_t space = head.find_last_of(" \t");
      if (space == std::string::npos) return ParseError(part, "expected 'in' or 'notin'");
      std::string op = head.substr(space + 1);
      r.key = Trim(head.substr(0, space));
      if (op == "in") {
        r.op = LabelRequirement::Op::kIn;
      } else if (op == "notin") {
        r.op = LabelRequirement::Op::kNotIn;
      } else {
        return ParseError(part, absl::StrCat("found '", op, "', expected: in, notin"));
      }
      std::string inner = part.substr(open + 1, part.size() - open - 2);
      for (absl::string_view v : absl::StrSplit(inner, ',')) r.values.push_back(Trim(v));
      if (r.values.size() == 1 && r.values[0].empty() && r.op == LabelRequirement::Op::kIn) {
        return ParseError(part, "for 'in' and 'notin' operators, values set can't be empty");
      }
    } else if (size_t gt = part.find('>'); gt != std::string::npos) {
      r.key = Trim(part.substr(0, gt));
      r.op = LabelRequirement::Op::kGreaterThan;
      r.values = {Trim(part.substr(gt + 1))};
      int64_t n;
      if (!absl::SimpleAtoi(r.values[0], &n)) return ParseError(part, "expected an integer after '>'");
    } else if (size_t lt = part.find('<'); lt != std::string::npos) {
      r.key = Trim(part.substr(0, lt));
      r.op = LabelRequirement::Op::kLessThan;
      r.values = {Trim(part.substr(lt + 1))};
      int64_t n;
      if (!absl::SimpleAtoi(r.values[0], &n)) return ParseError(part, "expected an integer after '<'");
    } else {
      r.key = part;
      r.op = LabelRequirement::Op::kExists;
      if (part.find_first_of(" \t") != std::string::npos) {
        return ParseError(part, "found unexpected text after the key, expected: in, notin, =, ==, !=, >, <");
      }
    }
    if (r.key.empty()) return ParseError(part, "missing label key");
    absl::Status st = CheckKeyAndValues(r, part);
    if (!st.ok()) return st;
    sel.requirements_.push_back(std::move(r));
  }
  return sel;
}

std::string LabelSelector::String() const {
  std::vector<LabelRequirement> sorted = requirements_;
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const LabelRequirement& a, const LabelRequirement& b) { return a.key < b.key; });
  std::string out;
  for (auto& r : sorted) {
    std::sort(r.values.begin(), r.values.end());
    std::string values = absl::StrJoin(r.values, ",");
    if (!out.empty()) out += ",";
    switch (r.op) {
      case LabelRequirement::Op::kEquals: absl::StrAppend(&out, r.key, "=", values); break;
      case LabelRequirement::Op::kNotEquals: absl::StrAppend(&out, r.key, "!=", values); break;
      case LabelRequirement::Op::kIn: absl::StrAppend(&out, r.key, " in (", values, ")"); break;
      case LabelRequirement::Op::kNotIn: absl::StrAppend(&out, r.key, " notin (", values, ")"); break;
      case LabelRequirement::Op::kExists: absl::StrAppend(&out, r.key); break;
      case LabelRequirement::Op::kDoesNotExist: absl::StrAppend(&out, "!", r.key); break;
      case LabelRequirement::Op::kGreaterThan: absl::StrAppend(&out, r.key, ">", values); break;
      case LabelRequirement::Op::kLessThan: absl::StrAppend(&out, r.key, "<", values); break;
    }
  }
  return out;
}

std::string LabelSelectorString(const nlohmann::json& selector) {
  auto parsed = LabelSelector::FromJson(selector);
  return parsed.ok() ? parsed->String() : "";
}

absl::StatusOr<LabelSelector> LabelSelector::FromJson(const nlohmann::json& selector) {
  LabelSelector sel;
  if (!selector.is_object()) return sel;
  if (auto it = selector.find("matchLabels"); it != selector.end() && it->is_object()) {
    for (auto& [k, v] : it->items()) {
      if (!v.is_string()) return absl::InvalidArgumentError("matchLabels values must be strings");
      sel.requirements_.push_back({k, LabelRequirement::Op::kEquals, {v.get<std::string>()}});
    }
  }
  if (auto it = selector.find("matchExpressions"); it != selector.end() && it->is_array()) {
    for (const auto& e : *it) {
      LabelRequirement r;
      r.key = e.value("key", "");
      std::string op = e.value("operator", "");
      if (op == "In") r.op = LabelRequirement::Op::kIn;
      else if (op == "NotIn") r.op = LabelRequirement::Op::kNotIn;
      else if (op == "Exists") r.op = LabelRequirement::Op::kExists;
      else if (op == "DoesNotExist") r.op = LabelRequirement::Op::kDoesNotExist;
      else return absl::InvalidArgumentError(absl::StrCat("\"", op, "\" is not a valid label selector operator"));
      if (auto v = e.find("values"); v != e.end() && v->is_array()) {
        for (const auto& x : *v) r.values.push_back(x.get<std::string>());
      }
      sel.requirements_.push_back(std::move(r));
    }
  }
  return sel;
}

bool LabelSelector::Matches(const nlohmann::json& labels) const {
  for (const auto& r : requirements_) {
    const nlohmann::json* value = nullptr;
    if (labels.is_object()) {
      auto it = labels.find(r.key);
      if (it != labels.end() && it->is_string()) value = &*it;
    }
    auto has = [&](const std::string& v) { return value && value->get_ref<const std::string&>() == v; };
    switch (r.op) {
      case LabelRequirement::Op::kEquals:
        if (!has(r.values[0])) return false;
        break;
      case LabelRequirement::Op::kNotEquals:
        if (has(r.values[0])) return false;
        break;
      case LabelRequirement::Op::kIn: {
        bool any = false;
        for (const auto& v : r.values) any = any || has(v);
        if (!any) return false;
        break;
      }
      case LabelRequirement::Op::kNotIn:
        for (const auto& v : r.values) {
          if (has(v)) return false;
        }
        break;
      case LabelRequirement::Op::kExists:
        if (!value) return false;
        break;
      case LabelRequirement::Op::kDoesNotExist:
        if (value) return false;
        break;
      case LabelRequirement::Op::kGreaterThan:
      case LabelRequirement::Op::kLessThan: {
        int64_t have, want;
        if (!value || !absl::SimpleAtoi(value->get_ref<const std::string&>(), &have) ||
            !absl::SimpleAtoi(r.values[0], &want)) {
          return false;
        }
        if (r.op == LabelRequirement::Op::kGreaterThan ? !(have > want) : !(have < want)) return false;
        break;
      }
    }
  }
  return true;
}

std::vector<std::string> SelectableFields(const std::string& group, const std::string& plural) {
  std::vector<std::string> f = {"metadata.name", "metadata.namespace"};
  if (!group.empty()) {
    if (group == "batch" && plural == "jobs") f.push_back("status.successful");
    return f;
  }
  if (plural == "pods") {
    for (const char* x : {"spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
                          "spec.serviceAccountName", "spec.hostNetwork", "status.phase",
                          "status.podIP", "status.nominatedNodeName"}) {
      f.push_back(x);
    }
  } else if (plural == "events") {
    for (const char* x : {"involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                          "involvedObject.uid", "involvedObject.apiVersion",
                          "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason",
                          "reportingComponent", "source", "type"}) {
      f.push_back(x);
    }
  } else if (plural == "secrets") {
    f.push_back("type");
  } else if (plural == "nodes") {
    f.push_back("spec.unschedulable");
  } else if (plural == "namespaces") {
    f.push_back("status.phase");
  } else if (plural == "replicationcontrollers") {
    f.push_back("status.replicas");
  }
  return f;
}

std::string FieldValue(const nlohmann::json& object, const std::string& dotted_path) {
  const nlohmann::json* cur = &object;
  std::string path = dotted_path == "source" ? "source.component" : dotted_path;
  for (absl::string_view part : absl::StrSplit(path, '.')) {
    if (!cur->is_object()) return "";
    auto it = cur->find(std::string(part));
    if (it == cur->end()) return "";
    cur = &*it;
  }
  if (cur->is_string()) return cur->get<std::string>();
  if (cur->is_boolean()) return cur->get<bool>() ? "true" : "false";
  if (cur->is_number()) return cur->dump();
  return "";
}

absl::StatusOr<FieldSelector> FieldSelector::Parse(const std::string& text,
                                                   const std::vector<std::string>& supported) {
  FieldSelector sel;
  if (Trim(text).empty()) return sel;
  for (absl::string_view raw : absl::StrSplit(text, ',')) {
    std::string part = Trim(raw);
    FieldRequirement r;
    size_t pos;
    if ((pos = part.find("!=")) != std::string::npos) {
      r.field = Trim(part.substr(0, pos));
      r.equals = false;
      r.value = Trim(part.substr(pos + 2));
    } else if ((pos = part.find("==")) != std::string::npos) {
      r.field = Trim(part.substr(0, pos));
      r.value = Trim(part.substr(pos + 2));
    } else if ((pos = part.find('=')) != std::string::npos) {
      r.field = Trim(part.substr(0, pos));
      r.value = Trim(part.substr(pos + 1));
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid selector: '", text, "'; can't understand '", part, "'"));
    }
    bool known = false;
    for (const auto& s : supported) known = known || s == r.field;
    if (!known) {
      return absl::InvalidArgumentError(absl::StrCat("field label not supported: ", r.field));
    }
    sel.requirements_.push_back(std::move(r));
  }
  return sel;
}

bool FieldSelector::Matches(const nlohmann::json& object) const {
  for (const auto& r : requirements_) {
    bool eq = FieldValue(object, r.field) == r.value;
    if (eq != r.equals) return false;
  }
  return true;
}

}  // namespace kelpie::api
