#include "control/detect/source_map.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace kelpie::detect {

std::string SourceLocation::ToString() const {
  return absl::StrCat(file, ":", line, ":", column);
}

void SourceMap::AddSegment(size_t offset, std::string file, int line, int column) {
  segments_.push_back(Segment{offset, std::move(file), line, column});
}

void SourceMap::Append(const SourceMap& other, size_t base) {
  for (const Segment& segment : other.segments_) {
    segments_.push_back(Segment{segment.offset + base, segment.file, segment.line, segment.column});
  }
}

SourceLocation SourceMap::Locate(size_t offset) const {
  if (segments_.empty()) return SourceLocation{"<condition>", 1, static_cast<int>(offset) + 1};
  auto it = std::upper_bound(segments_.begin(), segments_.end(), offset,
                             [](size_t value, const Segment& s) { return value < s.offset; });
  const Segment& segment = it == segments_.begin() ? *it : *std::prev(it);
  size_t delta = offset >= segment.offset ? offset - segment.offset : 0;
  return SourceLocation{segment.file, segment.line, segment.column + static_cast<int>(delta)};
}

namespace {

std::vector<std::string_view> SplitLines(std::string_view content) {
  std::vector<std::string_view> lines;
  size_t start = 0;
  while (start <= content.size()) {
    size_t end = content.find('\n', start);
    if (end == std::string_view::npos) {
      lines.push_back(content.substr(start));
      break;
    }
    lines.push_back(content.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

size_t Indent(std::string_view line) {
  size_t n = 0;
  while (n < line.size() && (line[n] == ' ' || line[n] == '\t')) ++n;
  return n;
}

}  // namespace

// yaml-cpp folds a multi-line scalar by joining its lines with one character
// (a space, or a newline for literal blocks) after dropping indentation, so
// each source line becomes one segment and the value advances by the line's
// text plus one.
SourceMap SourceMap::ForYamlScalar(std::string_view file, std::string_view content,
                                   int mark_line, int mark_column) {
  SourceMap map;
  std::vector<std::string_view> lines = SplitLines(content);
  std::string file_name(file);
  if (mark_line < 0 || static_cast<size_t>(mark_line) >= lines.size()) {
    map.AddSegment(0, file_name, mark_line + 1, mark_column + 1);
    return map;
  }
  std::string_view first = lines[mark_line];
  size_t column = std::min(static_cast<size_t>(mark_column), first.size());
  char lead = column < first.size() ? first[column] : '\0';
  size_t offset = 0;
  size_t line = mark_line;
  if (lead == '|' || lead == '>') {
    // Block scalar: text starts on the next non-empty line, at its indentation.
    size_t block_indent = 0;
    bool have_indent = false;
    for (size_t l = line + 1; l < lines.size(); ++l) {
      std::string_view text = lines[l];
      if (Indent(text) == text.size()) {  // blank line inside the block
        if (have_indent) offset += 1;
        continue;
      }
      if (!have_indent) {
        block_indent = Indent(text);
        have_indent = true;
      } else if (Indent(text) < block_indent) {
        break;
      }
      map.AddSegment(offset, file_name, static_cast<int>(l) + 1, static_cast<int>(block_indent) + 1);
      offset += text.size() - block_indent + 1;
    }
    if (map.empty()) map.AddSegment(0, file_name, mark_line + 1, mark_column + 1);
    return map;
  }
  bool quoted = lead == '"' || lead == '\'';
  size_t start_column = column + (quoted ? 1 : 0);
  map.AddSegment(0, file_name, static_cast<int>(line) + 1, static_cast<int>(start_column) + 1);
  std::string_view rest = first.substr(std::min(start_column, first.size()));
  // Continuation lines of a flow scalar are more indented than its key, and
  // the scalar ends at the closing quote or the next key/sequence item.
  size_t key_indent = Indent(first);
  if (quoted) {
    if (rest.find(lead) != std::string_view::npos) return map;
  } else if (size_t comment = rest.find(" #"); comment != std::string_view::npos) {
    return map;
  }
  // Trailing spaces are folded away by the YAML reader.
  size_t trimmed = rest.size();
  while (trimmed > 0 && rest[trimmed - 1] == ' ') --trimmed;
  offset = trimmed + 1;
  for (size_t l = line + 1; l < lines.size(); ++l) {
    std::string_view text = lines[l];
    size_t indent = Indent(text);
    if (indent == text.size()) {
      offset += 0;
      continue;
    }
    if (!quoted && indent <= key_indent) break;
    map.AddSegment(offset, file_name, static_cast<int>(l) + 1, static_cast<int>(indent) + 1);
    std::string_view body = text.substr(indent);
    if (quoted && body.find(lead) != std::string_view::npos) break;
    size_t len = body.size();
    while (len > 0 && body[len - 1] == ' ') --len;
    offset += len + 1;
  }
  return map;
}

}  // namespace kelpie::detect
