#include "exporters/flows/flow_query_params.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace kelpie::flows {

absl::StatusOr<int64_t> ParseTimeBound(const std::string& text, int64_t now_ns) {
  absl::Duration d;
  if (absl::ParseDuration(text, &d) && d >= absl::ZeroDuration()) return now_ns - absl::ToInt64Nanoseconds(d);
  absl::Time t;
  std::string err;
  if (absl::ParseTime(absl::RFC3339_full, text, &t, &err)) return absl::ToUnixNanos(t);
  return absl::InvalidArgumentError(
      absl::StrCat("\"", text, "\" is neither a time (RFC 3339) nor a duration before now (30s, 5m, 2h)"));
}

absl::StatusOr<ParsedFlowQuery> FlowQueryFromParams(const std::vector<std::pair<std::string, std::string>>& params,
                                                   int64_t now_ns) {
  ParsedFlowQuery out;
  FlowFilter both;
  for (const auto& [key, value] : params) {
    if (key == "namespace") {
      both.namespaces.push_back(value);
    } else if (key == "pod") {
      both.pods.push_back(value);
    } else if (key == "from-pod") {
      both.source_pods.push_back(value);
    } else if (key == "to-pod") {
      both.destination_pods.push_back(value);
    } else if (key == "label") {
      auto labels = ParseLabelSelector(value);
      if (!labels.ok()) return labels.status();
      both.labels.insert(labels->begin(), labels->end());
    } else if (key == "service") {
      both.services.push_back(value);
    } else if (key == "verdict") {
      auto v = ParseVerdict(value);
      if (!v.ok()) return v.status();
      both.verdicts.push_back(*v);
    } else if (key == "protocol") {
      both.protocols.push_back(value);
    } else if (key == "port") {
      uint32_t port = 0;
      if (!absl::SimpleAtoi(value, &port) || port == 0 || port > 65535) {
        return absl::InvalidArgumentError(absl::StrCat("port \"", value, "\" is not 1-65535"));
      }
      both.ports.push_back(static_cast<uint16_t>(port));
    } else if (key == "drop-reason") {
      both.drop_reasons.push_back(value);
    } else if (key == "last") {
      uint64_t n = 0;
      if (!absl::SimpleAtoi(value, &n)) return absl::InvalidArgumentError(absl::StrCat("last \"", value, "\" is not a count"));
      out.query.last = n;
    } else if (key == "since" || key == "until") {
      auto t = ParseTimeBound(value, now_ns);
      if (!t.ok()) return t.status();
      (key == "since" ? out.query.since_ns : out.query.until_ns) = *t;
    } else if (key == "follow") {
      out.follow = value.empty() || value == "1" || value == "true";
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown flow filter \"", key, "\""));
    }
  }
  if (!both.empty()) out.query.allow.push_back(std::move(both));
  return out;
}

}  // namespace kelpie::flows
