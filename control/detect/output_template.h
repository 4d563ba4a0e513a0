// A rule's output with its %field references resolved at load time; rendered
// only for events that matched.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "control/detect/event.h"
#include "control/detect/field_registry.h"

namespace kelpie::detect {

class OutputTemplate {
 public:
  // "%proc.name read %fd.name" ; a field absent from the event renders <NA>.
  // "%%" is a literal percent sign.
  static absl::StatusOr<OutputTemplate> Parse(std::string_view text);
  std::string Render(const Event& event) const;

 private:
  struct Part {
    std::string literal;
    bool is_field = false;
    FieldAccessor field;
  };
  std::vector<Part> parts_;
};

}  // namespace kelpie::detect
