// Maps an offset inside a condition string back to the rule file it came
// from. A condition may be the concatenation of several YAML scalars (macro
// and rule appends), each spanning several lines (folded or literal blocks),
// so the map is a list of segments, one per source line.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace kelpie::detect {

struct SourceLocation {
  std::string file;
  int line = 0;    // 1-based
  int column = 0;  // 1-based

  std::string ToString() const;
};

class SourceMap {
 public:
  // Characters from `offset` on come from `file` at line/column, advancing
  // one column per character until the next segment.
  void AddSegment(size_t offset, std::string file, int line, int column);
  // Appends `other`, whose offsets start at `base` in this string.
  void Append(const SourceMap& other, size_t base);
  SourceLocation Locate(size_t offset) const;
  // "file:line:column" of `offset`.
  std::string Describe(size_t offset) const { return Locate(offset).ToString(); }
  bool empty() const { return segments_.empty(); }

  // The map of a YAML scalar's value. `mark_line`/`mark_column` are yaml-cpp's
  // 0-based mark of the node; `content` is the whole file, used to find where
  // a block scalar's text and each continuation line begin.
  static SourceMap ForYamlScalar(std::string_view file, std::string_view content,
                                 int mark_line, int mark_column);

 private:
  struct Segment {
    size_t offset;
    std::string file;
    int line;
    int column;
  };
  std::vector<Segment> segments_;
};

}  // namespace kelpie::detect
