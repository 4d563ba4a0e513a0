// Small file-system helpers with absl::Status errors that name the path.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace kelpie {

absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// Writes `contents` to a temporary file beside `path`, fsyncs it, sets `mode`
// and renames it over `path`, so readers never see a half-written file.
absl::Status WriteFileAtomically(const std::string& path, std::string_view contents,
                                 mode_t mode);

// mkdir -p with the given mode for directories it creates.
absl::Status MakeDirectories(const std::string& path, mode_t mode);

bool PathExists(const std::string& path);

}  // namespace kelpie
