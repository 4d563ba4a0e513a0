#include "control/detect/condition_parser.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace kelpie::detect {
namespace {

enum class TokenKind { kWord, kString, kSymbol, kLParen, kRParen, kComma, kEnd };

struct Token {
  TokenKind kind = TokenKind::kEnd;
  std::string text;
  size_t offset = 0;
};

constexpr std::string_view kWordOperators[] = {"in",        "intersects", "pmatch",
                                                "contains",  "icontains",  "startswith",
                                                "endswith",  "glob",       "exists"};

bool IsSymbolChar(char c) { return c == '=' || c == '!' || c == '<' || c == '>'; }
bool IsWordChar(char c) {
  return !(c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '(' || c == ')' ||
           c == ',' || c == '"' || c == '\'' || IsSymbolChar(c));
}

class Parser {
 public:
  Parser(std::string_view text, const SourceMap& map) : text_(text), map_(map) {}

  absl::StatusOr<std::unique_ptr<ConditionExpr>> Run() {
    if (auto status = Tokenize(); !status.ok()) return status;
    if (tokens_.front().kind == TokenKind::kEnd) return Error(0, "empty condition");
    auto expr = ParseOr();
    if (!expr.ok()) return expr.status();
    const Token& next = Peek();
    if (next.kind != TokenKind::kEnd) {
      if (next.kind == TokenKind::kRParen) {
        return Error(next.offset, "unexpected ')' without a matching '('");
      }
      return Error(next.offset, absl::StrCat("expected 'and', 'or' or the end of the condition, found ",
                                             Describe(next)));
    }
    return expr;
  }

 private:
  absl::Status Error(size_t offset, absl::string_view message) const {
    return absl::InvalidArgumentError(absl::StrCat(map_.Describe(offset), ": ", message));
  }
  std::string Where(size_t offset) const {
    SourceLocation location = map_.Locate(offset);
    return absl::StrCat(location.line, ":", location.column);
  }
  static std::string Describe(const Token& token) {
    if (token.kind == TokenKind::kEnd) return "the end of the condition";
    if (token.kind == TokenKind::kString) return absl::StrCat("string \"", token.text, "\"");
    return absl::StrCat("'", token.text, "'");
  }

  absl::Status Tokenize() {
    size_t i = 0;
    while (i < text_.size()) {
      char c = text_[i];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        ++i;
        continue;
      }
      Token token;
      token.offset = i;
      if (c == '(' || c == ')' || c == ',') {
        token.kind = c == '(' ? TokenKind::kLParen : c == ')' ? TokenKind::kRParen : TokenKind::kComma;
        token.text = c == '(' ? "(" : c == ')' ? ")" : ",";
        ++i;
      } else if (c == '"' || c == '\'') {
        token.kind = TokenKind::kString;
        size_t j = i + 1;
        bool closed = false;
        while (j < text_.size()) {
          if (text_[j] == '\\' && j + 1 < text_.size()) {
            token.text.push_back(text_[j + 1]);
            j += 2;
            continue;
          }
          if (text_[j] == c) {
            closed = true;
            break;
          }
          token.text.push_back(text_[j++]);
        }
        if (!closed) return Error(i, c == '"' ? "unterminated string: expected '\"' to close it"
                            : "unterminated string: expected \"'\" to close it");
        i = j + 1;
      } else if (IsSymbolChar(c)) {
        token.kind = TokenKind::kSymbol;
        size_t j = i;
        while (j < text_.size() && IsSymbolChar(text_[j])) ++j;
        token.text = std::string(text_.substr(i, j - i));
        if (token.text != "=" && token.text != "==" && token.text != "!=" && token.text != "<" &&
            token.text != "<=" && token.text != ">" && token.text != ">=") {
          return Error(i, absl::StrCat("unknown operator '", token.text, "'"));
        }
        if (token.text == "==") token.text = "=";
        i = j;
      } else {
        token.kind = TokenKind::kWord;
        size_t j = i;
        int bracket_depth = 0;
        // A field argument may hold characters that end a word elsewhere
        // (k8s.pod.label[app.kubernetes.io/name]).
        while (j < text_.size() && (IsWordChar(text_[j]) || bracket_depth > 0)) {
          if (text_[j] == '[') ++bracket_depth;
          if (text_[j] == ']' && bracket_depth > 0) --bracket_depth;
          ++j;
        }
        token.text = std::string(text_.substr(i, j - i));
        i = j;
      }
      tokens_.push_back(std::move(token));
    }
    Token end;
    end.offset = text_.size();
    tokens_.push_back(end);
    return absl::OkStatus();
  }

  const Token& Peek() const { return tokens_[pos_]; }
  const Token& Next() { return tokens_[pos_ < tokens_.size() - 1 ? pos_++ : pos_]; }
  bool PeekWord(std::string_view word) const {
    return Peek().kind == TokenKind::kWord && Peek().text == word;
  }

  absl::StatusOr<std::unique_ptr<ConditionExpr>> ParseOr() {
    return ParseBinary("or", ConditionExpr::Kind::kOr, &Parser::ParseAnd);
  }
  absl::StatusOr<std::unique_ptr<ConditionExpr>> ParseAnd() {
    return ParseBinary("and", ConditionExpr::Kind::kAnd, &Parser::ParseNot);
  }
  absl::StatusOr<std::unique_ptr<ConditionExpr>> ParseBinary(
      std::string_view word, ConditionExpr::Kind kind,
      absl::StatusOr<std::unique_ptr<ConditionExpr>> (Parser::*operand)()) {
    auto first = (this->*operand)();
    if (!first.ok() || !PeekWord(word)) return first;
    auto node = std::make_unique<ConditionExpr>();
    node->kind = kind;
    node->offset = (*first)->offset;
    node->children.push_back(std::move(*first));
    while (PeekWord(word)) {
      Next();
      auto next = (this->*operand)();
      if (!next.ok()) return next.status();
      node->children.push_back(std::move(*next));
    }
    return node;
  }

  absl::StatusOr<std::unique_ptr<ConditionExpr>> ParseNot() {
    if (PeekWord("not")) {
      size_t offset = Next().offset;
      auto operand = ParseNot();
      if (!operand.ok()) return operand.status();
      auto node = std::make_unique<ConditionExpr>();
      node->kind = ConditionExpr::Kind::kNot;
      node->offset = offset;
      node->children.push_back(std::move(*operand));
      return node;
    }
    return ParsePrimary();
  }

  absl::StatusOr<std::unique_ptr<ConditionExpr>> ParsePrimary() {
    const Token& token = Next();
    if (token.kind == TokenKind::kLParen) {
      size_t open = token.offset;
      auto inner = ParseOr();
      if (!inner.ok()) return inner.status();
      const Token& close = Peek();
      if (close.kind != TokenKind::kRParen) {
        return Error(close.offset, absl::StrCat("expected ')' to close '(' opened at ", Where(open),
                                                ", found ", Describe(close)));
      }
      Next();
      return inner;
    }
    if (token.kind != TokenKind::kWord || token.text == "and" || token.text == "or") {
      return Error(token.offset, absl::StrCat("expected a field comparison, a macro, 'not' or '(', found ",
                                              Describe(token)));
    }
    const Token& op = Peek();
    bool is_operator = op.kind == TokenKind::kSymbol ||
                       (op.kind == TokenKind::kWord && ConditionParser::IsOperator(op.text));
    auto node = std::make_unique<ConditionExpr>();
    node->offset = token.offset;
    node->name = token.text;
    if (!is_operator) {
      if (token.text.find('.') != std::string::npos) {
        return Error(op.offset, absl::StrCat("expected a comparison operator after field '",
                                             token.text, "', found ", Describe(op)));
      }
      node->kind = ConditionExpr::Kind::kMacro;
      return node;
    }
    Next();
    node->kind = ConditionExpr::Kind::kCompare;
    node->op = op.text;
    node->op_offset = op.offset;
    if (node->op == "exists") return node;
    // startswith also takes a list: any of several prefixes.
    if (ConditionParser::IsListOperator(node->op) ||
        (node->op == "startswith" && Peek().kind == TokenKind::kLParen)) {
      node->value_list = true;
      const Token& open = Peek();
      if (open.kind == TokenKind::kWord) {  // a list name without parentheses
        node->values.push_back(ConditionValue{open.text, open.offset, false});
        Next();
        return node;
      }
      if (open.kind != TokenKind::kLParen) {
        return Error(open.offset, absl::StrCat("expected '(' with a list of values after '",
                                               node->op, "', found ", Describe(open)));
      }
      Next();
      if (Peek().kind == TokenKind::kRParen) {
        Next();
        return node;
      }
      while (true) {
        const Token& value = Peek();
        if (value.kind != TokenKind::kWord && value.kind != TokenKind::kString) {
          return Error(value.offset, absl::StrCat("expected a value in the list after '", node->op,
                                                  "', found ", Describe(value)));
        }
        node->values.push_back(
            ConditionValue{value.text, value.offset, value.kind == TokenKind::kString});
        Next();
        const Token& separator = Peek();
        if (separator.kind == TokenKind::kComma) {
          Next();
          continue;
        }
        if (separator.kind == TokenKind::kRParen) {
          Next();
          return node;
        }
        return Error(separator.offset, absl::StrCat("expected ',' or ')' to close '(' opened at ",
                                                    Where(open.offset), ", found ",
                                                    Describe(separator)));
      }
    }
    const Token& value = Peek();
    if (value.kind != TokenKind::kWord && value.kind != TokenKind::kString) {
      return Error(value.offset, absl::StrCat("expected a value after '", node->op, "', found ",
                                              Describe(value)));
    }
    node->values.push_back(ConditionValue{value.text, value.offset, value.kind == TokenKind::kString});
    Next();
    return node;
  }

  std::string_view text_;
  const SourceMap& map_;
  std::vector<Token> tokens_;
  size_t pos_ = 0;
};

}  // namespace

bool ConditionParser::IsListOperator(std::string_view op) {
  return op == "in" || op == "intersects" || op == "pmatch";
}

bool ConditionParser::IsOperator(std::string_view op) {
  for (std::string_view known : kWordOperators) {
    if (known == op) return true;
  }
  return false;
}

absl::StatusOr<std::unique_ptr<ConditionExpr>> ConditionParser::Parse(std::string_view text,
                                                                      const SourceMap& map) {
  return Parser(text, map).Run();
}

}  // namespace kelpie::detect
