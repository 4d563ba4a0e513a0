// Field names of the condition language, resolved once at rule-load time into
// an accessor (a plain function pointer plus its argument), so evaluating an
// event never looks a field up by name.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "control/detect/event.h"

namespace kelpie::detect {

enum class FieldKind { kString, kInt, kBool };

struct FieldValue {
  std::string_view str;
  int64_t num = 0;
};

struct FieldAccessor;
// Writes value number `i` of the field into `out`; false when there is no such
// value (absent field, or past the last value of a multi-valued field).
using FieldGetter = bool (*)(const Event& event, const FieldAccessor& self, size_t i,
                             FieldValue* out);

struct FieldAccessor {
  std::string name;  // as written, with its argument, e.g. proc.aname[2]
  FieldKind kind = FieldKind::kString;
  FieldGetter get = nullptr;
  std::string arg;        // bracket argument for keyed fields (k8s.pod.label[app])
  int64_t index = -1;     // bracket argument for indexed fields (proc.aname[2])
  bool multi = false;     // several values; comparisons hold if any value matches

  bool Get(const Event& event, size_t i, FieldValue* out) const {
    return get(event, *this, i, out);
  }
};

struct FieldDescription {
  std::string_view name;
  FieldKind kind;
  std::string_view argument;  // "", "index", "key"
  std::string_view description;
};

class FieldRegistry {
 public:
  // Resolves "proc.name", "proc.aname[2]", "k8s.pod.label[app]".
  static absl::StatusOr<FieldAccessor> Resolve(std::string_view name);
  static const std::vector<FieldDescription>& Fields();
  // Event types by the names evt.type accepts (syscall names map to families).
  static bool EventTypeByName(std::string_view name, EventType* out);
  // Numeric value of symbolic constants usable against integer fields
  // (O_TRUNC, S_ISUID, CLONE_NEWNS, PTRACE_ATTACH, ...).
  static bool SymbolValue(std::string_view name, int64_t* out);
};

}  // namespace kelpie::detect
