#include "common/log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <ctime>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace kelpie::log {
namespace {

// One JSON object per record: {"ts","level","logger","msg"}. Timestamps in
// RFC 3339 UTC with microseconds, which log shippers parse without a pattern.
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    using namespace std::chrono;
    auto since_epoch = msg.time.time_since_epoch();
    auto secs = duration_cast<seconds>(since_epoch);
    auto micros = duration_cast<microseconds>(since_epoch - secs).count();
    std::time_t t = secs.count();
    std::tm tm;
    gmtime_r(&t, &tm);
    char ts[64];
    std::strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    auto level = spdlog::level::to_string_view(msg.level);
    std::string line = absl::StrFormat(
        R"({"ts":"%s.%06dZ","level":"%s","logger":"%s","msg":"%s"})", ts, micros,
        std::string_view(level.data(), level.size()),
        JsonEscape(std::string_view(msg.logger_name.data(), msg.logger_name.size())),
        JsonEscape(std::string_view(msg.payload.data(), msg.payload.size())));
    line.push_back('\n');
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

}  // namespace

std::string JsonEscape(std::string_view in) {
  std::string out;
  out.reserve(in.size() + 8);
  for (unsigned char c : in) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  return out;
}

absl::Status ParseFormat(const std::string& name, Format* out) {
  if (name == "text") {
    *out = Format::kText;
  } else if (name == "json") {
    *out = Format::kJson;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown log format \"", name, "\": expected text or json"));
  }
  return absl::OkStatus();
}

void AddFlags(CLI::App& app, Flags& flags) {
  app.add_option("--log-format", flags.format, "Log format: text or json")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  app.add_option("--log-level", flags.level, "Log level: trace, debug, info, warn, error, critical or off")
      ->capture_default_str();
}

absl::Status InitFromFlags(const Flags& flags) {
  Options options;
  options.level = flags.level;
  if (absl::Status s = ParseFormat(flags.format, &options.format); !s.ok()) return s;
  return Init(options);
}

absl::Status Init(const Options& options) {
  auto level = spdlog::level::from_str(options.level);
  // from_str maps unknown names to "off"; only accept "off" when asked for.
  if (level == spdlog::level::off && options.level != "off") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown log level \"", options.level,
                     "\": expected trace, debug, info, warn, error, critical or off"));
  }
  auto logger = std::make_shared<spdlog::logger>(
      "kelpie", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  if (options.format == Format::kJson) {
    logger->set_formatter(std::make_unique<JsonFormatter>());
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%fZ %^%-5l%$ %v", spdlog::pattern_time_type::utc);
  }
  logger->set_level(level);
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(logger);
  return absl::OkStatus();
}

}  // namespace kelpie::log
