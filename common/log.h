// Process-wide logging on spdlog: human text or one JSON object per line.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace kelpie::log {

enum class Format { kText, kJson };

struct Options {
  Format format = Format::kText;
  std::string level = "info";  // trace, debug, info, warn, error, critical, off
};

// Installs the default logger (stderr). Fails on an unknown level name.
absl::Status Init(const Options& options);

// Parses "text" / "json".
absl::Status ParseFormat(const std::string& name, Format* out);

// Escapes a string for inclusion in a JSON string literal.
std::string JsonEscape(std::string_view in);

}  // namespace kelpie::log
