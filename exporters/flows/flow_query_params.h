// The observer's query as URL parameters, shared by the HTTP endpoint and
// `kelpie observe`: namespace, pod, from-pod, to-pod, label, service,
// verdict, protocol, port, drop-reason, last, since, until, follow.
// Repeated parameters widen a field (ORed values); fields are ANDed.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "exporters/flows/flow_observer.h"

namespace kelpie::flows {

struct ParsedFlowQuery {
  FlowQuery query;
  bool follow = false;
};

// `now_ns` anchors relative times ("5m" = five minutes before now).
absl::StatusOr<ParsedFlowQuery> FlowQueryFromParams(const std::vector<std::pair<std::string, std::string>>& params,
                                                   int64_t now_ns);

// RFC 3339 or a duration before now ("30s", "5m", "2h").
absl::StatusOr<int64_t> ParseTimeBound(const std::string& text, int64_t now_ns);

}  // namespace kelpie::flows
