// The compiled ruleset: conditions turned into evaluation trees, indexed by
// the event types each condition can match, so one event only runs the rules
// that can fire on it. Evaluate allocates nothing unless a rule matches and
// the caller asks for the rendered output.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "control/detect/event.h"
#include "control/detect/rule_set.h"

namespace kelpie::detect {

class ConditionNode;
class OutputTemplate;

// One loaded, enabled rule.
class CompiledRule {
 public:
  CompiledRule(const RuleSpec& spec, std::unique_ptr<ConditionNode> condition,
               std::unique_ptr<OutputTemplate> output);
  ~CompiledRule();

  const std::string& name() const { return name_; }
  const std::string& desc() const { return desc_; }
  Priority priority() const { return priority_; }
  Action action() const { return action_; }
  const std::vector<std::string>& tags() const { return tags_; }
  bool Matches(const Event& event) const;
  // The rule's output with every %field replaced by its value in `event`.
  std::string RenderOutput(const Event& event) const;
  const ConditionNode& condition() const { return *condition_; }

 private:
  std::string name_;
  std::string desc_;
  Priority priority_;
  Action action_;
  std::vector<std::string> tags_;
  std::unique_ptr<ConditionNode> condition_;
  std::unique_ptr<OutputTemplate> output_;
};

// What in-kernel filters need to know so only relevant events cross to user
// space: which event types any rule can match and, per type, the path
// prefixes of fd.name one of which every matching event must have.
struct PrefilterSpec {
  struct PerType {
    bool wanted = false;
    // Empty with wanted = true means every path; only meaningful for
    // path-carrying types (open, chmod, rename, unlink, execve).
    std::vector<std::string> path_prefixes;
  };
  std::array<PerType, kEventTypeCount> types;
};

struct EngineOptions {
  // Rules less severe than this are not loaded.
  Priority minimum_priority = Priority::kDebug;
};

class Engine {
 public:
  static absl::StatusOr<std::unique_ptr<Engine>> Compile(const RuleSet& rules,
                                                         const EngineOptions& options = {});
  ~Engine();

  // Calls `on_match` for every rule that matches, in rule file order; returns
  // the number of matches.
  size_t Evaluate(const Event& event,
                  absl::FunctionRef<void(const CompiledRule&)> on_match) const;

  PrefilterSpec DerivePrefilter() const;
  const std::vector<std::unique_ptr<CompiledRule>>& rules() const { return rules_; }
  // Rules that can match `type`, in file order.
  const std::vector<const CompiledRule*>& RulesFor(EventType type) const {
    return by_type_[static_cast<size_t>(type)];
  }

 private:
  Engine() = default;
  std::vector<std::unique_ptr<CompiledRule>> rules_;
  std::array<std::vector<const CompiledRule*>, kEventTypeCount> by_type_;
};

}  // namespace kelpie::detect
