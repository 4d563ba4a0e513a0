// libbpf's own words in our errors: libbpf prints why a load or attach
// failed (verifier log, missing kernel feature) through its print callback;
// we keep the last lines per thread and append them to the Status.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace kelpie::dataplane {

// Installs the print callback (idempotent): warnings are kept per thread and
// forwarded to the log at debug level.
void InstallLibbpfLogging();

// Clears this thread's captured libbpf lines (call before an operation).
void ClearLibbpfMessages();

// A status for a failed libbpf call `what` returning `err` (negative errno),
// carrying the libbpf lines captured since the last ClearLibbpfMessages().
absl::Status LibbpfError(absl::string_view what, int err);

}  // namespace kelpie::dataplane
