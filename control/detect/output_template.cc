#include "control/detect/output_template.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace kelpie::detect {

absl::StatusOr<OutputTemplate> OutputTemplate::Parse(std::string_view text) {
  OutputTemplate result;
  std::string literal;
  size_t i = 0;
  while (i < text.size()) {
    char c = text[i];
    if (c != '%') {
      literal.push_back(c);
      ++i;
      continue;
    }
    if (i + 1 < text.size() && text[i + 1] == '%') {
      literal.push_back('%');
      i += 2;
      continue;
    }
    size_t j = i + 1;
    while (j < text.size() &&
           (absl::ascii_isalnum(text[j]) || text[j] == '.' || text[j] == '_')) {
      ++j;
    }
    if (j < text.size() && text[j] == '[') {
      size_t close = text.find(']', j);
      if (close == std::string_view::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat("output: '[' without ']' after %", std::string(text.substr(i + 1, j - i - 1))));
      }
      j = close + 1;
    }
    std::string_view name = text.substr(i + 1, j - i - 1);
    // A trailing dot is punctuation of the sentence, not part of the field.
    while (!name.empty() && name.back() == '.') {
      name.remove_suffix(1);
      --j;
    }
    if (name.empty()) {
      literal.push_back('%');
      ++i;
      continue;
    }
    auto field = FieldRegistry::Resolve(name);
    if (!field.ok()) return absl::InvalidArgumentError(absl::StrCat("output: ", field.status().message()));
    if (!literal.empty()) result.parts_.push_back(Part{std::move(literal), false, {}});
    literal.clear();
    result.parts_.push_back(Part{{}, true, std::move(*field)});
    i = j;
  }
  if (!literal.empty()) result.parts_.push_back(Part{std::move(literal), false, {}});
  return result;
}

std::string OutputTemplate::Render(const Event& event) const {
  std::string out;
  for (const Part& part : parts_) {
    if (!part.is_field) {
      out += part.literal;
      continue;
    }
    FieldValue value;
    bool any = false;
    for (size_t i = 0; part.field.Get(event, i, &value); ++i) {
      if (i > 0) out += ',';
      any = true;
      if (part.field.kind == FieldKind::kString) {
        out.append(value.str.data(), value.str.size());
      } else if (part.field.kind == FieldKind::kBool) {
        out += value.num != 0 ? "true" : "false";
      } else {
        absl::StrAppend(&out, value.num);
      }
    }
    if (!any) out += "<NA>";
  }
  return out;
}

}  // namespace kelpie::detect
