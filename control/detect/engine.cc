#include "control/detect/engine.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "control/detect/condition_node.h"
#include "control/detect/condition_parser.h"
#include "control/detect/output_template.h"

namespace kelpie::detect {
namespace {

using NodePtr = std::unique_ptr<ConditionNode>;
constexpr int kMaxListDepth = 16;

class Compiler {
 public:
  explicit Compiler(const RuleSet& rules) : rules_(rules) {}

  absl::StatusOr<NodePtr> CompileCondition(const std::string& text, const SourceMap& map) {
    KELPIE_ASSIGN_OR_RETURN(std::unique_ptr<ConditionExpr> expr, ConditionParser::Parse(text, map));
    return Compile(*expr, map);
  }

  absl::StatusOr<NodePtr> CompileExceptions(const RuleSpec& rule) {
    std::vector<NodePtr> alternatives;
    for (const ExceptionSpec& exception : rule.exceptions) {
      std::string where = absl::StrCat(exception.location.ToString(), ": rule '", rule.name,
                                       "' exception '", exception.name, "'");
      std::vector<FieldAccessor> fields;
      std::vector<CompareOp> ops;
      for (size_t i = 0; i < exception.fields.size(); ++i) {
        auto field = FieldRegistry::Resolve(exception.fields[i]);
        if (!field.ok()) return absl::InvalidArgumentError(absl::StrCat(where, ": ", field.status().message()));
        CompareOp op;
        if (!ConditionNodes::ParseOp(exception.comps[i], &op)) {
          return absl::InvalidArgumentError(
              absl::StrCat(where, ": unknown comparison operator '", exception.comps[i], "'"));
        }
        fields.push_back(std::move(*field));
        ops.push_back(op);
      }
      for (const std::vector<ExceptionValue>& tuple : exception.values) {
        std::vector<NodePtr> terms;
        for (size_t i = 0; i < tuple.size(); ++i) {
          std::vector<std::string> values;
          const ExceptionValue& value = tuple[i];
          bool list_op = ops[i] == CompareOp::kIn || ops[i] == CompareOp::kIntersects ||
                         ops[i] == CompareOp::kPmatch;
          if (value.is_sequence) {
            for (const std::string& item : value.items) {
              KELPIE_RETURN_IF_ERROR(ExpandListItem(item, &values, 0));
            }
          } else if (list_op) {
            KELPIE_RETURN_IF_ERROR(ExpandListItem(value.text, &values, 0));
          } else {
            values.push_back(value.text);
          }
          auto node = ConditionNodes::Compare(fields[i], ops[i], values);
          if (!node.ok()) {
            return absl::InvalidArgumentError(absl::StrCat(where, " field '", fields[i].name, "': ",
                                                           node.status().message()));
          }
          terms.push_back(std::move(*node));
        }
        if (!terms.empty()) alternatives.push_back(ConditionNodes::And(std::move(terms)));
      }
    }
    if (alternatives.empty()) return NodePtr();
    return ConditionNodes::Or(std::move(alternatives));
  }

 private:
  static absl::Status ErrorAt(const SourceMap& map, size_t offset, absl::string_view message) {
    return absl::InvalidArgumentError(absl::StrCat(map.Describe(offset), ": ", message));
  }

  // Lists may name other lists; items that are list names expand in place.
  absl::Status ExpandListItem(const std::string& item, std::vector<std::string>* out, int depth) {
    const ListSpec* list = rules_.FindList(item);
    if (list == nullptr) {
      out->push_back(item);
      return absl::OkStatus();
    }
    if (depth >= kMaxListDepth) {
      return absl::InvalidArgumentError(absl::StrCat(list->location.ToString(), ": list '", item,
                                                     "' nests lists too deeply (a cycle?)"));
    }
    for (const std::string& nested : list->items) {
      KELPIE_RETURN_IF_ERROR(ExpandListItem(nested, out, depth + 1));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<NodePtr> Compile(const ConditionExpr& expr, const SourceMap& map) {
    switch (expr.kind) {
      case ConditionExpr::Kind::kAnd:
      case ConditionExpr::Kind::kOr: {
        std::vector<NodePtr> children;
        for (const auto& child : expr.children) {
          KELPIE_ASSIGN_OR_RETURN(NodePtr node, Compile(*child, map));
          children.push_back(std::move(node));
        }
        return expr.kind == ConditionExpr::Kind::kAnd ? ConditionNodes::And(std::move(children))
                                                      : ConditionNodes::Or(std::move(children));
      }
      case ConditionExpr::Kind::kNot: {
        KELPIE_ASSIGN_OR_RETURN(NodePtr child, Compile(*expr.children.front(), map));
        return ConditionNodes::Not(std::move(child));
      }
      case ConditionExpr::Kind::kMacro:
        return CompileMacro(expr, map);
      case ConditionExpr::Kind::kCompare:
        return CompileCompare(expr, map);
    }
    return absl::InternalError("unknown condition node");
  }

  absl::StatusOr<NodePtr> CompileMacro(const ConditionExpr& expr, const SourceMap& map) {
    const MacroSpec* macro = rules_.FindMacro(expr.name);
    if (macro == nullptr) {
      if (rules_.FindList(expr.name) != nullptr) {
        return ErrorAt(map, expr.offset, absl::StrCat("'", expr.name,
                                                      "' is a list, not a macro; use it as 'field in (",
                                                      expr.name, ")'"));
      }
      return ErrorAt(map, expr.offset, absl::StrCat("undefined macro '", expr.name, "'"));
    }
    if (std::find(macro_stack_.begin(), macro_stack_.end(), expr.name) != macro_stack_.end()) {
      return ErrorAt(map, expr.offset, absl::StrCat("macro '", expr.name, "' refers to itself through ",
                                                    absl::StrJoin(macro_stack_, " -> ")));
    }
    macro_stack_.push_back(expr.name);
    auto node = CompileCondition(macro->condition, macro->condition_map);
    macro_stack_.pop_back();
    return node;
  }

  absl::StatusOr<NodePtr> CompileCompare(const ConditionExpr& expr, const SourceMap& map) {
    CompareOp op;
    if (!ConditionNodes::ParseOp(expr.op, &op)) {
      return ErrorAt(map, expr.op_offset, absl::StrCat("unknown operator '", expr.op, "'"));
    }
    std::vector<std::string> values;
    for (const ConditionValue& value : expr.values) {
      if (expr.value_list && !value.quoted) {
        KELPIE_RETURN_IF_ERROR(ExpandListItem(value.text, &values, 0));
      } else {
        values.push_back(value.text);
      }
    }
    size_t value_offset = expr.values.empty() ? expr.op_offset : expr.values.front().offset;
    if (expr.name == "evt.type" && (op == CompareOp::kEq || op == CompareOp::kNe || op == CompareOp::kIn)) {
      EventTypeSet types;
      for (size_t i = 0; i < values.size(); ++i) {
        EventType type;
        if (!FieldRegistry::EventTypeByName(values[i], &type)) {
          size_t offset = i < expr.values.size() ? expr.values[i].offset : value_offset;
          return ErrorAt(map, offset, absl::StrCat("unknown event type '", values[i], "'"));
        }
        types.set(static_cast<size_t>(type));
      }
      NodePtr node = ConditionNodes::TypeIn(types);
      if (op == CompareOp::kNe) return ConditionNodes::Not(std::move(node));
      return node;
    }
    auto field = FieldRegistry::Resolve(expr.name);
    if (!field.ok()) return ErrorAt(map, expr.offset, field.status().message());
    auto node = ConditionNodes::Compare(std::move(*field), op, values);
    if (!node.ok()) {
      return ErrorAt(map, value_offset, absl::StrCat("'", expr.name, " ", expr.op, "': ",
                                                     node.status().message()));
    }
    return std::move(*node);
  }

  const RuleSet& rules_;
  std::vector<std::string> macro_stack_;
};

}  // namespace

CompiledRule::CompiledRule(const RuleSpec& spec, std::unique_ptr<ConditionNode> condition,
                           std::unique_ptr<OutputTemplate> output)
    : name_(spec.name),
      desc_(spec.desc),
      priority_(spec.priority),
      action_(spec.action),
      tags_(spec.tags),
      condition_(std::move(condition)),
      output_(std::move(output)) {}

CompiledRule::~CompiledRule() = default;

bool CompiledRule::Matches(const Event& event) const { return condition_->Evaluate(event); }

std::string CompiledRule::RenderOutput(const Event& event) const { return output_->Render(event); }

Engine::~Engine() = default;

absl::StatusOr<std::unique_ptr<Engine>> Engine::Compile(const RuleSet& rules,
                                                        const EngineOptions& options) {
  std::unique_ptr<Engine> engine(new Engine());
  Compiler compiler(rules);
  // Every macro is compiled once even when no rule uses it, so mistakes in a
  // shared macro surface when the file is loaded rather than when a rule
  // starts to use it.
  for (const MacroSpec& macro : rules.macros()) {
    KELPIE_RETURN_IF_ERROR(compiler.CompileCondition(macro.condition, macro.condition_map).status());
  }
  for (const RuleSpec& spec : rules.rules()) {
    if (!spec.enabled || spec.priority > options.minimum_priority) continue;
    KELPIE_ASSIGN_OR_RETURN(NodePtr condition, compiler.CompileCondition(spec.condition, spec.condition_map));
    KELPIE_ASSIGN_OR_RETURN(NodePtr exceptions, compiler.CompileExceptions(spec));
    if (exceptions != nullptr) {
      std::vector<NodePtr> both;
      both.push_back(std::move(condition));
      both.push_back(ConditionNodes::Not(std::move(exceptions)));
      condition = ConditionNodes::And(std::move(both));
    }
    auto output = OutputTemplate::Parse(spec.output);
    if (!output.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(spec.location.ToString(), ": rule '", spec.name,
                                                     "' ", output.status().message()));
    }
    engine->rules_.push_back(std::make_unique<CompiledRule>(
        spec, std::move(condition), std::make_unique<OutputTemplate>(std::move(*output))));
  }
  for (const auto& rule : engine->rules_) {
    EventTypeSet types = rule->condition().PossibleTypes();
    for (size_t t = 0; t < kEventTypeCount; ++t) {
      if (types.test(t)) engine->by_type_[t].push_back(rule.get());
    }
  }
  return engine;
}

size_t Engine::Evaluate(const Event& event,
                        absl::FunctionRef<void(const CompiledRule&)> on_match) const {
  size_t type = static_cast<size_t>(event.type);
  if (type >= kEventTypeCount) return 0;
  size_t matches = 0;
  for (const CompiledRule* rule : by_type_[type]) {
    if (rule->Matches(event)) {
      ++matches;
      on_match(*rule);
    }
  }
  return matches;
}

PrefilterSpec Engine::DerivePrefilter() const {
  PrefilterSpec spec;
  std::array<bool, kEventTypeCount> unconstrained{};
  for (const auto& rule : rules_) {
    EventTypeSet types = rule->condition().PossibleTypes();
    auto prefixes = rule->condition().RequiredPathPrefixes();
    for (size_t t = 0; t < kEventTypeCount; ++t) {
      if (!types.test(t)) continue;
      spec.types[t].wanted = true;
      if (!prefixes) {
        unconstrained[t] = true;
      } else {
        spec.types[t].path_prefixes.insert(spec.types[t].path_prefixes.end(), prefixes->begin(),
                                           prefixes->end());
      }
    }
  }
  for (size_t t = 0; t < kEventTypeCount; ++t) {
    std::vector<std::string>& prefixes = spec.types[t].path_prefixes;
    if (unconstrained[t]) {
      prefixes.clear();
      continue;
    }
    std::sort(prefixes.begin(), prefixes.end());
    std::vector<std::string> minimal;
    for (std::string& prefix : prefixes) {
      if (!minimal.empty() && prefix.starts_with(minimal.back())) continue;
      minimal.push_back(std::move(prefix));
    }
    prefixes = std::move(minimal);
  }
  return spec;
}

}  // namespace kelpie::detect
