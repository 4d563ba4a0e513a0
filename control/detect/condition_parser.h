// Parser of the condition language into a syntax tree that keeps the offset
// of every token, so later stages (macro, list and field resolution) can point
// at the exact place in the rule file.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "control/detect/source_map.h"

namespace kelpie::detect {

struct ConditionValue {
  std::string text;
  size_t offset = 0;
  bool quoted = false;  // quoted values are never list names
};

struct ConditionExpr {
  enum class Kind { kAnd, kOr, kNot, kCompare, kMacro };
  Kind kind = Kind::kCompare;
  size_t offset = 0;
  std::vector<std::unique_ptr<ConditionExpr>> children;  // and/or/not
  std::string name;      // field (compare) or macro name
  std::string op;        // =, !=, <, <=, >, >=, in, intersects, pmatch, contains, ...
  size_t op_offset = 0;
  std::vector<ConditionValue> values;
  bool value_list = false;  // written as ( a, b ) or as a bare list name
};

class ConditionParser {
 public:
  // Errors read "file:line:col: expected ..." using `map`.
  static absl::StatusOr<std::unique_ptr<ConditionExpr>> Parse(std::string_view text,
                                                              const SourceMap& map);
  static bool IsListOperator(std::string_view op);
  static bool IsOperator(std::string_view op);
};

}  // namespace kelpie::detect
