// Rule files as written: lists, macros and rules in Falco's shape, several
// files loaded in order with Falco's append / override semantics. Nothing
// here is compiled; Engine::Compile turns a RuleSet into an evaluation tree.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "control/detect/source_map.h"

namespace kelpie::detect {

enum class Priority {
  kEmergency,
  kAlert,
  kCritical,
  kError,
  kWarning,
  kNotice,
  kInformational,
  kDebug,
};
std::string_view PriorityName(Priority priority);

// Kelpie's addition to the rule format: what to do besides alerting.
enum class Action { kAlert, kKill, kQuarantine };
std::string_view ActionName(Action action);

struct ListSpec {
  std::string name;
  std::vector<std::string> items;
  SourceLocation location;
};

struct MacroSpec {
  std::string name;
  std::string condition;
  SourceMap condition_map;
  SourceLocation location;
};

struct ExceptionValue {
  std::string text;
  bool is_sequence = false;           // a YAML sequence: values of an `in`
  std::vector<std::string> items;     // when is_sequence
};

struct ExceptionSpec {
  std::string name;
  std::vector<std::string> fields;
  std::vector<std::string> comps;  // one per field, "=" when not given
  std::vector<std::vector<ExceptionValue>> values;  // tuples, one entry per field
  SourceLocation location;
};

struct RuleSpec {
  std::string name;
  std::string desc;
  std::string condition;
  SourceMap condition_map;
  std::string output;
  Priority priority = Priority::kWarning;
  std::vector<std::string> tags;
  bool enabled = true;
  Action action = Action::kAlert;
  std::vector<ExceptionSpec> exceptions;
  SourceLocation location;
};

class RuleSet {
 public:
  // Loads `paths` in order; later files append to or override earlier ones.
  static absl::StatusOr<RuleSet> LoadFiles(const std::vector<std::string>& paths);

  // Adds one rule file's content; `file_name` appears in error messages.
  absl::Status AddYaml(std::string_view file_name, std::string_view content);

  const std::vector<ListSpec>& lists() const { return lists_; }
  const std::vector<MacroSpec>& macros() const { return macros_; }
  const std::vector<RuleSpec>& rules() const { return rules_; }
  const ListSpec* FindList(std::string_view name) const;
  const MacroSpec* FindMacro(std::string_view name) const;
  const RuleSpec* FindRule(std::string_view name) const;

 private:
  std::vector<ListSpec> lists_;
  std::vector<MacroSpec> macros_;
  std::vector<RuleSpec> rules_;
};

}  // namespace kelpie::detect
