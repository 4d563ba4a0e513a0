// Nodes of a compiled condition. Each comparison holds its field accessor and
// a matcher built at load time (hash set, sorted prefixes, glob), so
// evaluating reads the event through string_views and allocates nothing.
#pragma once

#include <bitset>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "control/detect/event.h"
#include "control/detect/field_registry.h"

namespace kelpie::detect {

using EventTypeSet = std::bitset<kEventTypeCount>;

class ConditionNode {
 public:
  virtual ~ConditionNode() = default;
  virtual bool Evaluate(const Event& event) const = 0;
  // Event types for which the node can be true.
  virtual EventTypeSet PossibleTypes() const { return EventTypeSet().set(); }
  // Path prefixes one of which fd.name must have for the node to be true;
  // nullopt when the node does not constrain the path.
  virtual std::optional<std::vector<std::string>> RequiredPathPrefixes() const {
    return std::nullopt;
  }
};

enum class CompareOp {
  kEq, kNe, kLt, kLe, kGt, kGe, kIn, kIntersects, kPmatch, kContains, kIContains,
  kStartsWith, kEndsWith, kGlob, kExists,
};

// Builds the nodes; errors are plain messages, the caller adds the position.
class ConditionNodes {
 public:
  static std::unique_ptr<ConditionNode> And(std::vector<std::unique_ptr<ConditionNode>> children);
  static std::unique_ptr<ConditionNode> Or(std::vector<std::unique_ptr<ConditionNode>> children);
  static std::unique_ptr<ConditionNode> Not(std::unique_ptr<ConditionNode> child);
  static std::unique_ptr<ConditionNode> TypeIn(EventTypeSet types);
  // `values` are already expanded (list names replaced by their items).
  static absl::StatusOr<std::unique_ptr<ConditionNode>> Compare(FieldAccessor field, CompareOp op,
                                                                const std::vector<std::string>& values);
  static bool ParseOp(std::string_view text, CompareOp* op);
};

// fnmatch-style glob: '*' any run (slashes included), '?' one character,
// '[abc]', '[a-z]', '[!a]' a class. Exposed for tests.
bool GlobMatch(std::string_view pattern, std::string_view text);

}  // namespace kelpie::detect
