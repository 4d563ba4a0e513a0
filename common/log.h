// Process-wide logging on spdlog: human text or one JSON object per line.
// Include this header (not spdlog directly) to log.
#pragma once

#include <spdlog/spdlog.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

// absl::string_view is its own type in Debian's Abseil (not std::string_view),
// so teach fmt to print it; Status::message() returns one.
template <>
struct fmt::formatter<absl::string_view> : fmt::formatter<fmt::string_view> {
  template <typename FormatContext>
  auto format(absl::string_view s, FormatContext& ctx) const {
    return fmt::formatter<fmt::string_view>::format(fmt::string_view(s.data(), s.size()), ctx);
  }
};

namespace CLI {
class App;
}

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

// The --log-format and --log-level flags every long-running command has.
struct Flags {
  std::string format = "text";
  std::string level = "info";
};
void AddFlags(CLI::App& app, Flags& flags);
// Parses the flags and installs the default logger.
absl::Status InitFromFlags(const Flags& flags);

// Escapes a string for inclusion in a JSON string literal.
std::string JsonEscape(std::string_view in);

}  // namespace kelpie::log
