#include "control/detect/condition_node.h"

#include <algorithm>
#include <charconv>
#include <functional>
#include <unordered_set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace kelpie::detect {
namespace {

using NodePtr = std::unique_ptr<ConditionNode>;

class AndNode : public ConditionNode {
 public:
  explicit AndNode(std::vector<NodePtr> children) : children_(std::move(children)) {}
  bool Evaluate(const Event& event) const override {
    for (const NodePtr& child : children_) {
      if (!child->Evaluate(event)) return false;
    }
    return true;
  }
  EventTypeSet PossibleTypes() const override {
    EventTypeSet types = EventTypeSet().set();
    for (const NodePtr& child : children_) types &= child->PossibleTypes();
    return types;
  }
  std::optional<std::vector<std::string>> RequiredPathPrefixes() const override {
    // Every child must hold, so any constrained child constrains the whole;
    // the narrowest (fewest prefixes) keeps the kernel filter tightest.
    std::optional<std::vector<std::string>> best;
    for (const NodePtr& child : children_) {
      auto prefixes = child->RequiredPathPrefixes();
      if (prefixes && (!best || prefixes->size() < best->size())) best = std::move(prefixes);
    }
    return best;
  }

 private:
  std::vector<NodePtr> children_;
};

class OrNode : public ConditionNode {
 public:
  explicit OrNode(std::vector<NodePtr> children) : children_(std::move(children)) {}
  bool Evaluate(const Event& event) const override {
    for (const NodePtr& child : children_) {
      if (child->Evaluate(event)) return true;
    }
    return false;
  }
  EventTypeSet PossibleTypes() const override {
    EventTypeSet types;
    for (const NodePtr& child : children_) types |= child->PossibleTypes();
    return types;
  }
  std::optional<std::vector<std::string>> RequiredPathPrefixes() const override {
    std::vector<std::string> all;
    for (const NodePtr& child : children_) {
      auto prefixes = child->RequiredPathPrefixes();
      if (!prefixes) return std::nullopt;
      all.insert(all.end(), prefixes->begin(), prefixes->end());
    }
    return all;
  }

 private:
  std::vector<NodePtr> children_;
};

class TypeNode : public ConditionNode {
 public:
  explicit TypeNode(EventTypeSet types) : types_(types) {}
  bool Evaluate(const Event& event) const override {
    return types_.test(static_cast<size_t>(event.type));
  }
  EventTypeSet PossibleTypes() const override { return types_; }
  EventTypeSet types() const { return types_; }

 private:
  EventTypeSet types_;
};

class NotNode : public ConditionNode {
 public:
  explicit NotNode(NodePtr child) : child_(std::move(child)) {}
  bool Evaluate(const Event& event) const override { return !child_->Evaluate(event); }
  EventTypeSet PossibleTypes() const override {
    if (const auto* type = dynamic_cast<const TypeNode*>(child_.get())) return ~type->types();
    return EventTypeSet().set();
  }

 private:
  NodePtr child_;
};

// A comparison: true when any value of the field satisfies the predicate
// (fields have one value except multi-valued ones such as proc.aname).
template <typename Predicate>
class CompareNode : public ConditionNode {
 public:
  CompareNode(FieldAccessor field, Predicate predicate, std::optional<std::vector<std::string>> prefixes)
      : field_(std::move(field)), predicate_(std::move(predicate)), prefixes_(std::move(prefixes)) {}
  bool Evaluate(const Event& event) const override {
    FieldValue value;
    for (size_t i = 0; field_.Get(event, i, &value); ++i) {
      if (predicate_(value)) return true;
    }
    return false;
  }
  std::optional<std::vector<std::string>> RequiredPathPrefixes() const override { return prefixes_; }

 private:
  FieldAccessor field_;
  Predicate predicate_;
  std::optional<std::vector<std::string>> prefixes_;
};

// `!=`: the field is present and no value equals.
template <typename Predicate>
class NoneEqualNode : public ConditionNode {
 public:
  NoneEqualNode(FieldAccessor field, Predicate predicate)
      : field_(std::move(field)), predicate_(std::move(predicate)) {}
  bool Evaluate(const Event& event) const override {
    FieldValue value;
    size_t i = 0;
    for (; field_.Get(event, i, &value); ++i) {
      if (predicate_(value)) return false;
    }
    return i > 0;
  }

 private:
  FieldAccessor field_;
  Predicate predicate_;
};

template <typename Predicate>
NodePtr MakeCompare(FieldAccessor field, Predicate predicate,
                    std::optional<std::vector<std::string>> prefixes = std::nullopt) {
  return std::make_unique<CompareNode<Predicate>>(std::move(field), std::move(predicate),
                                                  std::move(prefixes));
}

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
};
using StringSet = std::unordered_set<std::string, StringHash, std::equal_to<>>;

// Prefixes sorted so a lookup is one binary search: the only candidate is the
// greatest prefix not greater than the text (redundant longer prefixes are
// removed, so no shorter match can hide before it).
class PrefixList {
 public:
  explicit PrefixList(std::vector<std::string> prefixes) {
    std::sort(prefixes.begin(), prefixes.end());
    for (std::string& prefix : prefixes) {
      if (!prefixes_.empty() && prefix.starts_with(prefixes_.back())) continue;
      prefixes_.push_back(std::move(prefix));
    }
  }
  bool MatchesPrefix(std::string_view text) const {
    auto it = std::upper_bound(prefixes_.begin(), prefixes_.end(), text,
                               [](std::string_view t, const std::string& p) { return t < p; });
    if (it == prefixes_.begin()) return false;
    return text.starts_with(*std::prev(it));
  }
 private:
  std::vector<std::string> prefixes_;
};

// Falco's pmatch: the text is one of the paths or lies below one of them.
// Checks the text and each of its parent directories in a hash set, so the
// cost follows the path depth, not the list length.
class PathSet {
 public:
  explicit PathSet(const std::vector<std::string>& paths) {
    for (std::string path : paths) {
      while (path.size() > 1 && path.back() == '/') path.pop_back();
      paths_.insert(std::move(path));
    }
  }
  bool Contains(std::string_view text) const {
    while (!text.empty()) {
      if (paths_.find(text) != paths_.end()) return true;
      size_t slash = text.rfind('/');
      if (slash == std::string_view::npos) return false;
      if (slash == 0) return paths_.find(std::string_view("/")) != paths_.end();
      text = text.substr(0, slash);
    }
    return false;
  }

 private:
  StringSet paths_;
};

bool ContainsIgnoringCase(std::string_view haystack, std::string_view lower_needle) {
  if (lower_needle.empty()) return true;
  if (haystack.size() < lower_needle.size()) return false;
  for (size_t i = 0; i + lower_needle.size() <= haystack.size(); ++i) {
    size_t j = 0;
    while (j < lower_needle.size() && absl::ascii_tolower(haystack[i + j]) == lower_needle[j]) ++j;
    if (j == lower_needle.size()) return true;
  }
  return false;
}

absl::StatusOr<int64_t> ParseInteger(const std::string& text) {
  int64_t value = 0;
  if (FieldRegistry::SymbolValue(text, &value)) return value;
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  int base = 10;
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    begin += 2;
    base = 16;
  }
  auto [ptr, ec] = std::from_chars(begin, end, value, base);
  if (ec != std::errc() || ptr != end || begin == end) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not a number or a known constant"));
  }
  return value;
}

absl::StatusOr<int64_t> ParseBool(const std::string& text) {
  if (text == "true") return 1;
  if (text == "false") return 0;
  return absl::InvalidArgumentError(absl::StrCat("expected true or false, found '", text, "'"));
}

bool IsPathField(const FieldAccessor& field) {
  return field.name == "fd.name" || field.name == "fd.directory";
}

std::string GlobLiteralPrefix(const std::string& pattern) {
  size_t stop = pattern.find_first_of("*?[");
  return pattern.substr(0, stop);
}

absl::StatusOr<NodePtr> CompareString(FieldAccessor field, CompareOp op,
                                      const std::vector<std::string>& values) {
  auto single = [&]() -> const std::string& { return values.front(); };
  bool path = IsPathField(field);
  switch (op) {
    case CompareOp::kEq: {
      std::optional<std::vector<std::string>> prefixes;
      if (path) prefixes = std::vector<std::string>{single()};
      return MakeCompare(std::move(field), [v = single()](const FieldValue& x) { return x.str == v; },
                         std::move(prefixes));
    }
    case CompareOp::kNe: {
      auto eq = [v = single()](const FieldValue& x) { return x.str == v; };
      return NodePtr(std::make_unique<NoneEqualNode<decltype(eq)>>(std::move(field), std::move(eq)));
    }
    case CompareOp::kLt:
      return MakeCompare(std::move(field), [v = single()](const FieldValue& x) { return x.str < v; });
    case CompareOp::kLe:
      return MakeCompare(std::move(field), [v = single()](const FieldValue& x) { return x.str <= v; });
    case CompareOp::kGt:
      return MakeCompare(std::move(field), [v = single()](const FieldValue& x) { return x.str > v; });
    case CompareOp::kGe:
      return MakeCompare(std::move(field), [v = single()](const FieldValue& x) { return x.str >= v; });
    case CompareOp::kIn:
    case CompareOp::kIntersects: {
      std::optional<std::vector<std::string>> prefixes;
      if (path) prefixes = values;
      StringSet set(values.begin(), values.end());
      return MakeCompare(std::move(field),
                         [set = std::move(set)](const FieldValue& x) { return set.find(x.str) != set.end(); },
                         std::move(prefixes));
    }
    case CompareOp::kPmatch: {
      std::optional<std::vector<std::string>> prefixes;
      if (path) prefixes = values;
      return MakeCompare(std::move(field),
                         [set = PathSet(values)](const FieldValue& x) { return set.Contains(x.str); },
                         std::move(prefixes));
    }
    case CompareOp::kContains:
      return MakeCompare(std::move(field), [v = single()](const FieldValue& x) {
        return x.str.find(v) != std::string_view::npos;
      });
    case CompareOp::kIContains:
      return MakeCompare(std::move(field), [v = absl::AsciiStrToLower(single())](const FieldValue& x) {
        return ContainsIgnoringCase(x.str, v);
      });
    case CompareOp::kStartsWith: {
      std::optional<std::vector<std::string>> prefixes;
      if (path) prefixes = values;
      if (values.size() > 1) {
        return MakeCompare(std::move(field),
                           [list = PrefixList(values)](const FieldValue& x) { return list.MatchesPrefix(x.str); },
                           std::move(prefixes));
      }
      return MakeCompare(std::move(field), [v = single()](const FieldValue& x) { return x.str.starts_with(v); },
                         std::move(prefixes));
    }
    case CompareOp::kEndsWith:
      return MakeCompare(std::move(field), [v = single()](const FieldValue& x) { return x.str.ends_with(v); });
    case CompareOp::kGlob: {
      std::optional<std::vector<std::string>> prefixes;
      if (path && !GlobLiteralPrefix(single()).empty()) {
        prefixes = std::vector<std::string>{GlobLiteralPrefix(single())};
      }
      return MakeCompare(std::move(field), [v = single()](const FieldValue& x) { return GlobMatch(v, x.str); },
                         std::move(prefixes));
    }
    case CompareOp::kExists:
      return MakeCompare(std::move(field), [](const FieldValue&) { return true; });
  }
  return absl::InternalError("unhandled operator");
}

absl::StatusOr<NodePtr> CompareNumber(FieldAccessor field, CompareOp op,
                                      const std::vector<std::string>& texts) {
  std::vector<int64_t> values;
  for (const std::string& text : texts) {
    auto value = field.kind == FieldKind::kBool ? ParseBool(text) : ParseInteger(text);
    if (!value.ok()) return value.status();
    values.push_back(*value);
  }
  int64_t v = values.empty() ? 0 : values.front();
  switch (op) {
    case CompareOp::kEq:
      return MakeCompare(std::move(field), [v](const FieldValue& x) { return x.num == v; });
    case CompareOp::kNe: {
      auto eq = [v](const FieldValue& x) { return x.num == v; };
      return NodePtr(std::make_unique<NoneEqualNode<decltype(eq)>>(std::move(field), std::move(eq)));
    }
    case CompareOp::kLt:
      return MakeCompare(std::move(field), [v](const FieldValue& x) { return x.num < v; });
    case CompareOp::kLe:
      return MakeCompare(std::move(field), [v](const FieldValue& x) { return x.num <= v; });
    case CompareOp::kGt:
      return MakeCompare(std::move(field), [v](const FieldValue& x) { return x.num > v; });
    case CompareOp::kGe:
      return MakeCompare(std::move(field), [v](const FieldValue& x) { return x.num >= v; });
    case CompareOp::kIn:
    case CompareOp::kIntersects: {
      std::sort(values.begin(), values.end());
      return MakeCompare(std::move(field), [values = std::move(values)](const FieldValue& x) {
        return std::binary_search(values.begin(), values.end(), x.num);
      });
    }
    case CompareOp::kContains:
      // On integer fields `contains` tests bits: evt.arg.flags contains O_TRUNC.
      return MakeCompare(std::move(field), [v](const FieldValue& x) { return (x.num & v) == v; });
    case CompareOp::kExists:
      return MakeCompare(std::move(field), [](const FieldValue&) { return true; });
    default:
      return absl::InvalidArgumentError("operator not supported on a numeric field");
  }
}

}  // namespace

bool ConditionNodes::ParseOp(std::string_view text, CompareOp* op) {
  static const std::pair<std::string_view, CompareOp> kOps[] = {
      {"=", CompareOp::kEq},          {"!=", CompareOp::kNe},
      {"<", CompareOp::kLt},          {"<=", CompareOp::kLe},
      {">", CompareOp::kGt},          {">=", CompareOp::kGe},
      {"in", CompareOp::kIn},         {"intersects", CompareOp::kIntersects},
      {"pmatch", CompareOp::kPmatch}, {"contains", CompareOp::kContains},
      {"icontains", CompareOp::kIContains}, {"startswith", CompareOp::kStartsWith},
      {"endswith", CompareOp::kEndsWith},   {"glob", CompareOp::kGlob},
      {"exists", CompareOp::kExists},
  };
  for (const auto& [name, value] : kOps) {
    if (name == text) {
      *op = value;
      return true;
    }
  }
  return false;
}

NodePtr ConditionNodes::And(std::vector<NodePtr> children) {
  if (children.size() == 1) return std::move(children.front());
  return std::make_unique<AndNode>(std::move(children));
}
NodePtr ConditionNodes::Or(std::vector<NodePtr> children) {
  if (children.size() == 1) return std::move(children.front());
  return std::make_unique<OrNode>(std::move(children));
}
NodePtr ConditionNodes::Not(NodePtr child) { return std::make_unique<NotNode>(std::move(child)); }
NodePtr ConditionNodes::TypeIn(EventTypeSet types) { return std::make_unique<TypeNode>(types); }

absl::StatusOr<NodePtr> ConditionNodes::Compare(FieldAccessor field, CompareOp op,
                                                const std::vector<std::string>& values) {
  if (op != CompareOp::kExists && op != CompareOp::kIn && op != CompareOp::kIntersects &&
      op != CompareOp::kPmatch && !(op == CompareOp::kStartsWith && !values.empty()) &&
      values.size() != 1) {
    return absl::InvalidArgumentError("operator takes exactly one value");
  }
  if (field.kind == FieldKind::kString) return CompareString(std::move(field), op, values);
  return CompareNumber(std::move(field), op, values);
}

bool GlobMatch(std::string_view pattern, std::string_view text) {
  size_t p = 0, t = 0;
  size_t star_p = std::string_view::npos, star_t = 0;
  while (t < text.size()) {
    if (p < pattern.size()) {
      char c = pattern[p];
      if (c == '*') {
        star_p = p++;
        star_t = t;
        continue;
      }
      if (c == '?') {
        ++p;
        ++t;
        continue;
      }
      if (c == '[') {
        size_t q = p + 1;
        bool negate = q < pattern.size() && (pattern[q] == '!' || pattern[q] == '^');
        if (negate) ++q;
        bool matched = false;
        bool first = true;
        while (q < pattern.size() && (first || pattern[q] != ']')) {
          first = false;
          if (q + 2 < pattern.size() && pattern[q + 1] == '-' && pattern[q + 2] != ']') {
            if (pattern[q] <= text[t] && text[t] <= pattern[q + 2]) matched = true;
            q += 3;
          } else {
            if (pattern[q] == text[t]) matched = true;
            ++q;
          }
        }
        if (q < pattern.size() && matched != negate) {
          p = q + 1;
          ++t;
          continue;
        }
        if (q >= pattern.size() && text[t] == '[') {  // unclosed: a literal '['
          ++p;
          ++t;
          continue;
        }
      } else if (c == text[t]) {
        ++p;
        ++t;
        continue;
      }
    }
    if (star_p == std::string_view::npos) return false;
    p = star_p + 1;
    t = ++star_t;
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

}  // namespace kelpie::detect
