#include "control/detect/rule_set.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "yaml-cpp/yaml.h"

namespace kelpie::detect {
namespace {

constexpr std::string_view kPriorityNames[] = {"emergency", "alert",  "critical",      "error",
                                               "warning",   "notice", "informational", "debug"};

class FileLoader {
 public:
  FileLoader(std::string_view file, std::string_view content) : file_(file), content_(content) {}

  SourceLocation At(const YAML::Node& node) const {
    YAML::Mark mark = node.Mark();
    return SourceLocation{file_, mark.line + 1, mark.column + 1};
  }
  absl::Status Error(const YAML::Node& node, absl::string_view message) const {
    return absl::InvalidArgumentError(absl::StrCat(At(node).ToString(), ": ", message));
  }

  absl::StatusOr<std::string> Scalar(const YAML::Node& item, absl::string_view key,
                                     absl::string_view what) const {
    YAML::Node value = item[std::string(key)];
    if (!value.IsScalar()) {
      return Error(value.IsDefined() ? value : item,
                   absl::StrCat(what, ": '", key, "' must be a string"));
    }
    return value.Scalar();
  }

  absl::StatusOr<std::vector<std::string>> ScalarList(const YAML::Node& node,
                                                      absl::string_view what) const {
    std::vector<std::string> items;
    if (node.IsNull()) return items;
    if (!node.IsSequence()) return Error(node, absl::StrCat(what, " must be a list"));
    for (const YAML::Node& entry : node) {
      if (!entry.IsScalar()) return Error(entry, absl::StrCat(what, " must hold strings"));
      items.push_back(entry.Scalar());
    }
    return items;
  }

  SourceMap ConditionMap(const YAML::Node& node) const {
    YAML::Mark mark = node.Mark();
    return SourceMap::ForYamlScalar(file_, content_, mark.line, mark.column);
  }

  // Falco's `override: {key: append|replace}`; `append: true` appends every
  // appendable key.
  absl::StatusOr<std::string> Mode(const YAML::Node& item, absl::string_view key,
                                   absl::string_view what) const {
    YAML::Node override_node = item["override"];
    if (override_node.IsDefined()) {
      if (!override_node.IsMap()) return Error(override_node, absl::StrCat(what, ": 'override' must be a map"));
      YAML::Node mode = override_node[std::string(key)];
      if (mode.IsDefined()) {
        if (!mode.IsScalar() || (mode.Scalar() != "append" && mode.Scalar() != "replace")) {
          return Error(mode, absl::StrCat(what, ": override of '", key,
                                          "' must be 'append' or 'replace'"));
        }
        return mode.Scalar();
      }
    }
    YAML::Node append = item["append"];
    if (append.IsDefined()) {
      if (!append.IsScalar() || (append.Scalar() != "true" && append.Scalar() != "false")) {
        return Error(append, absl::StrCat(what, ": 'append' must be true or false"));
      }
      if (append.Scalar() == "true") return std::string("append");
    }
    return std::string();
  }

  absl::StatusOr<ExceptionSpec> Exception(const YAML::Node& node, absl::string_view rule) const {
    std::string what = absl::StrCat("rule '", rule, "' exception");
    if (!node.IsMap()) return Error(node, absl::StrCat(what, " must be a map"));
    ExceptionSpec spec;
    spec.location = At(node);
    if (!node["name"].IsScalar()) return Error(node, absl::StrCat(what, " needs a 'name'"));
    spec.name = node["name"].Scalar();
    what = absl::StrCat("rule '", rule, "' exception '", spec.name, "'");
    YAML::Node fields = node["fields"];
    YAML::Node comps = node["comps"];
    YAML::Node values = node["values"];
    bool single_field = fields.IsScalar();
    if (single_field) {
      spec.fields.push_back(fields.Scalar());
    } else if (fields.IsSequence()) {
      KELPIE_ASSIGN_OR_RETURN(spec.fields, ScalarList(fields, absl::StrCat(what, " fields")));
    } else {
      return Error(fields.IsDefined() ? fields : node, absl::StrCat(what, " needs 'fields'"));
    }
    if (!comps.IsDefined()) {
      spec.comps.assign(spec.fields.size(), "=");
    } else if (comps.IsScalar()) {
      if (!single_field) return Error(comps, absl::StrCat(what, ": 'comps' must be a list like 'fields'"));
      spec.comps.push_back(comps.Scalar());
    } else {
      KELPIE_ASSIGN_OR_RETURN(spec.comps, ScalarList(comps, absl::StrCat(what, " comps")));
      if (spec.comps.size() != spec.fields.size()) {
        return Error(comps, absl::StrCat(what, ": ", spec.comps.size(), " comps for ",
                                         spec.fields.size(), " fields"));
      }
    }
    if (!values.IsDefined() || values.IsNull()) return spec;
    if (!values.IsSequence()) return Error(values, absl::StrCat(what, ": 'values' must be a list"));
    if (single_field) {
      // One field: the values are alternatives, or for a list operator one list.
      bool list_comp = spec.comps[0] == "in" || spec.comps[0] == "intersects" || spec.comps[0] == "pmatch";
      if (list_comp) {
        ExceptionValue value;
        value.is_sequence = true;
        KELPIE_ASSIGN_OR_RETURN(value.items, ScalarList(values, absl::StrCat(what, " values")));
        spec.values.push_back({std::move(value)});
      } else {
        for (const YAML::Node& entry : values) {
          if (!entry.IsScalar()) return Error(entry, absl::StrCat(what, ": values must be strings"));
          spec.values.push_back({ExceptionValue{entry.Scalar(), false, {}}});
        }
      }
      return spec;
    }
    for (const YAML::Node& tuple : values) {
      if (!tuple.IsSequence() || tuple.size() != spec.fields.size()) {
        return Error(tuple, absl::StrCat(what, ": each value must be a list of ", spec.fields.size(),
                                         " entries, one per field"));
      }
      std::vector<ExceptionValue> row;
      for (const YAML::Node& entry : tuple) {
        ExceptionValue value;
        if (entry.IsSequence()) {
          value.is_sequence = true;
          KELPIE_ASSIGN_OR_RETURN(value.items, ScalarList(entry, absl::StrCat(what, " values")));
        } else if (entry.IsScalar()) {
          value.text = entry.Scalar();
        } else {
          return Error(entry, absl::StrCat(what, ": a value must be a string or a list"));
        }
        row.push_back(std::move(value));
      }
      spec.values.push_back(std::move(row));
    }
    return spec;
  }

  const std::string& file() const { return file_; }

 private:
  std::string file_;
  std::string_view content_;
};

absl::StatusOr<Priority> ParsePriority(absl::string_view text) {
  std::string lower = absl::AsciiStrToLower(std::string(text));
  if (lower == "info") lower = "informational";
  for (size_t i = 0; i < std::size(kPriorityNames); ++i) {
    if (kPriorityNames[i] == lower) return static_cast<Priority>(i);
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown priority '", std::string(text),
      "'; expected emergency, alert, critical, error, warning, notice, informational or debug"));
}

absl::StatusOr<Action> ParseAction(absl::string_view text) {
  if (text == "alert") return Action::kAlert;
  if (text == "kill") return Action::kKill;
  if (text == "quarantine") return Action::kQuarantine;
  return absl::InvalidArgumentError(absl::StrCat("unknown action '", std::string(text),
                                                 "'; expected alert, kill or quarantine"));
}

template <typename T>
T* FindByName(std::vector<T>& items, std::string_view name) {
  for (T& item : items) {
    if (item.name == name) return &item;
  }
  return nullptr;
}

void AppendCondition(std::string* condition, SourceMap* map, const std::string& extra,
                     const SourceMap& extra_map) {
  condition->push_back(' ');
  map->Append(extra_map, condition->size());
  condition->append(extra);
}


absl::Status AddRule(const FileLoader& loader, const YAML::Node& item, std::vector<RuleSpec>* rules) {
  KELPIE_ASSIGN_OR_RETURN(std::string name, loader.Scalar(item, "rule", "rule"));
  std::string what = absl::StrCat("rule '", name, "'");
  RuleSpec* existing = FindByName(*rules, name);
  bool has_override = item["override"].IsDefined() || item["append"].IsDefined();

  auto read_enabled = [&](RuleSpec* spec) -> absl::Status {
    YAML::Node enabled = item["enabled"];
    if (!enabled.IsDefined()) return absl::OkStatus();
    if (!enabled.IsScalar() || (enabled.Scalar() != "true" && enabled.Scalar() != "false")) {
      return loader.Error(enabled, absl::StrCat(what, ": 'enabled' must be true or false"));
    }
    spec->enabled = enabled.Scalar() == "true";
    return absl::OkStatus();
  };
  auto read_exceptions = [&](std::vector<ExceptionSpec>* out, bool append) -> absl::Status {
    YAML::Node node = item["exceptions"];
    if (!node.IsDefined() || node.IsNull()) return absl::OkStatus();
    if (!node.IsSequence()) return loader.Error(node, absl::StrCat(what, ": 'exceptions' must be a list"));
    for (const YAML::Node& entry : node) {
      KELPIE_ASSIGN_OR_RETURN(ExceptionSpec exception, loader.Exception(entry, name));
      ExceptionSpec* same = append ? FindByName(*out, exception.name) : nullptr;
      if (same != nullptr) {
        // Appending to a named exception adds value tuples, as in Falco.
        for (auto& row : exception.values) same->values.push_back(std::move(row));
      } else {
        out->push_back(std::move(exception));
      }
    }
    return absl::OkStatus();
  };
  auto read_scalar_fields = [&](RuleSpec* spec, bool only_present) -> absl::Status {
    for (absl::string_view key : {"desc", "output"}) {
      YAML::Node node = item[std::string(key)];
      if (!node.IsDefined()) {
        if (!only_present) return loader.Error(item, absl::StrCat(what, " needs '", key, "'"));
        continue;
      }
      if (!node.IsScalar()) return loader.Error(node, absl::StrCat(what, ": '", key, "' must be a string"));
      (key == "desc" ? spec->desc : spec->output) = node.Scalar();
    }
    YAML::Node priority = item["priority"];
    if (priority.IsDefined()) {
      if (!priority.IsScalar()) return loader.Error(priority, absl::StrCat(what, ": 'priority' must be a string"));
      auto parsed = ParsePriority(priority.Scalar());
      if (!parsed.ok()) return loader.Error(priority, absl::StrCat(what, ": ", parsed.status().message()));
      spec->priority = *parsed;
    } else if (!only_present) {
      return loader.Error(item, absl::StrCat(what, " needs 'priority'"));
    }
    YAML::Node action = item["action"];
    if (action.IsDefined()) {
      if (!action.IsScalar()) return loader.Error(action, absl::StrCat(what, ": 'action' must be a string"));
      auto parsed = ParseAction(action.Scalar());
      if (!parsed.ok()) return loader.Error(action, absl::StrCat(what, ": ", parsed.status().message()));
      spec->action = *parsed;
    }
    YAML::Node tags = item["tags"];
    if (tags.IsDefined()) {
      KELPIE_ASSIGN_OR_RETURN(std::vector<std::string> parsed,
                              loader.ScalarList(tags, absl::StrCat(what, " tags")));
      spec->tags = std::move(parsed);
    }
    return read_enabled(spec);
  };

  if (existing != nullptr && has_override) {
    KELPIE_ASSIGN_OR_RETURN(std::string condition_mode, loader.Mode(item, "condition", what));
    KELPIE_ASSIGN_OR_RETURN(std::string exceptions_mode, loader.Mode(item, "exceptions", what));
    if (item["condition"].IsDefined()) {
      KELPIE_ASSIGN_OR_RETURN(std::string condition, loader.Scalar(item, "condition", what));
      SourceMap map = loader.ConditionMap(item["condition"]);
      if (condition_mode == "replace") {
        existing->condition = std::move(condition);
        existing->condition_map = std::move(map);
      } else {
        AppendCondition(&existing->condition, &existing->condition_map, condition, map);
      }
    }
    if (exceptions_mode == "replace") existing->exceptions.clear();
    KELPIE_RETURN_IF_ERROR(read_exceptions(&existing->exceptions, exceptions_mode != "replace"));
    return read_scalar_fields(existing, /*only_present=*/true);
  }
  if (existing == nullptr && has_override) {
    return loader.Error(item, absl::StrCat(what, " is appended to but was never defined"));
  }
  if (existing != nullptr && !item["condition"].IsDefined()) {
    // Falco's way to switch a rule on or off from a later file.
    return read_scalar_fields(existing, /*only_present=*/true);
  }
  RuleSpec spec;
  spec.name = name;
  spec.location = loader.At(item);
  if (!item["condition"].IsDefined()) return loader.Error(item, absl::StrCat(what, " needs 'condition'"));
  KELPIE_ASSIGN_OR_RETURN(spec.condition, loader.Scalar(item, "condition", what));
  spec.condition_map = loader.ConditionMap(item["condition"]);
  KELPIE_RETURN_IF_ERROR(read_scalar_fields(&spec, /*only_present=*/false));
  KELPIE_RETURN_IF_ERROR(read_exceptions(&spec.exceptions, false));
  if (existing != nullptr) {
    *existing = std::move(spec);
  } else {
    rules->push_back(std::move(spec));
  }
  return absl::OkStatus();
}

}  // namespace

std::string_view PriorityName(Priority priority) {
  return kPriorityNames[static_cast<size_t>(priority)];
}

std::string_view ActionName(Action action) {
  switch (action) {
    case Action::kAlert: return "alert";
    case Action::kKill: return "kill";
    case Action::kQuarantine: return "quarantine";
  }
  return "alert";
}

const ListSpec* RuleSet::FindList(std::string_view name) const {
  return FindByName(const_cast<std::vector<ListSpec>&>(lists_), name);
}
const MacroSpec* RuleSet::FindMacro(std::string_view name) const {
  return FindByName(const_cast<std::vector<MacroSpec>&>(macros_), name);
}
const RuleSpec* RuleSet::FindRule(std::string_view name) const {
  return FindByName(const_cast<std::vector<RuleSpec>&>(rules_), name);
}

absl::StatusOr<RuleSet> RuleSet::LoadFiles(const std::vector<std::string>& paths) {
  RuleSet set;
  for (const std::string& path : paths) {
    auto content = kelpie::ReadFileToString(path);
    if (!content.ok()) {
      return absl::Status(content.status().code(),
                          absl::StrCat("reading rule file ", path, ": ", content.status().message()));
    }
    KELPIE_RETURN_IF_ERROR(set.AddYaml(path, *content));
  }
  return set;
}

absl::Status RuleSet::AddYaml(std::string_view file_name, std::string_view content) {
  FileLoader loader(file_name, content);
  YAML::Node root;
  try {
    root = YAML::Load(std::string(content));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(std::string(file_name), ":", e.mark.line + 1, ":",
                                                   e.mark.column + 1, ": invalid YAML: ", e.msg));
  }
  if (root.IsNull()) return absl::OkStatus();
  if (!root.IsSequence()) {
    return loader.Error(root, "a rule file must be a list of '- rule:', '- macro:' and '- list:' items");
  }
  // yaml-cpp reports type mismatches by exception; every access below checks
  // types first, but a malformed document must still never escape as one.
  try {
    for (const YAML::Node& item : root) {
      if (!item.IsMap()) return loader.Error(item, "expected a map with 'rule', 'macro' or 'list'");
      if (item["list"].IsDefined()) {
        KELPIE_ASSIGN_OR_RETURN(std::string name, loader.Scalar(item, "list", "list"));
        std::string what = absl::StrCat("list '", name, "'");
        KELPIE_ASSIGN_OR_RETURN(std::string mode, loader.Mode(item, "items", what));
        YAML::Node items_node = item["items"];
        if (!items_node.IsDefined()) return loader.Error(item, absl::StrCat(what, " needs 'items'"));
        KELPIE_ASSIGN_OR_RETURN(std::vector<std::string> items,
                                      loader.ScalarList(items_node, absl::StrCat(what, " items")));
        ListSpec* existing = FindByName(lists_, name);
        if (mode == "append") {
          if (existing == nullptr) {
            return loader.Error(item, absl::StrCat(what, " is appended to but was never defined"));
          }
          existing->items.insert(existing->items.end(), items.begin(), items.end());
        } else if (existing != nullptr) {
          existing->items = std::move(items);
          existing->location = loader.At(item);
        } else {
          lists_.push_back(ListSpec{name, std::move(items), loader.At(item)});
        }
      } else if (item["macro"].IsDefined()) {
        KELPIE_ASSIGN_OR_RETURN(std::string name, loader.Scalar(item, "macro", "macro"));
        std::string what = absl::StrCat("macro '", name, "'");
        KELPIE_ASSIGN_OR_RETURN(std::string mode, loader.Mode(item, "condition", what));
        KELPIE_ASSIGN_OR_RETURN(std::string condition, loader.Scalar(item, "condition", what));
        SourceMap map = loader.ConditionMap(item["condition"]);
        MacroSpec* existing = FindByName(macros_, name);
        if (mode == "append") {
          if (existing == nullptr) {
            return loader.Error(item, absl::StrCat(what, " is appended to but was never defined"));
          }
          AppendCondition(&existing->condition, &existing->condition_map, condition, map);
        } else if (existing != nullptr) {
          existing->condition = std::move(condition);
          existing->condition_map = std::move(map);
          existing->location = loader.At(item);
        } else {
          macros_.push_back(MacroSpec{name, std::move(condition), std::move(map), loader.At(item)});
        }
      } else if (item["rule"].IsDefined()) {
        KELPIE_RETURN_IF_ERROR(AddRule(loader, item, &rules_));
      } else if (item["required_engine_version"].IsDefined() ||
                 item["required_plugin_versions"].IsDefined()) {
        continue;  // Falco compatibility headers carry nothing for this engine
      } else {
        return loader.Error(item, "expected a map with 'rule', 'macro' or 'list'");
      }
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(std::string(file_name), ":", e.mark.line + 1, ":",
                                                   e.mark.column + 1, ": ", e.msg));
  }
  return absl::OkStatus();
}

}  // namespace kelpie::detect
